"""Export, the audit trail, readiness, metrics and health."""

from __future__ import annotations

from litestar import Request, Response, get, head
from litestar.di import NamedDependency
from litestar.params import FromQuery

from api.auth import requires
from api.controllers.common import Limit, Offset
from api.schemas import (
    Health,
    Page,
)
from core.runtime import Runtime
from core.services import audit
from core.services import export as exports
from core.services import metrics as figures
from core.services.models import readiness
from workers import dispatch


@get("/api/export", tags=["export"], sync_to_thread=True, guards=[requires("reviewer")])
def export(
    runtime: NamedDependency[Runtime],
    format: FromQuery[str] = "jsonl",
    source: FromQuery[str | None] = None,
    label: FromQuery[str | None] = None,
) -> Response:
    """Labelled data as JSONL or CSV, filterable by source (feedback, import, …) and label."""
    exported = exports.export_examples(engine=runtime.engine, fmt=format, source=source, label=label)
    return Response(
        exported.body,
        media_type=exported.media_type,
        headers={"Content-Disposition": f'attachment; filename="{exported.filename}"'},
    )


@get("/api/audit", tags=["audit"], sync_to_thread=True, guards=[requires("reviewer")])
def audit_trail(
    runtime: NamedDependency[Runtime],
    action: FromQuery[str | None] = None,
    actor: FromQuery[str | None] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    """Who did what, newest first (uploads, corrections and their decisions, industry changes,
    imports, training runs, activations): filter by ``action`` (e.g. ``feedback.approved``) or
    ``actor`` (a name as recorded, with its key's tag when keys are configured)."""
    items, total = audit.list_events(
        engine=runtime.engine, action=action, actor=actor, limit=limit, offset=offset
    )
    return Page(items=items, total=total)


@get("/ready", tags=["health"], sync_to_thread=True)
def ready(runtime: NamedDependency[Runtime]) -> Response:
    """Readiness: the database answers, the broker is reachable and a model is active."""
    checks = {**readiness(runtime.engine), "broker": dispatch.broker_status(runtime.settings)}
    ok = (
        checks["database"] == "ok"
        and checks["model"].startswith("version")
        and not checks["broker"].startswith("unreachable")
    )
    body = {"status": "ready" if ok else "not_ready", "checks": checks}
    if not ok:
        body.update(
            code="unavailable",
            message="Heron is not ready: " + ", ".join(f"{k} {v}" for k, v in checks.items()),
        )
    return Response(body, status_code=200 if ok else 503)


@get("/metrics", tags=["health"], sync_to_thread=True, guards=[requires("annotator")])
def metrics(runtime: NamedDependency[Runtime]) -> Response:
    """Prometheus metrics for the whole deployment (read from the database): jobs by status, queue
    depth, upload→result latency, escalation and review rates, tasks, the active model version."""
    body = figures.prometheus_text(engine=runtime.engine)
    return Response(body, media_type="text/plain; version=0.0.4")


@get("/health", tags=["health"])
async def health(request: Request) -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@head("/health", tags=["health"], include_in_schema=False)
async def health_head() -> None:
    """Liveness for probes that send HEAD (some load balancers): 200, no body."""
