"""Connecting a process to the queue: the sender core's use cases send work through, the worker
threads (in-process queue) and the sweeper.

With the in-process queue (no ``HERON_BROKER_URL``) the host process also runs the worker
threads; with Redis or RabbitMQ it only enqueues and ``heron worker`` processes do the work.
Either way a sweeper re-sends jobs whose message was lost (the database is the source of truth).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dramatiq

from core.events import JOB_EVENTS
from core.runtime import Runtime
from core.services import leases, recovery
from core.work import WorkSender
from workers import context
from workers.broker import install_broker
from workers.doorbell import Doorbell, DoorbellSender, answers, socket_path
from workers.sender import DRAINS, BackgroundSender, QueueSender

log = logging.getLogger(__name__)
SWEEP_INTERVAL_SECONDS = 10.0
# How long a process whose sweep failed leaves the sweeper lease to the others.
STAND_ASIDE_SECONDS = 60.0
SWEEPER_LEASE = "sweeper"
# A running task whose run holds no lease (one started by an earlier version) lost its worker once
# silent this long; runs hold a renewed lease and are seen to be lost within its time to live.
TASK_SILENCE_SECONDS = 30 * 60


@dataclass
class WorkerHandle:
    broker: dramatiq.Broker
    in_process: bool = False
    worker: dramatiq.Worker | None = None
    sweeper: threading.Thread | None = None
    doorbell: Doorbell | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self.stopping.set()
        if self.doorbell is not None:
            self.doorbell.close()
        if self.worker is not None:
            self.worker.stop(timeout=10_000)
        if self.sweeper is not None:
            self.sweeper.join(timeout=5)


_handle: WorkerHandle | None = None
_lock = threading.Lock()
_background: BackgroundSender | None = None


def _external_sender() -> BackgroundSender:
    """This process's sender to Redis or RabbitMQ: one thread, however many runtimes use it."""
    global _background
    if _background is None:
        _background = BackgroundSender(QueueSender(coalesce=True))
    return _background


def start(runtime: Runtime, *, run_worker: bool | None = None, sweep: bool | None = None) -> WorkerHandle:
    """Connect this process to the queue (``runtime.work`` sends to it from now on); run worker
    threads here when the queue is in-process. Starting again only connects another runtime."""
    global _handle
    with _lock:
        if _handle is not None:
            if _handle.in_process:
                runtime.work = QueueSender(coalesce=_handle.worker is not None)
            else:
                runtime.work = _external_sender()
            return _handle
        # With Redis/RabbitMQ every sender coalesces, and sends after its caller has answered; an
        # in-process queue coalesces only once its drains run here.
        if runtime.settings.in_process_broker:
            runtime.work = QueueSender(coalesce=False)
        else:
            runtime.work = _external_sender()
        context.install(runtime)
        broker = install_broker(runtime.settings)
        import workers.actors  # noqa: F401  (registers the actors on the broker just installed)

        in_process = runtime.settings.in_process_broker
        handle = WorkerHandle(broker=broker, in_process=in_process)
        if run_worker if run_worker is not None else in_process:
            warm_up(runtime)
            handle.worker = dramatiq.Worker(broker, worker_threads=runtime.settings.worker_threads)
            handle.worker.start()
            if in_process:
                # The drains run in this process: as many as it has threads, one message each.
                DRAINS.limit = runtime.settings.worker_threads
                runtime.work = QueueSender(coalesce=True)
            JOB_EVENTS.local_workers = True  # jobs end in this process: waiters here are woken
            if in_process:  # processes started beside this one (the console) send their work here
                handle.doorbell = Doorbell(socket_path(runtime.settings.data_dir))
                if not handle.doorbell.open():
                    handle.doorbell = None
        if sweep if sweep is not None else in_process:
            handle.sweeper = threading.Thread(
                target=_sweep_forever, args=(runtime, handle.stopping), name="heron-sweeper", daemon=True
            )
            handle.sweeper.start()
        _handle = handle
        return handle


def warm_up(runtime: Runtime | Callable[[], Runtime]) -> None:
    """Start what classifying needs (an extraction process per worker thread, MiniLM, its word
    vectors, the active model) before the first job rather than inside it: a cold `heron worker`
    process held its first batch for 2.3-3.7 s. A database that does not answer yet only defers
    this to the first job: it never stops a worker."""
    try:
        current = runtime() if callable(runtime) else runtime
        current.extractor.start(current.settings.worker_threads)  # they import while MiniLM loads
        current.encoder.static(["warm-up"])
        current.encoder.embed(["warm-up"])
        current.models.active(current.engine)
    except Exception as error:
        log.warning("warm-up deferred to the first job: %s", error)


def connect_beside_workers(runtime: Runtime) -> None:
    """Connect a process that serves people, not the queue (the console): with the in-process
    queue, hand work to the worker process on this data directory when one answers (no second
    set of workers, no second MiniLM); otherwise, or when it stops answering, run workers here."""
    bell = socket_path(runtime.settings.data_dir)
    if not runtime.settings.in_process_broker or not answers(bell):
        start(runtime)
        return

    def start_own() -> WorkSender:
        start(runtime)
        return runtime.work

    runtime.work = DoorbellSender(bell, start_own)


def serving() -> Runtime | None:
    """The runtime this process's queue connection was started for (its workers run its jobs)."""
    with _lock:
        return context.runtime() if _handle is not None else None


def stop() -> None:
    global _handle
    with _lock:
        if _handle is not None:
            _handle.stop()
            _handle = None


def sweep_once(runtime: Runtime, *, pending_older_than: float) -> list[str]:
    return recovery.resend_lost_work(
        engine=runtime.engine,
        work=runtime.work,
        pending_older_than=pending_older_than,
        lease_seconds=runtime.settings.job_lease_seconds,
        silent_for=TASK_SILENCE_SECONDS,
        max_attempts=runtime.settings.max_attempts,
    )


def _sweep_forever(runtime: Runtime | Callable[[], Runtime], stopping: threading.Event) -> None:
    # At start-up every waiting job is re-sent (an in-process queue loses its messages with
    # its process); afterwards only those that have waited far longer than a normal queue wait.
    # Whichever process holds the "sweeper" lease sweeps: one sweeper at a time across machines.
    # A process whose sweep fails (it reaches the database but not its broker: a typo in
    # HERON_BROKER_URL, a machine cut off from Redis) gives the lease up and leaves it to the others
    # for a while: holding it, it kept every healthy worker from re-sending lost work.
    owner = leases.new_owner()
    pending_older_than = 0.0
    stand_aside_until = 0.0
    while not stopping.is_set():
        current = None
        try:
            current = runtime() if callable(runtime) else runtime
            ttl = 3 * SWEEP_INTERVAL_SECONDS
            if time.monotonic() >= stand_aside_until and leases.try_acquire(
                current.engine, SWEEPER_LEASE, owner, ttl_seconds=ttl
            ):
                sweep_once(current, pending_older_than=pending_older_than)
                pending_older_than = max(5.0, current.settings.job_lease_seconds / 2)
        except Exception:
            log.exception(
                "job sweep failed; leaving it to other processes, retrying in %ss", STAND_ASIDE_SECONDS
            )
            stand_aside_until = time.monotonic() + STAND_ASIDE_SECONDS
            if current is not None:
                with contextlib.suppress(Exception):  # the database may be what failed
                    leases.release(current.engine, SWEEPER_LEASE, owner)
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
