"""People's corrections: recorded as pending until a reviewer decides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Select, func, update
from sqlmodel import Session, select

from core.corpus import content_hash, is_holdout
from core.db import one_at_a_time, session_scope
from core.db.tables import (
    Document,
    ExampleSource,
    ExampleStatus,
    Feedback,
    FeedbackStatus,
    Job,
    JobStatus,
    Prediction,
    Split,
    TrainingExample,
    utcnow,
)
from core.errors import Conflict, Invalid, NotFound
from core.services import audit
from core.services.examples import LABELS_TURN, split_of_text, supersede_other_labels
from core.services.industries import active_industry_names, require_active_industry
from core.services.jobs import existing_job
from core.services.retraining import queue_training
from core.services.tasks import TaskView
from core.work import WorkSender


def submit_feedback(*, engine: Engine, job_id: str, label: str, author: str | None = None) -> FeedbackView:
    """Record a person's label for a job; it waits for a reviewer before it trains anything.

    Raises:
        NotFound: no such job.
        Invalid: the label is not an active industry.
    """
    return submit_feedback_many(engine=engine, job_ids=[job_id], label=label, author=author)[0]


MAX_LABELLED_AT_ONCE = 200


def submit_feedback_many(
    *, engine: Engine, job_ids: list[str], label: str, author: str | None = None
) -> list[FeedbackView]:
    """One label for several jobs in one action ("more like this"): each job gets its own
    correction, by ``author``, waiting for a reviewer as usual. All or none.

    Raises:
        NotFound: one of the jobs does not exist.
        Invalid: no jobs, too many, or the label is not an active industry.
        Conflict: a job has no text to learn from (not read yet, or unreadable).
    """
    job_ids = list(dict.fromkeys(job_ids))
    if not job_ids or len(job_ids) > MAX_LABELLED_AT_ONCE:
        raise Invalid(f"Label between 1 and {MAX_LABELLED_AT_ONCE} jobs at once (got {len(job_ids)}).")
    with session_scope(engine) as session:
        label = require_active_industry(session, label)
        # The same person giving a job the same label again (a retry, a double click) files nothing
        # new: their pending correction stands (each copy waited in the approval queue).
        # Only when it is their latest word on the job: after "finance", "legal", "finance" again is
        # a new correction (reusing the first left "legal" as their latest).
        latest: dict[str, Feedback] = {}
        for row in session.exec(
            select(Feedback)
            .where(
                Feedback.job_id.in_(job_ids),
                Feedback.author == author if author is not None else Feedback.author.is_(None),
            )
            .order_by(Feedback.id)
        ):
            latest[row.job_id] = row
        pending = {
            job_id: row
            for job_id, row in latest.items()
            if row.label == label and row.status == FeedbackStatus.pending
        }
        rows, new = [], []
        for job_id in job_ids:
            _require_text(session, existing_job(session, job_id))
            if job_id in pending:
                rows.append(pending[job_id])
                continue
            new.append(Feedback(job_id=job_id, label=label, author=author))
            rows.append(new[-1])
        session.add_all(new)
        session.flush()
        for feedback in new:
            audit.record(
                session,
                action="feedback.created",
                subject_type="feedback",
                subject_id=feedback.id,
                actor=author,
                job_id=feedback.job_id,
                label=feedback.label,
            )
        return _feedback_views(session, rows)


@dataclass(frozen=True)
class FeedbackView:
    id: int
    job_id: str
    label: str
    status: str
    author: str | None
    reviewer: str | None
    created_at: datetime
    reviewed_at: datetime | None
    predicted: str | None
    disagreement: bool


@dataclass(frozen=True)
class FeedbackDecision:
    """Corrections as decided, and the training run their approval queued (None for rejections)."""

    feedback: list[FeedbackView]
    training_task: TaskView | None
    # How many of the approved documents went to the gold set (judged on, never trained on).
    gold: int = 0


def corrected_documents() -> Select:
    """The ids of documents someone has labelled (a correction pending or approved, through any
    upload of them): the review queue and "more like this" ask about them no more."""
    return (
        select(Job.document_id)
        .join(Feedback, Feedback.job_id == Job.id)
        .where(Feedback.status != FeedbackStatus.rejected)
    )


def list_feedback(
    *, engine: Engine, status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[FeedbackView], int]:
    """Feedback, oldest first; ``disagreement`` flags documents whose annotators' latest labels differ."""
    query = select(Feedback)
    if status:
        if status not in {s.value for s in FeedbackStatus}:
            raise Invalid(f"Unknown feedback status {status!r}; use pending, approved or rejected.")
        query = query.where(Feedback.status == status)
    with session_scope(engine) as session:
        total = session.exec(select(func.count()).select_from(query.subquery())).one()
        rows = session.exec(query.order_by(Feedback.id).offset(offset).limit(limit)).all()
        return _feedback_views(session, rows), int(total)


