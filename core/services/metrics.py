"""Operational metrics read from the database, so every API process reports the whole cluster."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric as PrometheusMetric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, func
from sqlmodel import Session, select

from core.db import session_scope
from core.db.tables import Feedback, Job, JobStatus, Prediction, Task, utcnow
from core.services.models import active_version_id

WINDOW_MINUTES = 15
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Sample:
    name: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # gauge | counter | summary
    help: str
    samples: list[Sample]


def prometheus_text(*, engine: Engine, window_minutes: int = WINDOW_MINUTES) -> str:
    """The deployment's metrics (see :func:`collect`) in Prometheus' text format."""
    with session_scope(engine) as session:
        return render(collect(session, window_minutes=window_minutes))


def collect(session: Session, *, window_minutes: int = WINDOW_MINUTES) -> list[Metric]:
    """Jobs by status, queue depth, upload→result latency, escalation and review rates over the
    last ``window_minutes``, feedback and tasks by status, and the active model version."""
    since = utcnow() - timedelta(minutes=window_minutes)
    jobs = dict(session.exec(select(Job.status, func.count()).group_by(Job.status)).all())
    metrics = [
        Metric(
            "heron_jobs",
            "gauge",
            "Jobs by status.",
            [Sample("heron_jobs", float(jobs.get(status, 0)), {"status": status}) for status in JobStatus],
        ),
        Metric(
            "heron_queue_depth",
            "gauge",
            "Jobs waiting for a worker (PENDING).",
            [Sample("heron_queue_depth", float(jobs.get(JobStatus.PENDING, 0)))],
        ),
        _latency(session, since, window_minutes),
    ]
    routed = session.exec(
        select(func.count(), _count_true(Prediction.escalated), _count_true(Prediction.needs_review)).where(
            Prediction.created_at >= since
        )
    ).one()
    count, escalated, review = (int(value or 0) for value in routed)
    metrics += [
        Metric(
            "heron_escalation_ratio",
            "gauge",
            f"Share of predictions of the last {window_minutes} min decided by the transformer tier.",
            [Sample("heron_escalation_ratio", escalated / count if count else 0.0)],
        ),
        Metric(
            "heron_review_ratio",
            "gauge",
            f"Share of predictions of the last {window_minutes} min sent to people for review.",
            [Sample("heron_review_ratio", review / count if count else 0.0)],
        ),
        Metric(
            "heron_feedback",
            "gauge",
            "Corrections by status.",
            [
                Sample("heron_feedback", float(n), {"status": status})
                for status, n in session.exec(select(Feedback.status, func.count()).group_by(Feedback.status))
            ],
        ),
        Metric(
            "heron_tasks",
            "gauge",
            "Background tasks by kind and status.",
            [
                Sample("heron_tasks", float(n), {"kind": kind, "status": status})
                for kind, status, n in session.exec(
                    select(Task.kind, Task.status, func.count()).group_by(Task.kind, Task.status)
                )
            ],
        ),
        Metric(
            "heron_active_model_version",
            "gauge",
            "Id of the model version every process serves (0: none yet).",
            [Sample("heron_active_model_version", float(active_version_id(session) or 0))],
        ),
    ]
    return metrics


def _count_true(column):  # type: ignore[no-untyped-def]
    # PostgreSQL cannot sum booleans.
    return func.sum(case((column, 1), else_=0))


def _latency(session: Session, since, window_minutes: int) -> Metric:  # type: ignore[no-untyped-def]
    rows = session.exec(
        select(Job.created_at, Job.finished_at)
        .where(Job.finished_at >= since, Job.status == JobStatus.COMPLETED)
        .limit(100_000)
    ).all()
    seconds = np.array([(finished - created).total_seconds() for created, finished in rows], dtype=float)
    name = "heron_job_latency_seconds"
    samples = [
        Sample(name, float(np.quantile(seconds, q)) if seconds.size else float("nan"), {"quantile": str(q)})
        for q in QUANTILES
    ]
    samples += [Sample(f"{name}_count", float(seconds.size)), Sample(f"{name}_sum", float(seconds.sum()))]
    return Metric(
        name, "summary", f"Upload to COMPLETED, jobs finished in the last {window_minutes} min.", samples
    )


def render(metrics: list[Metric]) -> str:
    """The Prometheus text exposition format, written by prometheus_client from this snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(metrics))
    return generate_latest(registry).decode()


class _Snapshot(Collector):
    """A collector over figures already read from the database (not kept in this process)."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[PrometheusMetric]:
        for metric in self.metrics:
            family = PrometheusMetric(metric.name, metric.help, metric.kind)
            for sample in metric.samples:
                family.add_sample(sample.name, sample.labels, sample.value)
            yield family
