"""Core's :class:`~core.work.WorkSender` on Dramatiq, by id; classify messages are coalesced.

Messages are addressed by actor name on the broker this process installed, where ``workers.actors``
registered its actors; so this module needs neither the actors nor the runtime they use.

One message per batch of work: a classify message starts a *drain* — its worker classifies the job
it names, then keeps claiming batches of waiting jobs until none is left. A sender checks, after
committing its job, whether a drain is sure to come for it, and sends nothing then:

- with the in-process queue the drains run in this very process, so the sender knows how many are
  running and sends no message while enough of them are (:class:`Drains`);
- with Redis or RabbitMQ the drains run in other processes, but the broker says whether a classify
  message still waits in the queue (:func:`classify_message_waiting`). One that waits has not
  started its drain yet, so that drain's first claim comes after the job was committed. While every
  worker thread is busy, a burst of uploads therefore adds one message, not one each.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time

import dramatiq
from dramatiq.brokers.stub import StubBroker

log = logging.getLogger(__name__)
CLASSIFY_ACTOR = "documents.classify"
# Only classify messages travel on this queue: any message waiting in it starts a drain.
CLASSIFY_QUEUE = "documents"
# Every background task's message (training, synthesis, unpacking) travels on this one. Queues do
# not share out threads (every thread takes from every queue), and each costs its idle consumers:
# a queue and its delay queue, each with a consumer in every worker process (on Redis the queue's
# waits to be woken, the delay queue's looks every 100 ms).
TASK_QUEUE = "tasks"
# Which actor runs each kind of background task (see core.services.tasks.KINDS).
TASK_ACTORS = {"training": "models.train", "synthesis": "synthesis.generate", "unpack": "archives.unpack"}
# A drain silent for this long (one batch stuck in extraction, or a count gone wrong) no longer
# holds messages back: sending one more is harmless, stranding a job until the sweeper is not.
SILENT_DRAIN_SECONDS = 5.0


class Drains:
    """How many classify drains this process runs, and whether one more message is needed.

    The handshake that loses no job: a sender checks *after* committing its job, under the lock; a
    drain that finds nothing leaves under the same lock and then claims once more. Whichever drain
    a sender counted on therefore claims after that job was committed.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self._last_beat = 0.0
        self._lock = threading.Lock()

    def admit(self) -> bool:
        """Whether to send a message for a job just committed (and count it as a running drain)."""
        with self._lock:
            if self.running >= self.limit and time.monotonic() - self._last_beat < SILENT_DRAIN_SECONDS:
                return False
            self.running += 1
            return True

    def beat(self) -> None:
        """A drain is about to claim: jobs committed before now will be seen."""
        self._last_beat = time.monotonic()

    def leave(self) -> None:
        with self._lock:
            # Never below zero: a message sent around the count (a retry, a slow-lane re-send)
            # ends like any other. Counting too few only costs a message.
            self.running = max(0, self.running - 1)

    def rejoin(self) -> None:
        with self._lock:
            self.running += 1


# The drains of this process (its worker threads run them); the limit is set by workers.dispatch.
DRAINS = Drains(limit=1)


def classify_message_waiting(broker: dramatiq.Broker) -> bool:
    """Whether a classify message waits in the external broker's queue, not yet taken by a worker
    (each worker takes a few ahead of its threads: those no longer count). When the broker cannot
    say, False: one more message is harmless, a stranded job is not."""
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from dramatiq.brokers.redis import RedisBroker

    try:
        if isinstance(broker, RedisBroker):  # the queue is a list of message ids
            return bool(broker.client.llen(f"{broker.namespace}:{CLASSIFY_QUEUE}"))
        if isinstance(broker, RabbitmqBroker) and CLASSIFY_QUEUE in broker.queues - broker.queues_pending:
            # a passive declare answers with the count of ready messages
            reply = broker.channel.queue_declare(queue=CLASSIFY_QUEUE, passive=True)
            return reply.method.message_count > 0
    except Exception as error:  # the send that follows reports a broker that is down
        log.debug("could not count the waiting classify messages: %s", error)
        if isinstance(broker, RabbitmqBroker):
            del broker.channel  # a failed declare closes this thread's channel
    return False


class QueueSender:
    """Sends by actor name on this process's broker. ``coalesce``: send a classify message only
    when no drain is sure to come for the job (see the module's docstring); only for a process
    whose in-process queue runs its own drains, or any process on Redis or RabbitMQ."""

    def __init__(self, *, coalesce: bool = False) -> None:
        self.coalesce = coalesce

    def send_classify(self, job_id: str) -> bool:
        """Send a classify message for ``job_id`` unless a drain is sure to come; True if sent."""
        broker = dramatiq.get_broker()
        if self.coalesce:
            if isinstance(broker, StubBroker):
                drain_coming = not DRAINS.admit()
            else:
                drain_coming = classify_message_waiting(broker)
            if drain_coming:
                return False  # a drain that has not claimed yet claims it
        broker.get_actor(CLASSIFY_ACTOR).send(job_id)
        return True

    def send_task(self, task_id: str, kind: str) -> None:
        dramatiq.get_broker().get_actor(TASK_ACTORS[kind]).send(task_id)


