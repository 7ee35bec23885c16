"""Re-sending work whose message was lost: the database is the source of truth, the queue is not."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from core.services import retraining, tasks
from core.services.jobs import requeue_stale_jobs
from core.services.training import TRAINING_LEASE, TRAINING_LEASE_SECONDS
from core.work import WorkSender

log = logging.getLogger(__name__)


def resend_lost_work(
    *,
    engine: Engine,
    work: WorkSender,
    pending_older_than: float,
    lease_seconds: int,
    silent_for: float,
    max_attempts: int | None = None,
) -> list[str]:
    """Send again the jobs and tasks whose message was lost or whose worker died; returns the job ids.

    A job (or task) still PENDING ``pending_older_than`` seconds after it was queued lost its
    message; a PROCESSING job past its lease, or a RUNNING task silent for ``silent_for`` seconds,
    lost its worker and goes back to PENDING first (a job whose worker died on each of its
    ``max_attempts`` attempts ends FAILED). Sending twice is safe: claiming is atomic. A change to
    the industries or examples that never got its training run gets one.
    """
    job_ids = requeue_stale_jobs(
        engine=engine,
        pending_older_than=pending_older_than,
        lease_seconds=lease_seconds,
        max_attempts=max_attempts,
    )
    for job_id in job_ids:
        work.send_classify(job_id)
    if job_ids:
        log.info("re-sent %d job(s) whose message was lost", len(job_ids))
    stale = tasks.stale_tasks(
        engine,
        pending_older_than=pending_older_than,
        silent_for=silent_for,
        leased={
            "training": (TRAINING_LEASE, TRAINING_LEASE_SECONDS),
            "synthesis": (tasks.RUN_LEASE, tasks.RUN_LEASE_SECONDS),
            "unpack": (tasks.RUN_LEASE, tasks.RUN_LEASE_SECONDS),
        },
    )
    for task_id, kind in stale:
        work.send_task(task_id, kind)
    if stale:
        log.info("re-sent %d background task(s) whose message or worker was lost", len(stale))
    retraining.train_what_was_left(engine=engine, work=work, older_than=pending_older_than)
    return job_ids
