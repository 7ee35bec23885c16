"""Queueing a training run: what approvals, industry changes, new synthetic examples and people's
requests ask for. A request joins one still waiting; a new run is sent once its row is committed,
and a waiting one again when its message looks lost."""

from __future__ import annotations

from sqlalchemy import Engine

from core.services import tasks, training
from core.services.tasks import TaskView
from core.work import WorkSender


def queue_training(
    *, engine: Engine, work: WorkSender, actor: str | None = None, incremental: bool = True
) -> TaskView:
    """Queue an incremental update (or a full retrain), or join the equivalent one still waiting.

    An incremental run refits on every approved example, however old, so it is what follow-up work
    asks for; a full retrain is one click (or call) away. Joining a run whose message was lost
    sends it again, so an approval after a broker restart still trains within seconds.
    """
    task, joined = training.request_training(
        engine=engine, mode="incremental" if incremental else "full", actor=actor
    )
    tasks.send(engine, work, task, joined=joined)
    return task