def _feedback_views(session: Session, rows: list[Feedback]) -> list[FeedbackView]:
    """Views of ``rows`` in three queries however many there are (a page of the approval queue)."""
    job_ids = list({row.job_id for row in rows})
    documents = dict(session.exec(select(Job.id, Job.document_id).where(Job.id.in_(job_ids))).all())
    # Per document (whichever upload of it a correction came through), each author's latest label:
    # people disagree when those differ; one person changing their mind is no disagreement.
    latest: dict[int, dict[str | None, tuple[int, str]]] = {}
    for feedback_id, document_id, author, label in session.exec(
        select(Feedback.id, Job.document_id, Feedback.author, Feedback.label)
        .join(Job, Job.id == Feedback.job_id)
        .where(Job.document_id.in_(set(documents.values())), Feedback.status != FeedbackStatus.rejected)
    ):
        by_author = latest.setdefault(document_id, {})
        if author not in by_author or by_author[author][0] < feedback_id:
            by_author[author] = (feedback_id, label)
    disputed = {document for document, by in latest.items() if len({label for _, label in by.values()}) > 1}
    predicted = dict(
        session.exec(select(Prediction.job_id, Prediction.label).where(Prediction.job_id.in_(job_ids))).all()
    )
    return [
        FeedbackView(
            id=row.id,
            job_id=row.job_id,
            label=row.label,
            status=row.status,
            author=row.author,
            reviewer=row.reviewer,
            created_at=row.created_at,
            reviewed_at=row.reviewed_at,
            predicted=predicted.get(row.job_id),
            disagreement=documents.get(row.job_id) in disputed,
        )
        for row in rows
    ]


def decide(
    *,
    engine: Engine,
    feedback_ids: list[int],
    approve: bool,
    reviewer: str | None = None,
    gold_share: float = 0.2,
    work: WorkSender | None = None,
) -> FeedbackDecision:
    """Approve or reject pending feedback; approved labels become training data, and (given
    ``work``) an approval queues the incremental training run that learns them.

    A fixed, deterministic share of approved documents (decided by the document's hash, so the
    same document always lands on the same side) becomes the gold set: judged on, never trained on.

    Args:
        work: Where the training run is sent. Without it nothing is queued: for callers that train
            themselves right after (the benchmarks).

    Raises:
        Invalid: no ids. NotFound: an id does not exist. Conflict: one of them was already decided,
        or (approving) one is for a job without text or labels it with an industry retired since,
        or two of them label one document differently. Nothing is decided then.
    """
    if not feedback_ids:
        raise Invalid("Choose at least one correction to decide.")
    gold = 0
    with session_scope(engine) as session:
        rows = []
        for feedback_id in dict.fromkeys(feedback_ids):
            row = session.get(Feedback, feedback_id)
            if row is None:
                raise NotFound(f"Feedback {feedback_id} does not exist.")
            if row.status != FeedbackStatus.pending:
                raise Conflict(f"Feedback {feedback_id} is already {row.status}.")
            rows.append(row)
        if approve:
            # By document, not job: two uploads of one file are one document to learn from.
            jobs = {row.job_id for row in rows}
            documents = dict(session.exec(select(Job.id, Job.document_id).where(Job.id.in_(jobs))).all())
            _check_approvable(session, rows, documents)
            one_at_a_time(session, LABELS_TURN)  # each supersedes the labels given before it
        status = FeedbackStatus.approved if approve else FeedbackStatus.rejected
        for row in sorted(rows, key=lambda row: row.id):
            # Decided only if still pending when written: a reviewer deciding it in another call at
            # the same moment read it pending too, and the later of the two is refused.
            claimed = session.execute(
                update(Feedback)
                .where(Feedback.id == row.id, Feedback.status == FeedbackStatus.pending)
                .values(status=status, reviewer=reviewer, reviewed_at=utcnow())
            ).rowcount
            if claimed != 1:
                raise Conflict(f"Feedback {row.id} was decided by someone else meanwhile.")
        for row in rows:
            audit.record(
                session,
                action="feedback.approved" if approve else "feedback.rejected",
                subject_type="feedback",
                subject_id=row.id,
                actor=reviewer,
                job_id=row.job_id,
                label=row.label,
            )
            if approve and _add_training_example(session, row, gold_share) == Split.holdout:
                gold += 1
        session.flush()
        decided = _feedback_views(session, rows)
    training_task = None
    if approve and work is not None:
        training_task = queue_training(engine=engine, work=work, actor=reviewer)
    return FeedbackDecision(decided, training_task, gold)


