"""Background tasks: list, follow, cancel."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.status_codes import HTTP_200_OK

from api.auth import actor, requires
from api.controllers.common import Limit, Offset
from api.schemas import (
    Page,
)
from core.runtime import Runtime
from core.services import tasks
from core.services.tasks import TaskView


class TasksController(Controller):
    path = "/api/tasks"
    tags = ["tasks"]

    @get("/", sync_to_thread=True, guards=[requires("annotator")])
    def list(
        self,
        runtime: NamedDependency[Runtime],
        kind: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page:
        """Background tasks (training, synthesis), newest first, with status and progress."""
        items, total = tasks.list_tasks(
            engine=runtime.engine, kind=kind, status=status, limit=limit, offset=offset
        )
        return Page(items=items, total=total)

    @get("/{task_id:str}", sync_to_thread=True, guards=[requires("annotator")])
    def get(self, runtime: NamedDependency[Runtime], task_id: FromPath[str]) -> TaskView:
        """One task: ``status`` (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED), ``progress``, ``result``."""
        return tasks.get_task(engine=runtime.engine, task_id=task_id)

    @post(
        "/{task_id:str}/cancel", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("reviewer")]
    )
    def cancel(self, request: Request, runtime: NamedDependency[Runtime], task_id: FromPath[str]) -> TaskView:
        """Cancel a task: a waiting one at once, a running one at its next progress step."""
        return tasks.cancel(engine=runtime.engine, task_id=task_id, actor=actor(request))
