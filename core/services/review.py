"""The review queue: predictions a person should look at, most uncertain first."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Select, Text, cast, delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from core.classify.model import REVIEW_REASONS
from core.db import session_scope
from core.db.tables import (
    EvaluationReport,
    ExampleStatus,
    Job,
    JobStatus,
    Prediction,
    ReviewClaim,
    TrainingExample,
    utcnow,
)
from core.errors import Conflict, Invalid
from core.services.examples import label_kept, preview
from core.services.feedback import corrected_documents
from core.services.industries import require_known_industry
from core.services.jobs import JobView, existing_job, job_views
from core.services.training import LABEL_ISSUES_DATASET
from core.uncertainty import STRATEGIES, uncertainty

__all__ = [
    "LABEL_ISSUES",
    "REVIEW_REASONS",
    "STRATEGIES",
    "Claim",
    "LabelIssueView",
    "claim",
    "claim_next",
    "label_issue_queue",
    "release_claim",
    "review_queue",
    "uncertainty",
]

# The review strategy that lists training examples to look at again instead of predictions.
LABEL_ISSUES = "label_issues"

# The stored uncertainty each strategy orders the queue by (see core.uncertainty).
UNCERTAINTY_COLUMNS = {
    "least_confidence": Prediction.uncertainty_least_confidence,
    "margin": Prediction.uncertainty_margin,
    "entropy": Prediction.uncertainty_entropy,
}


def review_queue(
    *,
    engine: Engine,
    strategy: str = "least_confidence",
    reason: str | None = None,
    label: str | None = None,
    limit: int = 50,
    offset: int = 0,
    annotator: str | None = None,
    exclude: Collection[str] = (),
) -> tuple[list[JobView], int]:
    """Completed jobs whose prediction needs review and that nobody has labelled yet.

    Items another annotator has claimed (and whose claim has not run out) are left out; the
    caller's own claims stay in. ``exclude`` leaves out the documents of the jobs the caller has
    skipped (another upload of a skipped document is skipped too).
    """
    with session_scope(engine) as session:
        return _queue(
            session,
            strategy=strategy,
            reason=reason,
            label=label,
            limit=limit,
            offset=offset,
            annotator=annotator,
            exclude=exclude,
        )


def _queue(
    session: Session,
    *,
    strategy: str,
    reason: str | None,
    label: str | None,
    limit: int,
    offset: int,
    annotator: str | None,
    exclude: Collection[str],
) -> tuple[list[JobView], int]:
    if strategy not in STRATEGIES:
        raise Invalid(f"Unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}.")
    if reason and reason not in REVIEW_REASONS:
        raise Invalid(f"Unknown review reason {reason!r}; use one of {', '.join(REVIEW_REASONS)}.")
    name = require_known_industry(session, label) if label else None

    skipped = aliased(Job)
    skipped_documents = select(skipped.document_id).where(skipped.id.in_(list(exclude)))

    def wanted(job: Any, prediction: Any) -> list[Any]:
        """What makes an upload an item of this queue (the caller's filters included)."""
        conditions = [job.status == JobStatus.COMPLETED, prediction.needs_review]
        if name:
            conditions.append(prediction.label == name)
        if reason:  # a JSON list of words from a fixed vocabulary, each quoted in its text
            conditions.append(cast(prediction.review_reasons, Text).contains(f'"{reason}"', autoescape=True))
        if exclude:  # the documents of the skipped uploads: another upload of one is skipped too
            conditions.append(job.document_id.not_in(skipped_documents))
        return conditions

    # A document is reviewed once, whichever upload of it: none labelled through any of its jobs
    # (or approved as an example) is shown again, and of several uploads that fit the filters
    # only the first is shown.
    trained = select(TrainingExample.document_id).where(
        TrainingExample.status == ExampleStatus.approved, TrainingExample.document_id.is_not(None)
    )
    claimed_by_others = held_by_others(annotator)
    earlier, its = aliased(Job), aliased(Prediction)
    first_upload = (earlier.created_at < Job.created_at) | (
        (earlier.created_at == Job.created_at) & (earlier.id < Job.id)
    )
    earlier_upload = (
        select(earlier.id)
        .join(its, its.job_id == earlier.id)
        .where(earlier.document_id == Job.document_id, first_upload, *wanted(earlier, its))
        .exists()
    )
    query = (
        select(Job)
        .join(Prediction, Prediction.job_id == Job.id)
        .where(
            *wanted(Job, Prediction),
            Job.document_id.not_in(corrected_documents()),
            Job.document_id.not_in(trained),
            Job.id.not_in(claimed_by_others),
            ~earlier_upload,
        )
    )
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    page = query.order_by(UNCERTAINTY_COLUMNS[strategy].desc(), Job.created_at, Job.id)
    rows = session.exec(page.offset(offset).limit(limit)).all()
    return job_views(session, rows), int(total)


@dataclass(frozen=True)
class Claim:
    job_id: str
    claimed_by: str
    expires_at: datetime


def claim(*, engine: Engine, job_id: str, annotator: str, seconds: int) -> Claim:
    """Hold a review item for ``seconds`` so nobody else is shown it; claiming again extends it.

    Raises:
        NotFound: no such job. Conflict: someone else holds it, or it failed (no text to label).
    """
    now = utcnow()
    expires = now + timedelta(seconds=seconds)
    try:
        with session_scope(engine) as session:
            job = existing_job(session, job_id)
            if job.status == JobStatus.FAILED:  # its document could not be read: nothing to label
                raise Conflict(f"Job {job_id!r} is FAILED ({job.error_code}): there is no text to review.")
            # Ours already, or run out: take it only if it still is when the row is written (two
            # people claiming a run-out item at once both read it as free, and both were told
            # they held it).
            taken = session.execute(
                update(ReviewClaim)
                .where(
                    ReviewClaim.job_id == job_id,
                    (ReviewClaim.claimed_by == annotator) | (ReviewClaim.expires_at <= now),
                )
                .values(claimed_by=annotator, expires_at=expires)
            ).rowcount
            if not taken:
                held = session.get(ReviewClaim, job_id)
                if held is not None:
                    raise Conflict(
                        f"Job {job_id!r} is being reviewed by {held.claimed_by} until "
                        f"{_as_utc(held.expires_at):%H:%M:%S} UTC."
                    )
                session.add(ReviewClaim(job_id=job_id, claimed_by=annotator, expires_at=expires))
    except IntegrityError as race:
        raise Conflict(f"Job {job_id!r} was just claimed by someone else.") from race
    return Claim(job_id=job_id, claimed_by=annotator, expires_at=expires)


def claim_next(
    *,
    engine: Engine,
    annotator: str,
    seconds: int,
    strategy: str = "least_confidence",
    reason: str | None = None,
    label: str | None = None,
    exclude: Collection[str] = (),
) -> JobView | None:
    """Claim the most uncertain item nobody else holds and return it; None when the queue is empty.

    ``exclude``: job ids the annotator skipped, so skipping moves on instead of coming back.
    """
    for _ in range(5):  # another annotator may take the same item between the read and the claim
        with session_scope(engine) as session:
            items, _total = _queue(
                session,
                strategy=strategy,
                reason=reason,
                label=label,
                limit=1,
                offset=0,
                annotator=annotator,
                exclude=exclude,
            )
        if not items:
            return None
        try:
            claim(engine=engine, job_id=items[0].id, annotator=annotator, seconds=seconds)
        except Conflict:
            continue
        return items[0]
    return None


def release_claim(*, engine: Engine, job_id: str, annotator: str | None = None) -> bool:
    """Give an item back to the queue (only the holder's claim, unless ``annotator`` is None).
    Returns whether a claim was given back (False: nobody held it).

    Raises:
        NotFound: no such job. Conflict: another annotator holds it (their claim stays).
    """
    with session_scope(engine) as session:
        existing_job(session, job_id)
        held = session.get(ReviewClaim, job_id)
        if held is None or _as_utc(held.expires_at) <= utcnow():
            return False
        if annotator is not None and held.claimed_by != annotator:
            raise Conflict(
                f"Job {job_id!r} is held by {held.claimed_by}, not {annotator}: only they can give it back."
            )
        gone = delete(ReviewClaim).where(
            ReviewClaim.job_id == job_id, ReviewClaim.claimed_by == held.claimed_by
        )
        return bool(session.execute(gone).rowcount)  # 0: it expired and someone took it meanwhile


def held_by_others(annotator: str | None) -> Select:
    """The jobs someone other than ``annotator`` holds right now (every held job when None)."""
    held = select(ReviewClaim.job_id).where(ReviewClaim.expires_at > utcnow())
    return held if annotator is None else held.where(ReviewClaim.claimed_by != annotator)


def holders(*, engine: Engine, job_ids: Collection[str], annotator: str) -> dict[str, str]:
    """Which of ``job_ids`` someone other than ``annotator`` holds now, and who."""
    if not job_ids:
        return {}
    with session_scope(engine) as session:
        held = held_by_others(annotator).add_columns(ReviewClaim.claimed_by)
        rows = session.execute(held.where(ReviewClaim.job_id.in_(list(job_ids))))
        return {job_id: holder for job_id, holder in rows}


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands datetimes back naive; they were stored in UTC.
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LabelIssueView:
    """An approved example the active model, cross-validated, confidently places elsewhere."""

    example_id: int
    label: str
    suggested: str
    self_confidence: float
    suggested_confidence: float
    source: str
    origin: str | None
    preview: str
    job_id: str | None
    model_version: int | None


def label_issue_queue(
    *, engine: Engine, limit: int = 50, offset: int = 0
) -> tuple[list[LabelIssueView], int]:
    """Label issues as the latest full training run found them, least self-confident first.

    Only a full run cross-validates (an incremental update after an approval must take seconds; one
    follows it once the examples have grown enough, see ``training.refresh_due``), so the list is
    that of the newest version that has one (``model_version``). An example
    relabelled, rejected or kept since is left out; its job (the latest one of its document, if it came
    through one) lets the console show the original.
    """
    with session_scope(engine) as session:
        found = session.exec(
            select(EvaluationReport.model_version_id, EvaluationReport.report)
            .where(EvaluationReport.dataset == LABEL_ISSUES_DATASET)
            .order_by(EvaluationReport.model_version_id.desc())
        ).first()
        version, report = found if found else (None, {})
        issues = list(report.get("issues", []))
        rows = {
            row.id: row
            for row in session.exec(
                select(TrainingExample).where(TrainingExample.id.in_([i["example_id"] for i in issues]))
            )
        }
        standing = [
            issue
            for issue in issues
            if issue["example_id"] in rows
            and rows[issue["example_id"]].status == ExampleStatus.approved
            and rows[issue["example_id"]].label == issue["label"]
            and not label_kept(rows[issue["example_id"]])
        ]
        page = standing[offset : offset + limit]
        documents = [rows[i["example_id"]].document_id for i in page if rows[i["example_id"]].document_id]
        jobs = {}
        for job_id, document_id in session.exec(
            select(Job.id, Job.document_id).where(Job.document_id.in_(documents)).order_by(Job.created_at)
        ):
            jobs[document_id] = job_id
        items = []
        for issue in page:
            row = rows[issue["example_id"]]
            items.append(
                LabelIssueView(
                    example_id=row.id,
                    label=row.label,
                    suggested=issue["suggested"],
                    self_confidence=issue["self_confidence"],
                    suggested_confidence=issue["suggested_confidence"],
                    source=row.source,
                    origin=row.origin,
                    preview=preview(row.text),
                    job_id=jobs.get(row.document_id),
                    model_version=version,
                )
            )
    return items, len(standing)