def _require_text(session: Session, job: Job) -> None:
    """A correction teaches the document's text: refuse one for a job that has none (yet)."""
    document = session.get(Document, job.document_id)
    if document is not None and document.text:
        return
    if job.status in (JobStatus.PENDING, JobStatus.PROCESSING):
        raise Conflict(f"Job {job.id} is not read yet ({job.status}): label it once it is classified.")
    raise Conflict(
        f"Job {job.id} has no text to learn from ({job.error_code or job.status}): a label for it would "
        "train nothing."
    )


def _check_approvable(session: Session, rows: list[Feedback], documents: dict[str, int]) -> None:
    """Approved, a correction becomes a training or gold example: refuse one whose job has no text
    or whose industry was retired since it was filed (either would train nothing), and two that
    label one document differently (a gold document with two labels is always half wrong).
    ``documents``: each job's document."""
    active = set(active_industry_names(session))
    for row in rows:
        _require_text(session, existing_job(session, row.job_id))
        if row.label not in active:
            raise Conflict(
                f"Feedback {row.id} labels job {row.job_id} {row.label!r}, an industry retired since it "
                "was filed: reject it, or label the job again."
            )
    by_document: dict[int | str, list[Feedback]] = {}
    for row in rows:
        by_document.setdefault(documents.get(row.job_id, row.job_id), []).append(row)
    for given in by_document.values():
        if len({row.label for row in given}) > 1:
            named = ", ".join(f"{row.id} ({row.label})" for row in given)
            raise Conflict(
                f"Feedback {named} label one document differently: approve the right one and reject the rest."
            )


def _add_training_example(session: Session, feedback: Feedback, gold_share: float) -> str | None:
    """Store an approved correction as an example of its document's text; returns its split."""
    job = session.get(Job, feedback.job_id)
    document = session.get(Document, job.document_id)
    if not document or not document.text:
        return None
    digest = content_hash(document.text)
    exists = session.exec(
        select(TrainingExample).where(
            TrainingExample.content_hash == digest,
            TrainingExample.label == feedback.label,
            TrainingExample.source == ExampleSource.feedback,
        )
    ).first()
    # A correction approved later is the last word on the document: an earlier example that
    # labelled it otherwise (an approved correction, an imported or example file, a starter
    # document) stops training (and judging) on it.
    supersede_other_labels(session, digest, feedback.label, actor=feedback.reviewer, by_feedback=feedback.id)
    if exists is not None:
        if exists.status != ExampleStatus.approved:  # superseded once, and now the last word again
            exists.status = ExampleStatus.approved
            # It trains again because of this approval: the version that learns it names this one.
            exists.feedback_id = feedback.id
            session.add(exists)
        return exists.split
    split = split_of_text(
        session,
        digest,
        Split.holdout if is_holdout(f"document:{document.sha256}", gold_share) else Split.train,
    )
    session.add(
        TrainingExample(
            text=document.text,
            content_hash=digest,
            document_id=document.id,
            feedback_id=feedback.id,
            label=feedback.label,
            source=ExampleSource.feedback,
            split=split,
            origin=f"feedback/{feedback.id}",
        )
    )
    return split
