"""People's corrections: recorded as pending until a reviewer decides."""

from __future__ import annotations

from sqlalchemy import Engine

from core.db import session_scope
from core.db.tables import Feedback, Job
from core.errors import NotFound
from core.services import audit
from core.services.industries import require_active_industry


def submit_feedback(*, engine: Engine, job_id: str, label: str, author: str | None = None) -> Feedback:
    """Record a person's label for a job; it waits for a reviewer before it trains anything.

    Raises:
        NotFound: no such job.
        Invalid: the label is not an active industry.
    """
    with session_scope(engine) as session:
        if session.get(Job, job_id) is None:
            raise NotFound(f"Job {job_id!r} does not exist.")
        feedback = Feedback(job_id=job_id, label=require_active_industry(session, label), author=author)
        session.add(feedback)
        session.flush()
        audit.record(
            session,
            action="feedback.created",
            subject_type="feedback",
            subject_id=feedback.id,
            actor=author,
            job_id=job_id,
            label=feedback.label,
        )
    return feedback
