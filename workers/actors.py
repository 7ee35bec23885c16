"""Dramatiq actors: message in (ids only), core use case, done. Import after the broker is set."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dramatiq

from core.errors import Conflict
from core.runtime import Runtime
from core.services.documents import run_unpack_task
from core.services.jobs import Handoff, process_slow_job, process_waiting
from core.services.synthesis import run_synthesis_task
from core.services.training import run_training_task
from core.settings import get_settings
from workers import context
from workers.sender import CLASSIFY_QUEUE, DRAINS, TASK_QUEUE

log = logging.getLogger(__name__)
_settings = get_settings()
# How long one classify message drains before handing over to a fresh one.
DRAIN_SECONDS = 2.0


@dramatiq.actor(
    actor_name="documents.classify",
    queue_name=CLASSIFY_QUEUE,
    max_retries=_settings.max_attempts,
    min_backoff=500,
    max_backoff=30_000,
    time_limit=15 * 60 * 1000,
)
def classify_job(job_id: str | None = None) -> None:
    """Classify ``job_id`` (with a batch of other waiting jobs), then drain: keep claiming batches
    until nothing waits. After DRAIN_SECONDS the drain hands over to a fresh message at the back of
    the queue, so training and other work get a thread between batches.

    A message may stand for jobs sent after it (workers.sender), so it drains even when its own job
    was taken. With Redis or RabbitMQ a batch smaller than the batch size ends the drain: nothing
    else waited when it was claimed, and a job sent since then has a message of its own (a sender
    counts only on messages still waiting in the broker), so one more claim would find nothing."""
    runtime = context.runtime()
    counted = True  # this message counts as one of DRAINS until it leaves
    in_process = runtime.settings.in_process_broker
    first, lease = job_id, runtime.settings.job_lease_seconds
    DRAINS.beat()
    try:
        deadline = time.monotonic() + DRAIN_SECONDS
        while True:
            DRAINS.beat()
            claimed = process_waiting(first=first, lease_seconds=lease, **_work(runtime))
            first = None
            if claimed and (in_process or claimed >= runtime.settings.worker_batch_size):
                if time.monotonic() > deadline:
                    classify_job.send()  # the count passes to the next message
                    counted = False
                    return
                continue
            DRAINS.leave()
            counted = False
            # In-process queue: claim once more after leaving. A sender that counted on this drain
            # committed its job before this drain left, so the job is seen now (workers.sender.Drains).
            # With a broker, a sender counts on messages that have not started yet, not on this one.
            if not in_process or not process_waiting(**_work(runtime)):
                return
            DRAINS.rejoin()
            counted = True
    finally:
        if counted:
            DRAINS.leave()


def _work(runtime: Runtime) -> dict:
    return {
        "engine": runtime.engine,
        "blobs": runtime.blobs,
        "models": runtime.models,
        "policy": runtime.policy,
        "max_attempts": runtime.settings.max_attempts,
        "limits": runtime.extraction_limits,
        "batch_size": runtime.settings.worker_batch_size,
        "extractor": runtime.extractor,
        "handoff": Handoff(slow=_to_slow_lane, again=lambda again_id: runtime.work.send_classify(again_id)),
    }


# The slow lane: its own threads (as many as its extraction processes), so a document that
# outgrew the fast lane's budget never holds one of the threads that serve the queue. A job
# waiting here is PROCESSING with a lease; if this process dies, the sweeper queues it again.
_slow_lane: ThreadPoolExecutor | None = None
_slow_lane_lock = threading.Lock()


def _to_slow_lane(job_id: str) -> None:
    global _slow_lane
    with _slow_lane_lock:
        if _slow_lane is None:
            threads = context.runtime().settings.slow_lane_processes
            _slow_lane = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="heron-slow-lane")
        _slow_lane.submit(_read_slowly, job_id)


def _read_slowly(job_id: str) -> None:
    runtime = context.runtime()
    try:
        status = process_slow_job(
            engine=runtime.engine,
            blobs=runtime.blobs,
            models=runtime.models,
            job_id=job_id,
            policy=runtime.policy,
            max_attempts=runtime.settings.max_attempts,
            limits=runtime.extraction_limits,
            extractor=runtime.extractor,
        )
    except Exception:
        # The job is back to PENDING (or FAILED after its last attempt); re-send it at once
        # rather than waiting for the sweeper.
        log.exception("slow-lane job %s failed", job_id, extra={"job_id": job_id})
        classify_job.send(job_id)
        return
    log.debug("job %s %s (slow lane)", job_id, status, extra={"job_id": job_id})


@dramatiq.actor(
    actor_name="models.train",
    queue_name=TASK_QUEUE,
    max_retries=30,
    min_backoff=2_000,
    max_backoff=30_000,
    time_limit=60 * 60 * 1000,
)
def train_model(task_id: str) -> None:
    """Run a training task. While another run holds the training lease, the task waits (PENDING)
    and the message is retried after it; a task that is no longer PENDING is left alone."""
    runtime = context.runtime()
    try:
        outcome = run_training_task(
            engine=runtime.engine,
            task_id=task_id,
            policy=runtime.policy,
            encoder=runtime.training_encoder,
            work=runtime.work,
        )
    except Conflict as busy:
        raise dramatiq.Retry(busy.message, delay=2_000) from busy
    log.info("training task %s: %s", task_id, outcome, extra={"task_id": task_id})


@dramatiq.actor(
    actor_name="synthesis.generate",
    queue_name=TASK_QUEUE,
    # The task row records every ending (bad replies and LLM outages included) and the LLM client
    # retries transient errors itself; a task that is no longer PENDING is left alone anyway.
    max_retries=0,
    time_limit=6 * 60 * 60 * 1000,
)
def generate_synthetic(task_id: str) -> None:
    """Run a synthesis task (which queues the training run that learns what it stored approved)."""
    runtime = context.runtime()
    outcome = run_synthesis_task(
        engine=runtime.engine,
        task_id=task_id,
        settings=runtime.settings,
        models=runtime.models,
        policy=runtime.policy,
        work=runtime.work,
    )
    log.info("synthesis task %s: %s", task_id, outcome, extra={"task_id": task_id})


@dramatiq.actor(
    actor_name="archives.unpack",
    queue_name=TASK_QUEUE,  # not CLASSIFY_QUEUE, where every waiting message must be a drain
    max_retries=3,
    min_backoff=1_000,
    max_backoff=30_000,
    time_limit=15 * 60 * 1000,
)
def unpack_archive(task_id: str) -> None:
    """Unpack a ZIP upload into member jobs (outside the upload request), which it sends on."""
    runtime = context.runtime()
    job_ids = run_unpack_task(
        engine=runtime.engine,
        blobs=runtime.blobs,
        task_id=task_id,
        limits=runtime.extraction_limits,
        work=runtime.work,
    )
    log.info("unpack task %s: %d job(s)", task_id, len(job_ids), extra={"task_id": task_id})