# How long a stopping process waits for the sends it has queued (BackgroundSender.flush).
FLUSH_SECONDS = 5.0
# A send that failed is tried again after this long, then twice as long each time, up to the max.
RETRY_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


class BackgroundSender:
    """Sends on a thread of its own, after the caller has moved on: for the API and the console on
    Redis or RabbitMQ, whose uploads otherwise waited for the broker's round trips (counting the
    waiting classify messages, then sending) before answering their client.

    The job is committed before it is handed over here, so a send that fails (the broker is down)
    or that a dying process never makes loses nothing: the workers' sweeper re-sends jobs whose
    message was lost. The upload is not failed for it. A send that failed is tried again here
    every RETRY_SECONDS (doubling, up to RETRY_MAX_SECONDS) until it goes through, so work waits
    seconds after a broker blip rather than the sweeper's minutes. A process that stops normally
    first sends what it has queued (:meth:`flush`, at exit).
    """

    def __init__(self, inner: QueueSender) -> None:
        self.inner = inner
        self._queue: queue.Queue[tuple[str, str, str, float]] = queue.Queue()
        # Classify jobs handed over before this moment are covered by a message already sent or
        # found waiting (see _send_forever).
        self._covered_before = 0.0
        # Sends that failed, to try again: one classify job stands for them all (its drain claims
        # every waiting job), each task for itself (id -> kind).
        self._classify_retry: str | None = None
        self._task_retry: dict[str, str] = {}
        self._thread = threading.Thread(target=self._send_forever, name="heron-sender", daemon=True)
        self._thread.start()
        atexit.register(self.flush)

    def send_classify(self, job_id: str) -> None:
        self._queue.put(("classify", job_id, "", time.monotonic()))

    def send_task(self, task_id: str, kind: str) -> None:
        self._queue.put(("task", task_id, kind, time.monotonic()))

    def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Wait until everything queued so far was sent (or failed); False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return False
            time.sleep(0.005)
        return True

    def _send_forever(self) -> None:
        """Sends in order. A classify job handed over while an earlier classify send was under way
        needs nothing more: its job was committed before that send finished, so the drain that
        message starts claims it. (Checked again, the broker may not count a message published a
        moment ago, and a burst that queued up behind the first send sent two.)"""
        wait = RETRY_SECONDS
        retry_at = None  # when to send again what failed (None: nothing failed)
        while True:
            if retry_at is not None and time.monotonic() >= retry_at:
                if self._retry_failed():
                    wait = min(wait * 2, RETRY_MAX_SECONDS)
                    retry_at = time.monotonic() + wait
                else:
                    wait, retry_at = RETRY_SECONDS, None
            timeout = None if retry_at is None else max(retry_at - time.monotonic(), 0.0)
            try:
                what, item_id, kind, handed_over = self._queue.get(timeout=timeout)
            except queue.Empty:
                continue
            try:
                if what == "classify":
                    if handed_over >= self._covered_before:
                        self._send_classify(item_id)
                else:
                    self.inner.send_task(item_id, kind)
                if retry_at is not None:
                    retry_at = time.monotonic()  # the broker answers again: send what failed now
            except Exception:
                message = "could not send %s %s to the broker; trying again within %.0f s"
                log.warning(message, what, item_id, wait, exc_info=True)
                if what == "classify":
                    self._classify_retry = item_id
                else:
                    self._task_retry[item_id] = kind
                if retry_at is None:
                    retry_at = time.monotonic() + wait
            finally:
                self._queue.task_done()

    def _send_classify(self, job_id: str) -> None:
        started = time.monotonic()
        sent = self.inner.send_classify(job_id)
        # Sent: it covers every job handed over until now. Found a message waiting: that one covers
        # the jobs handed over before the look.
        self._covered_before = time.monotonic() if sent else started
        self._classify_retry = None

    def _retry_failed(self) -> bool:
        """Send again what failed; True while some of it still fails."""
        try:
            if self._classify_retry is not None:
                self._send_classify(self._classify_retry)
            for task_id, kind in list(self._task_retry.items()):
                self.inner.send_task(task_id, kind)
                del self._task_retry[task_id]
        except Exception as error:
            log.info("the broker still refuses work: %s", error)
            return True
        log.info("the broker answers again: sent what had failed")
        return False
