"""Background tasks (training, synthesis, unpacking a ZIP): a row people and clients follow.

The row is the source of truth, as for jobs: a worker claims PENDING → RUNNING, reports progress
(which doubles as a heartbeat and as the place a cancellation is noticed) and ends the task
SUCCEEDED, FAILED or CANCELLED. A sweeper re-sends PENDING tasks whose message was lost and
returns RUNNING tasks whose worker stopped reporting. A run holds a renewed lease (``running``), so
a worker that dies lets its task go within ``RUN_LEASE_SECONDS`` however seldom the run reports.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, update
from sqlmodel import Session, select

from core.db import session_scope
from core.db.tables import Lease, Task, TaskStatus, utcnow
from core.errors import Invalid, NotFound
from core.services import audit, leases
from core.work import WorkSender

KINDS = ("training", "synthesis", "unpack")
FINISHED = (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED)
# A task held up by another (training waits for the run holding the lease) is claimed and put back
# every few seconds, which touches its row; a PENDING task untouched this long has lost its message.
UNTOUCHED_SECONDS = 10.0
# A run's lease (``running``), renewed every third of this: a task silent this long whose lease
# nobody holds lost its worker.
RUN_LEASE = "task:{id}"
RUN_LEASE_SECONDS = 90


@dataclass(frozen=True)
class TaskView:
    id: str
    kind: str
    status: str
    progress: float
    done: int
    total: int
    stage: str
    params: dict[str, Any]
    result: dict[str, Any]
    error_code: str | None
    error_message: str | None
    requested_by: str | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def task_view(task: Task) -> TaskView:
    if task.status == TaskStatus.SUCCEEDED:
        progress = 1.0
    else:
        progress = min(task.done / task.total, 1.0) if task.total else 0.0
    return TaskView(
        id=task.id,
        kind=task.kind,
        status=task.status,
        progress=round(progress, 4),
        done=task.done,
        total=task.total,
        stage=task.stage,
        # requested_at is bookkeeping (when a request last joined it; core.services.training)
        params={key: value for key, value in (task.params or {}).items() if key != "requested_at"},
        result=task.result or {},
        error_code=task.error_code,
        error_message=task.error_message,
        requested_by=task.requested_by,
        cancel_requested=task.cancel_requested,
        created_at=task.created_at,
        updated_at=task.updated_at,
        started_at=task.started_at,
        finished_at=task.finished_at,
    )


def create_task(
    session: Session, *, kind: str, params: dict[str, Any], total: int = 0, requested_by: str | None = None
) -> Task:
    """Add a PENDING task to the caller's transaction (send its message only after the commit)."""
    if kind not in KINDS:
        raise Invalid(f"Unknown task kind {kind!r}; use one of {', '.join(KINDS)}.")
    task = Task(kind=kind, params=params, total=total, requested_by=requested_by)
    session.add(task)
    session.flush()
    audit.record(
        session,
        action=f"{kind}.requested",
        subject_type="task",
        subject_id=task.id,
        actor=requested_by,
        **params,
    )
    return task


def find_waiting(session: Session, *, kind: str, params: dict[str, Any] | None = None) -> Task | None:
    """The oldest PENDING task of this kind (with these params), to coalesce a new request into it."""
    for task in session.exec(
        select(Task).where(Task.kind == kind, Task.status == TaskStatus.PENDING).order_by(Task.created_at)
    ):
        if params is None or all(task.params.get(k) == v for k, v in params.items()):
            return task
    return None


def looks_lost(task: TaskView) -> bool:
    """Whether a waiting task's message was probably lost (a broker restarted, a process died
    before sending it): it is PENDING and nothing has touched it for ``UNTOUCHED_SECONDS``. A
    request that joins such a task sends it again rather than leave it to the sweeper (minutes);
    sending twice is safe, since claiming is atomic."""
    updated = task.updated_at if task.updated_at.tzinfo else task.updated_at.replace(tzinfo=UTC)
    return task.status == TaskStatus.PENDING and utcnow() - updated > timedelta(seconds=UNTOUCHED_SECONDS)


