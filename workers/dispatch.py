"""The one seam through which the API and the console send work.

With the in-process queue (no ``HERON_BROKER_URL``) the host process also runs the worker
threads; with Redis or RabbitMQ it only enqueues and ``heron worker`` processes do the work.
Either way a sweeper re-sends jobs whose message was lost (the database is the source of truth).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dramatiq

from core.runtime import Runtime
from core.services import datasets, documents, industries, leases, tasks, training
from core.services.jobs import requeue_stale_jobs
from core.services.tasks import TaskView
from workers import context
from workers.broker import install_broker

log = logging.getLogger(__name__)
SWEEP_INTERVAL_SECONDS = 10.0
SWEEPER_LEASE = "sweeper"
# A running task reports progress at least this often (training: per stage; synthesis: per batch).
TASK_SILENCE_SECONDS = 30 * 60


@dataclass
class WorkerHandle:
    broker: dramatiq.Broker
    worker: dramatiq.Worker | None = None
    sweeper: threading.Thread | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self.stopping.set()
        if self.worker is not None:
            self.worker.stop(timeout=10_000)
        if self.sweeper is not None:
            self.sweeper.join(timeout=5)


_handle: WorkerHandle | None = None
_lock = threading.Lock()


def start(runtime: Runtime, *, run_worker: bool | None = None, sweep: bool | None = None) -> WorkerHandle:
    """Connect this process to the queue; run worker threads here when the queue is in-process."""
    global _handle
    with _lock:
        if _handle is not None:
            return _handle
        context.install(runtime)
        broker = install_broker(runtime.settings)
        import workers.actors  # noqa: F401  (registers the actors on the broker just installed)

        in_process = runtime.settings.in_process_broker
        handle = WorkerHandle(broker=broker)
        if run_worker if run_worker is not None else in_process:
            # Load MiniLM now rather than inside the first escalated job (a second of latency).
            runtime.encoder.embed(["warm-up"])
            handle.worker = dramatiq.Worker(broker, worker_threads=runtime.settings.worker_threads)
            handle.worker.start()
        if sweep if sweep is not None else in_process:
            handle.sweeper = threading.Thread(
                target=_sweep_forever, args=(runtime, handle.stopping), name="heron-sweeper", daemon=True
            )
            handle.sweeper.start()
        _handle = handle
        return handle


def stop() -> None:
    global _handle
    with _lock:
        if _handle is not None:
            _handle.stop()
            _handle = None


def send_classify(job_id: str) -> None:
    from workers.actors import classify_job

    classify_job.send(job_id)


def send_task(task_id: str, kind: str) -> None:
    """Send the message that runs a background task (its row is already committed)."""
    from workers.actors import TASK_ACTORS

    TASK_ACTORS[kind].send(task_id)


def submit_upload(
    runtime: Runtime,
    *,
    chunks: Iterable[bytes],
    filename: str | None,
    client_content_type: str | None = None,
    submitted_by: str | None = None,
    batch_id: str | None = None,
) -> documents.Submission:
    """Store one upload and create its job (or, for a ZIP, its unpack task), then send it to a
    worker once that is committed: what the API's upload routes and the console's Classify page do."""
    submission = documents.submit_batch(
        engine=runtime.engine,
        blobs=runtime.blobs,
        chunks=chunks,
        filename=filename,
        client_content_type=client_content_type,
        max_bytes=runtime.settings.max_upload_bytes,
        submitted_by=submitted_by,
        limits=runtime.extraction_limits,
        batch_id=batch_id,
    )
    for job in submission.jobs:
        send_classify(job.id)
    if submission.unpack_task_id:
        send_task(submission.unpack_task_id, "unpack")
    return submission


def request_training(runtime: Runtime, actor: str | None = None, *, incremental: bool = False) -> TaskView:
    """Queue a training run (or join the one already waiting) and send it to a worker."""
    task, coalesced = training.request_training(
        engine=runtime.engine, mode="incremental" if incremental else "full", actor=actor
    )
    if not coalesced:
        send_task(task.id, task.kind)
    return task


def request_synthesis(runtime: Runtime, industry: str, count: int, actor: str | None = None) -> TaskView:
    """Queue the generation of ``count`` synthetic documents of an industry and send it to a worker.

    Without a configured LLM the task is still created and ends at once with ``llm_not_configured``.
    """
    from core.services import synthesis

    task = synthesis.request_synthesis(
        engine=runtime.engine, industry=industry, count=count, actor=actor, settings=runtime.settings
    )
    if task.status == "PENDING":
        send_task(task.id, task.kind)
    return task


@dataclass(frozen=True)
class IndustryAdded:
    name: str
    description: str
    examples_added: int
    example_errors: list[dict[str, str]]
    synthesis_task: TaskView | None
    training_task: TaskView | None


def add_industry(
    runtime: Runtime,
    *,
    name: str,
    description: str = "",
    example_files: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    synthetic: int = 0,
    actor: str | None = None,
) -> IndustryAdded:
    """Create an industry (predictable at once from its description), store its example files,
    and queue synthesis and training: the whole "add an industry" flow for the API, console and CLI."""
    industry = industries.create_industry(
        engine=runtime.engine, name=name, description=description, actor=actor
    )
    added = {"added": 0, "errors": []}
    if example_files:
        added = datasets.add_example_files(
            engine=runtime.engine,
            industry=industry.name,
            files=list(example_files),
            limits=runtime.extraction_limits,
            actor=actor,
            extractor=runtime.extractor,
        )
    # Always queue training, examples or not: the new industry is served once a version that knows
    # it is live (seconds), the same way whatever the timing, never by a guess a cache makes.
    training_task = request_training(runtime, actor, incremental=True)
    synthesis_task = request_synthesis(runtime, industry.name, synthetic, actor) if synthetic else None
    return IndustryAdded(
        name=industry.name,
        description=industry.description,
        examples_added=added["added"],
        example_errors=added["errors"],
        synthesis_task=synthesis_task,
        training_task=training_task,
    )


def update_industry(
    runtime: Runtime,
    *,
    name: str,
    new_name: str | None = None,
    description: str | None = None,
    catch_all: bool | None = None,
    actor: str | None = None,
) -> tuple[industries.Industry, TaskView]:
    """Rename, redescribe or re-role an industry and queue the training that makes it live."""
    industry = industries.update_industry(
        engine=runtime.engine,
        name=name,
        new_name=new_name,
        description=description,
        catch_all=catch_all,
        actor=actor,
    )
    return industry, request_training(runtime, actor, incremental=True)


def retire_industry(runtime: Runtime, *, name: str, actor: str | None = None) -> industries.Industry:
    """Retire an industry (no longer predicted at once) and queue training without it."""
    industry = industries.retire_industry(engine=runtime.engine, name=name, actor=actor)
    request_training(runtime, actor, incremental=True)
    return industry


def sweep_once(runtime: Runtime, *, pending_older_than: float) -> list[str]:
    job_ids = requeue_stale_jobs(
        engine=runtime.engine,
        pending_older_than=pending_older_than,
        lease_seconds=runtime.settings.job_lease_seconds,
    )
    for job_id in job_ids:
        send_classify(job_id)
    if job_ids:
        log.info("re-sent %d job(s) whose message was lost", len(job_ids))
    stale = tasks.stale_tasks(
        runtime.engine, pending_older_than=pending_older_than, silent_for=TASK_SILENCE_SECONDS
    )
    for task_id, kind in stale:
        send_task(task_id, kind)
    if stale:
        log.info("re-sent %d background task(s) whose message or worker was lost", len(stale))
    return job_ids


def _sweep_forever(runtime: Runtime | Callable[[], Runtime], stopping: threading.Event) -> None:
    # At start-up every waiting job is re-sent (an in-process queue loses its messages with
    # its process); afterwards only those that have waited far longer than a normal queue wait.
    # Whichever process holds the "sweeper" lease sweeps: one sweeper at a time across machines.
    owner = leases.new_owner()
    pending_older_than = 0.0
    while not stopping.is_set():
        try:
            current = runtime() if callable(runtime) else runtime
            ttl = 3 * SWEEP_INTERVAL_SECONDS
            if leases.try_acquire(current.engine, SWEEPER_LEASE, owner, ttl_seconds=ttl):
                sweep_once(current, pending_older_than=pending_older_than)
                pending_older_than = max(5.0, current.settings.job_lease_seconds / 2)
        except Exception:
            log.exception("job sweep failed; retrying in %ss", SWEEP_INTERVAL_SECONDS)
        stopping.wait(SWEEP_INTERVAL_SECONDS)


def start_sweeper(runtime: Runtime | Callable[[], Runtime]) -> threading.Event:
    """Run the sweeper in a daemon thread of this process (``heron worker`` processes do this);
    returns the event that stops it."""
    stopping = threading.Event()
    thread = threading.Thread(
        target=_sweep_forever, args=(runtime, stopping), name="heron-sweeper", daemon=True
    )
    thread.start()
    return stopping


def broker_status(settings) -> str:  # type: ignore[no-untyped-def]
    """``in-process``, ``ok`` or a sentence saying why the external broker cannot be reached."""
    import socket
    from urllib.parse import urlparse

    if settings.in_process_broker:
        return "in-process"
    url = urlparse(settings.broker_url)
    port = url.port or (6379 if url.scheme.startswith("redis") else 5672)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", port), timeout=1.0):
            return "ok"
    except OSError as error:
        return f"unreachable: {error}"
