"""The review queue: predictions a person should look at, most uncertain first."""

from __future__ import annotations

import math

from sqlmodel import Session, select

from core.db.tables import Feedback, FeedbackStatus, Job, JobStatus, Prediction
from core.errors import Invalid
from core.services.jobs import JobView, job_view

STRATEGIES = ("least_confidence", "margin", "entropy")


def uncertainty(scores: dict[str, float], strategy: str) -> float:
    """Higher means less sure. least_confidence: 1 − top; margin: 1 − (top − second); entropy."""
    ranked = sorted(scores.values(), reverse=True) or [0.0]
    if strategy == "least_confidence":
        return 1.0 - ranked[0]
    if strategy == "margin":
        return 1.0 - (ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0))
    if strategy == "entropy":
        return -sum(p * math.log(p) for p in ranked if p > 0)
    raise Invalid(f"Unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}.")


def review_queue(
    *,
    session: Session,
    strategy: str = "least_confidence",
    reason: str | None = None,
    label: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[JobView], int]:
    """Completed jobs whose prediction needs review and that nobody has labelled yet."""
    if strategy not in STRATEGIES:
        raise Invalid(f"Unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}.")
    labelled = select(Feedback.job_id).where(Feedback.status != FeedbackStatus.rejected)
    query = (
        select(Job, Prediction)
        .join(Prediction, Prediction.job_id == Job.id)
        .where(Job.status == JobStatus.COMPLETED, Prediction.needs_review, Job.id.not_in(labelled))
    )
    if label:
        query = query.where(Prediction.label == label)
    rows = [
        (job, prediction)
        for job, prediction in session.exec(query).all()
        if not reason or reason in (prediction.review_reasons or [])
    ]
    rows.sort(key=lambda row: (-uncertainty(row[1].scores, strategy), row[0].created_at))
    return [job_view(session, job) for job, _ in rows[offset : offset + limit]], len(rows)