def send(engine: Engine, work: WorkSender, task: TaskView, *, joined: bool) -> None:
    """Send a requested task's message: a new task's, or again a waiting one's that a request
    joined and whose message looks lost (:func:`looks_lost`). Its row is touched then, so that the
    requests joining it over the next UNTOUCHED_SECONDS send nothing more."""
    if joined and not looks_lost(task):
        return
    if joined:
        with session_scope(engine) as session:
            session.execute(
                update(Task)
                .where(Task.id == task.id, Task.status == TaskStatus.PENDING)
                .values(updated_at=utcnow())
            )
    work.send_task(task.id, task.kind)


def start(engine: Engine, task_id: str) -> Task | None:
    """Claim a PENDING task for this worker; None if it is gone, finished, cancelled or taken."""
    now = utcnow()
    with session_scope(engine) as session:
        claimed = session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status == TaskStatus.PENDING)
            .values(
                status=TaskStatus.RUNNING,
                started_at=now,
                updated_at=now,
                attempts=Task.attempts + 1,
                stage="starting",
            )
        ).rowcount
        if not claimed:
            return None
        task = session.get(Task, task_id)
        session.expunge(task)
        return task


@contextlib.contextmanager
def running(engine: Engine, task_id: str) -> Iterator[Task | None]:
    """Claim a PENDING task (as ``start``) and hold its run lease while the block runs: yields
    None if the task is not PENDING or another live worker is running it. A ZIP's unpacking
    reports no progress and an LLM reply may take minutes, so silence alone cannot tell a dead
    worker from a busy one; the lease can (see ``stale_tasks``)."""
    with leases.held(engine, RUN_LEASE.format(id=task_id), ttl_seconds=RUN_LEASE_SECONDS) as acquired:
        yield start(engine, task_id) if acquired else None


def progress(engine: Engine, task_id: str, *, done: int, total: int | None = None, stage: str = "") -> bool:
    """Record progress; returns False when someone asked to cancel (the worker should stop)."""
    values: dict[str, Any] = {"done": done, "updated_at": utcnow()}
    if total is not None:
        values["total"] = total
    if stage:
        values["stage"] = stage[:100]
    with session_scope(engine) as session:
        session.execute(
            update(Task).where(Task.id == task_id, Task.status == TaskStatus.RUNNING).values(**values)
        )
        task = session.get(Task, task_id)
        return task is not None and not task.cancel_requested


def cancel_requested(engine: Engine, task_id: str) -> bool:
    with session_scope(engine) as session:
        task = session.get(Task, task_id)
        return task is None or task.cancel_requested


def finish(
    engine: Engine,
    task_id: str,
    status: TaskStatus,
    *,
    result: dict[str, Any] | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
) -> None:
    """End a running task. Finishing twice keeps the first ending (a redelivered message is harmless)."""
    now = utcnow()
    with session_scope(engine) as session:
        task = session.get(Task, task_id)
        if task is None or task.status in FINISHED:
            return
        task.status = status
        if status == TaskStatus.SUCCEEDED:
            task.done = max(task.done, task.total)  # however many stages it had to go through
        task.result = result or {}
        task.error_code = error_code
        task.error_message = error_message
        task.stage = status.lower()
        task.finished_at = now
        task.updated_at = now
        session.add(task)
        audit.record(
            session,
            action=f"{task.kind}.{status.lower()}",
            subject_type="task",
            subject_id=task.id,
            actor=task.requested_by,
            error_code=error_code,
        )


def put_back(engine: Engine, task_id: str, *, stage: str) -> None:
    """Return a RUNNING task to PENDING (e.g. it must wait for another training run to finish)."""
    with session_scope(engine) as session:
        session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status == TaskStatus.RUNNING)
            .values(status=TaskStatus.PENDING, stage=stage[:100], updated_at=utcnow())
        )


def cancel(*, engine: Engine, task_id: str, actor: str | None = None) -> TaskView:
    """Cancel a task: a waiting one ends at once, a running one stops at its next progress report.

    Raises:
        NotFound: no such task.
    """
    with session_scope(engine) as session:
        task = session.get(Task, task_id)
        if task is None:
            raise NotFound(f"Task {task_id!r} does not exist.")
        if task.status not in FINISHED:
            task.cancel_requested = True
            task.updated_at = utcnow()
            if task.status == TaskStatus.PENDING:
                task.status = TaskStatus.CANCELLED
                task.stage = "cancelled"
                task.finished_at = task.updated_at
            session.add(task)
            audit.record(
                session, action=f"{task.kind}.cancel", subject_type="task", subject_id=task.id, actor=actor
            )
        session.flush()
        return task_view(task)


