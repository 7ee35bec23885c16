"""Queueing a training run: what approvals, industry changes, new synthetic examples and people's
requests ask for. A request joins one still waiting; a new run is sent once its row is committed,
and a waiting one again when its message looks lost."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from core.db import session_scope
from core.db.tables import (
    ExampleStatus,
    Industry,
    Lease,
    ModelVersion,
    Split,
    Task,
    TaskStatus,
    TrainingExample,
    utcnow,
)
from core.services import tasks, training
from core.services.tasks import TaskView
from core.services.training import TRAINING_LEASE
from core.work import WorkSender

log = logging.getLogger(__name__)


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


def train_what_was_left(*, engine: Engine, work: WorkSender, older_than: float) -> TaskView | None:
    """Queue the training run a change to what the model learns from did not get (the sweeper's
    backstop): an industry added, renamed, redescribed, retired or restored, or a person's example
    stored, more than ``older_than`` seconds ago, with no training run asked for since and none
    waiting. The change and its request are two commits: a process that died, or a database that
    went away, between them left an industry nobody's model would predict until something else
    trained."""
    with session_scope(engine) as session:
        changed = _last_change(session)
        if changed is None or changed > utcnow() - timedelta(seconds=older_than):
            return None
        # Covered: a run under way (`heron import` and `heron train` train without a task; its end
        # is looked at again by a later sweep), one waiting, a run asked for since (it reads every
        # example when it starts: a request that joined a waiting run says when, requested_at), or
        # a version trained since.
        lease = session.get(Lease, TRAINING_LEASE)
        if lease is not None and lease.expires_at > utcnow():
            return None
        waiting = session.exec(
            select(Task.id).where(Task.kind == "training", Task.status == TaskStatus.PENDING)
        ).first()
        if waiting is not None:
            return None
        recent = session.exec(
            select(Task.created_at, Task.params)
            .where(Task.kind == "training")
            .order_by(Task.created_at.desc())
            .limit(20)
        ).all()
        asked = [created for created, _ in recent] + [
            datetime.fromisoformat(params["requested_at"])
            for _, params in recent
            if (params or {}).get("requested_at")
        ]
        trained = session.exec(select(func.max(ModelVersion.created_at))).one()
        if any(moment >= changed for moment in [*asked, trained] if moment is not None):
            return None
    log.warning("a change made at %s was never trained on; queueing the training run it asked for", changed)
    return queue_training(engine=engine, work=work, actor="sweeper")


def _last_change(session: Session) -> datetime | None:
    """When the industries or the people's training examples last changed, if after the first model
    version (the starter model learned what came before it)."""
    first = session.exec(select(func.min(ModelVersion.created_at))).one()
    if first is None:
        return None
    industries = session.exec(select(func.max(Industry.updated_at))).one()
    examples = session.exec(
        select(func.max(TrainingExample.created_at)).where(
            # (synthesis asks for its run when it ends; counted, a long one would train every sweep)
            TrainingExample.source.in_(training.USER_SOURCES),
            TrainingExample.split == Split.train,
            TrainingExample.status == ExampleStatus.approved,
        )
    ).one()
    latest = max((moment for moment in (industries, examples) if moment is not None), default=None)
    return latest if latest is not None and latest > first else None
