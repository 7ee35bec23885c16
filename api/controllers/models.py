"""Model versions: list, activate, report."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK

from api.auth import actor, requires
from api.controllers.common import RowId
from api.schemas import (
    Page,
)
from core.runtime import Runtime
from core.services import models
from core.services.models import VersionReport


class ModelsController(Controller):
    path = "/api/models"
    tags = ["models"]

    @get("/", sync_to_thread=True, guards=[requires("annotator")])
    def list(self, runtime: NamedDependency[Runtime]) -> Page:
        """Every model version with its status, parent and headline metrics."""
        items = models.list_versions(engine=runtime.engine)
        return Page(items=items, total=len(items))

    @post(
        "/{version_id:int}/activate", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("admin")]
    )
    def activate(self, request: Request, runtime: NamedDependency[Runtime], version_id: RowId) -> dict:
        """Make this version the active one (promotion or rollback); every process follows within
        seconds. ``not_predicted`` lists the active industries this version never learned: it
        cannot answer them until a training run (retrain) learns them. ``newer_examples`` counts the
        approved examples stored since it was trained: the next training run (any approval or
        industry change) learns them all again, so a rollback does not undo approvals."""
        activated = models.activate_version(
            engine=runtime.engine, version_id=version_id, actor=actor(request)
        )
        return {
            "id": version_id,
            "status": "active",
            "not_predicted": activated.not_predicted,
            "newer_examples": activated.newer_examples,
        }

    @get("/{version_id:int}/report", sync_to_thread=True, guards=[requires("annotator")])
    def report(self, runtime: NamedDependency[Runtime], version_id: RowId) -> VersionReport:
        """The version's evaluation report(s)."""
        return models.version_report(engine=runtime.engine, version_id=version_id)