def get_task(*, engine: Engine, task_id: str) -> TaskView:
    """One task as people follow it.

    Raises:
        NotFound: no such task.
    """
    with session_scope(engine) as session:
        task = session.get(Task, task_id)
        if task is None:
            raise NotFound(f"Task {task_id!r} does not exist.")
        return task_view(task)


def list_tasks(
    *,
    engine: Engine,
    kind: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[TaskView], int]:
    """Tasks, newest first."""
    query = select(Task)
    if kind:
        if kind not in KINDS:
            raise Invalid(f"Unknown task kind {kind!r}; use one of {', '.join(KINDS)}.")
        query = query.where(Task.kind == kind)
    if status:
        if status not in {s.value for s in TaskStatus}:
            raise Invalid(
                f"Unknown task status {status!r}; use one of {', '.join(s.value for s in TaskStatus)}."
            )
        query = query.where(Task.status == status)
    with session_scope(engine) as session:
        total = session.exec(select(func.count()).select_from(query.subquery())).one()
        rows = session.exec(query.order_by(Task.created_at.desc()).offset(offset).limit(limit)).all()
        return [task_view(row) for row in rows], int(total)


def stale_tasks(
    engine: Engine,
    *,
    pending_older_than: float,
    silent_for: float,
    leased: Mapping[str, tuple[str, float]] | None = None,
) -> list[tuple[str, str]]:
    """(id, kind) of tasks to send again: PENDING ones waiting longer than ``pending_older_than``
    seconds (their message was lost) and RUNNING ones whose worker has not reported for
    ``silent_for`` seconds (it died); the latter go back to PENDING first. ``leased``: per task
    kind whose runs hold a renewed lease, (lease name, with ``{id}`` for the task's id where each
    run has its own, and its time to live): such a task silent for that long while nobody holds
    the lease lost its worker sooner than ``silent_for`` tells."""
    now = utcnow()
    leased = leased or {}
    with session_scope(engine) as session:
        # Kinds whose runs hold a lease: the lease decides, however long a live run is silent.
        silent = list(
            session.exec(
                select(Task.id, Task.kind).where(
                    Task.status == TaskStatus.RUNNING,
                    Task.kind.not_in(list(leased)),
                    Task.updated_at < now - timedelta(seconds=silent_for),
                )
            ).all()
        )
        for kind, (lease, seconds) in leased.items():
            quiet = session.exec(
                select(Task.id, Task.kind).where(
                    Task.status == TaskStatus.RUNNING,
                    Task.kind == kind,
                    Task.updated_at < now - timedelta(seconds=seconds),
                )
            ).all()
            for task_id, task_kind in quiet:
                name = lease.format(id=task_id)
                if not session.exec(
                    select(Lease.name).where(Lease.name == name, Lease.expires_at >= now)
                ).first():
                    silent.append((task_id, task_kind))  # nobody runs it any more
        lost = []
        for task_id, kind in silent:
            # Changed only while still RUNNING and still quiet: a run that ended (and let go of
            # its lease) or reported since the reads above is left alone, not run a second time.
            cutoff = now - timedelta(seconds=leased[kind][1] if kind in leased else silent_for)
            still = (Task.id == task_id, Task.status == TaskStatus.RUNNING, Task.updated_at < cutoff)
            stopped = session.execute(
                update(Task)
                .where(*still, Task.cancel_requested)
                .values(
                    status=TaskStatus.CANCELLED,
                    stage="cancelled (its worker was lost)",
                    finished_at=now,
                    updated_at=now,
                )
            ).rowcount
            if stopped:  # someone asked it to stop, and its worker is gone: it has stopped
                audit.record(session, action=f"{kind}.cancelled", subject_type="task", subject_id=task_id)
                continue
            requeued = session.execute(
                update(Task)
                .where(*still)
                .values(status=TaskStatus.PENDING, stage="worker lost; waiting to run again", updated_at=now)
            ).rowcount
            if requeued:
                lost.append((task_id, kind))
        waiting = session.exec(
            select(Task.id, Task.kind).where(
                Task.status == TaskStatus.PENDING,
                Task.updated_at <= now - timedelta(seconds=pending_older_than),
            )
        ).all()
        return list(dict.fromkeys([*lost, *waiting]))
