"""Corrections and their approval."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK

from api.auth import actor, requires
from api.controllers.common import Limit, Offset, RowId
from api.schemas import (
    Decided,
    FeedbackBatchCreate,
    FeedbackCreate,
    FeedbackCreated,
    IdList,
    Page,
)
from core.runtime import Runtime
from core.services import feedback
from core.services.feedback import FeedbackView


class FeedbackController(Controller):
    path = "/api/feedback"
    tags = ["feedback"]

    @post("/", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("annotator")])
    def create(
        self, request: Request, runtime: NamedDependency[Runtime], data: JSONBody[FeedbackCreate]
    ) -> FeedbackCreated:
        """Correct (or confirm) a job's industry; the correction waits for a reviewer."""
        created = feedback.submit_feedback(
            engine=runtime.engine,
            job_id=data.job_id,
            label=data.corrected_classification,
            author=actor(request),
        )
        return FeedbackCreated(
            message="Feedback recorded; it trains the model once a reviewer approves it.",
            job_id=created.job_id,
            corrected_classification=created.label,
            feedback_id=created.id,
            status=created.status,
        )

    @post("/batch", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("annotator")])
    def create_many(
        self, request: Request, runtime: NamedDependency[Runtime], data: JSONBody[FeedbackBatchCreate]
    ) -> Page:
        """Give several jobs the same label in one action (a "more like this" selection): each gets
        its own correction, waiting for a reviewer. All or none."""
        created = feedback.submit_feedback_many(
            engine=runtime.engine,
            job_ids=data.job_ids,
            label=data.corrected_classification,
            author=actor(request),
        )
        return Page(items=created, total=len(created))

    @get("/", sync_to_thread=True, guards=[requires("annotator")])
    def list(
        self,
        runtime: NamedDependency[Runtime],
        status: FromQuery[str | None] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page:
        """Corrections with who made them, the model's answer and disagreements between annotators."""
        items, total = feedback.list_feedback(
            engine=runtime.engine, status=status, limit=limit, offset=offset
        )
        return Page(items=items, total=total)

    @post(
        "/{feedback_id:int}/approve",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        guards=[requires("reviewer")],
    )
    def approve(
        self, request: Request, runtime: NamedDependency[Runtime], feedback_id: RowId
    ) -> FeedbackView:
        """Approve one correction: it becomes training (or gold) data and the model updates."""
        return _decide(runtime, [feedback_id], approve=True, reviewer=actor(request))[0]

    @post(
        "/{feedback_id:int}/reject",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        guards=[requires("reviewer")],
    )
    def reject(self, request: Request, runtime: NamedDependency[Runtime], feedback_id: RowId) -> FeedbackView:
        """Reject one correction: it never trains anything."""
        return _decide(runtime, [feedback_id], approve=False, reviewer=actor(request))[0]

    @post("/approve", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("reviewer")])
    def approve_many(
        self, request: Request, runtime: NamedDependency[Runtime], data: JSONBody[IdList]
    ) -> Decided:
        """Approve several corrections at once (all or none), with the training run that learns them."""
        return _decided(runtime, data.ids, approve=True, reviewer=actor(request))

    @post("/reject", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("reviewer")])
    def reject_many(
        self, request: Request, runtime: NamedDependency[Runtime], data: JSONBody[IdList]
    ) -> Decided:
        """Reject several corrections at once (all or none): they never train anything."""
        return _decided(runtime, data.ids, approve=False, reviewer=actor(request))


def _decide(runtime: Runtime, ids: list[int], *, approve: bool, reviewer: str | None) -> list[FeedbackView]:
    return _decided(runtime, ids, approve=approve, reviewer=reviewer).items


def _decided(runtime: Runtime, ids: list[int], *, approve: bool, reviewer: str | None) -> Decided:
    decision = feedback.decide(
        engine=runtime.engine, work=runtime.work, feedback_ids=ids, approve=approve, reviewer=reviewer
    )
    task = decision.training_task
    return Decided(
        items=decision.feedback,
        total=len(decision.feedback),
        training_task_id=task.id if task is not None else None,
    )
