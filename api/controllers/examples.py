"""Synthetic examples awaiting approval."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK

from api.auth import actor, requires
from api.controllers.common import Limit, Offset, RowId
from api.schemas import (
    IdList,
    Page,
    Relabel,
)
from core.runtime import Runtime
from core.services import examples
from core.services.examples import ExampleView


class ExamplesController(Controller):
    path = "/api/examples"
    tags = ["examples"]

    @get("/", sync_to_thread=True, guards=[requires("annotator")])
    def list(
        self,
        runtime: NamedDependency[Runtime],
        source: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        label: FromQuery[str | None] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page:
        """Training examples, newest first; ``?source=synthetic&status=pending`` is the approval queue."""
        items, total = examples.list_examples(
            engine=runtime.engine, source=source, status=status, label=label, limit=limit, offset=offset
        )
        return Page(items=items, total=total)

    @post("/approve", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("reviewer")])
    def approve(self, request: Request, runtime: NamedDependency[Runtime], data: JSONBody[IdList]) -> Page:
        """Approve pending examples (all or none); they train in the run this queues (incremental when
        the active model has not seen examples that old, else a full retrain)."""
        decided = examples.decide_examples(
            engine=runtime.engine, work=runtime.work, ids=data.ids, approve=True, actor=actor(request)
        )
        return Page(items=decided.examples, total=len(decided.examples))

    @post("/reject", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("reviewer")])
    def reject(self, request: Request, runtime: NamedDependency[Runtime], data: JSONBody[IdList]) -> Page:
        """Reject pending examples (all or none): they never train."""
        decided = examples.decide_examples(
            engine=runtime.engine, work=runtime.work, ids=data.ids, approve=False, actor=actor(request)
        )
        return Page(items=decided.examples, total=len(decided.examples))

    @post(
        "/{example_id:int}/relabel",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        guards=[requires("reviewer")],
    )
    def relabel(
        self, request: Request, runtime: NamedDependency[Runtime], example_id: RowId, data: JSONBody[Relabel]
    ) -> ExampleView:
        """Correct an approved example's label (a label issue on second look); it retrains like
        any approval."""
        decided = examples.relabel_example(
            engine=runtime.engine,
            work=runtime.work,
            example_id=example_id,
            label=data.label,
            actor=actor(request),
        )
        return decided.examples[0]

    @post(
        "/{example_id:int}/keep",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        guards=[requires("reviewer")],
    )
    def keep(self, request: Request, runtime: NamedDependency[Runtime], example_id: RowId) -> ExampleView:
        """The label of a label issue is right: it leaves the queue (until relabelled); nothing trains."""
        return examples.keep_label(engine=runtime.engine, example_id=example_id, actor=actor(request))
