"""Core's :class:`~core.work.WorkSender` on Dramatiq: one message per job or task, by id.

Messages are addressed by actor name on the broker this process installed, where ``workers.actors``
registered its actors; so this module needs neither the actors nor the runtime they use.
"""

from __future__ import annotations

import dramatiq

CLASSIFY_ACTOR = "documents.classify"
# Which actor runs each kind of background task (see core.services.tasks.KINDS).
TASK_ACTORS = {"training": "models.train", "synthesis": "synthesis.generate", "unpack": "archives.unpack"}


class QueueSender:
    def send_classify(self, job_id: str) -> None:
        dramatiq.get_broker().get_actor(CLASSIFY_ACTOR).send(job_id)

    def send_task(self, task_id: str, kind: str) -> None:
        dramatiq.get_broker().get_actor(TASK_ACTORS[kind]).send(task_id)
