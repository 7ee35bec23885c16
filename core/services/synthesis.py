"""Synthetic training data through an OpenAI-compatible LLM: the use cases around a synthesis task."""

from __future__ import annotations

from sqlalchemy import Engine

from core.db import session_scope
from core.db.tables import TaskStatus
from core.services import tasks
from core.services.industries import require_active_industry
from core.settings import Settings

LLM_NOT_CONFIGURED = "llm_not_configured"


def request_synthesis(
    *, engine: Engine, industry: str, count: int, settings: Settings, actor: str | None = None
) -> tasks.TaskView:
    """Create a synthesis task for ``count`` documents of ``industry``.

    Without a configured LLM the task is still recorded (so the request is visible) and ends at
    once FAILED with ``llm_not_configured``; the industry keeps working zero-shot. Otherwise it is
    PENDING and the caller sends it to a worker.
    """
    with session_scope(engine) as session:
        name = require_active_industry(session, industry)
        task = tasks.create_task(
            session,
            kind="synthesis",
            params={"industry": name, "count": count, "model": settings.llm_model},
            total=count,
            requested_by=actor,
        )
        task_id = task.id
    if not settings.llm_configured:
        tasks.finish(
            engine,
            task_id,
            TaskStatus.FAILED,
            error_code=LLM_NOT_CONFIGURED,
            error_message=(
                "No LLM is configured: set OPENAI_API_KEY for the hosted API, or HERON_LLM_BASE_URL for a "
                f"local OpenAI-compatible server. Industry {name!r} is still predicted from its description."
            ),
        )
    with session_scope(engine) as session:
        return tasks.get_task(session=session, task_id=task_id)
