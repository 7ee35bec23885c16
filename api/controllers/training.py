"""Training requests."""

from __future__ import annotations

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED

from api.auth import actor, requires
from api.schemas import (
    RetrainAccepted,
    RetrainRequest,
)
from core.runtime import Runtime
from core.services import retraining


class TrainingController(Controller):
    path = "/api"
    tags = ["training"]

    @post("/retrain_model", status_code=HTTP_202_ACCEPTED, sync_to_thread=True, guards=[requires("admin")])
    def retrain(
        self,
        request: Request,
        runtime: NamedDependency[Runtime],
        data: JSONBody[RetrainRequest | None] = None,
    ) -> RetrainAccepted:
        """Queue a full retrain from all stored data, or (feedback only) an incremental update.

        A request arriving while an equivalent one still waits joins it (same ``task_id``).
        """
        body = data or RetrainRequest()
        task = retraining.queue_training(
            engine=runtime.engine,
            work=runtime.work,
            actor=actor(request),
            incremental=body.retrain_on_feedback_only,
        )
        return RetrainAccepted(
            message="Retraining queued; follow it at /api/tasks/" + task.id,
            retrain_on_feedback_only=body.retrain_on_feedback_only,
            task_id=task.id,
            status=task.status,
        )
