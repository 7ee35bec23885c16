"""The seam through which use cases send follow-up work: "classify this job", "run this task".

A use case commits the row a message names, then tells the sender; ``workers.dispatch`` implements
the sender with Dramatiq actors and puts it on the runtime of every process connected to the queue
(``Runtime.work``). Core never imports the queue: it only knows this protocol.
"""

from __future__ import annotations

from typing import Protocol


class WorkSender(Protocol):
    def send_classify(self, job_id: str) -> None:
        """Have a worker classify this PENDING job (its row is committed)."""

    def send_task(self, task_id: str, kind: str) -> None:
        """Have a worker run this PENDING background task of ``kind`` (its row is committed)."""


class NotConnected(RuntimeError):
    """Work was sent from a process that ``workers.dispatch.start`` did not connect to the queue."""


class NoQueue:
    """The sender of a runtime not connected to any queue: sending there is a programming error.

    The row is committed either way, so nothing is lost: the sweeper of a process connected to the
    queue sends it later.
    """

    def send_classify(self, job_id: str) -> None:
        raise NotConnected(f"Job {job_id!r} was stored, but this process is not connected to a queue.")

    def send_task(self, task_id: str, kind: str) -> None:
        raise NotConnected(
            f"The {kind} task {task_id!r} was stored, but this process is not connected to a queue."
        )
