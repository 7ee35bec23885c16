"""Core's :class:`~core.work.WorkSender` on Dramatiq, by id; classify messages are coalesced.

Messages are addressed by actor name on the broker this process installed, where ``workers.actors``
registered its actors; so this module needs neither the actors nor the runtime they use.

One message per batch of work: a classify message starts a *drain* — its worker classifies the job
it names, then keeps claiming batches of waiting jobs until none is left. With the in-process queue
the drains run in this very process, so the sender knows how many are running and sends no message
while enough of them are (:class:`Drains`); a job committed before that check is found by a running
drain's next claim. With Redis or RabbitMQ the drains run in other processes: every job still gets
a message, and one whose job a drain already took finds nothing to do.
"""

from __future__ import annotations

import threading
import time

import dramatiq

CLASSIFY_ACTOR = "documents.classify"
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


class QueueSender:
    def __init__(self, *, coalesce: bool = False) -> None:
        self.coalesce = coalesce

    def send_classify(self, job_id: str) -> None:
        if self.coalesce and not DRAINS.admit():
            return  # a running drain of this process claims it
        dramatiq.get_broker().get_actor(CLASSIFY_ACTOR).send(job_id)

    def send_task(self, task_id: str, kind: str) -> None:
        dramatiq.get_broker().get_actor(TASK_ACTORS[kind]).send(task_id)
