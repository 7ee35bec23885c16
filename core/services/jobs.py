"""Classifying a stored document, and reading jobs back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, bindparam, case, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from core.blobs import BlobStore
from core.classify.evidence import passage_spans
from core.classify.model import Encoder, HeronModel, RememberingEncoder, RoutingPolicy, Verdict
from core.db import read_scope, session_scope
from core.db.tables import (
    Document,
    Feedback,
    FeedbackStatus,
    Job,
    JobStatus,
    Prediction,
    utcnow,
)
from core.errors import HeronError, Invalid, NotFound
from core.events import JOB_EVENTS, job_ended
from core.extract import Extraction, ExtractionLimits, extract
from core.extract.isolation import FAST, SLOW, Extractor, NeedsSlowLane
from core.services.industries import active_industries, renamed_industries, served_names
from core.services.models import ModelCache
from core.uncertainty import uncertainty

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobView:
    """A job as clients see it (the original contract's keys, then the richer ones)."""

    id: str
    status: str
    classification_result: str | None
    error_message: str | None
    original_filename: str
    file_content_type: str
    created_at: datetime
    updated_at: datetime
    confidence: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    tier: str | None = None
    escalated: bool | None = None
    needs_review: bool | None = None
    review_reasons: list[str] = field(default_factory=list)
    model_version: int | None = None
    corrected_classification: str | None = None
    feedback_status: str | None = None
    error_code: str | None = None
    attempts: int = 0
    batch_id: str | None = None
    document_type: str | None = None
    page_count: int | None = None
    extraction_method: str | None = None
    extraction_warnings: list[str] = field(default_factory=list)
    ocr_pages: list[int] = field(default_factory=list)
    # The passages of the document's text that most support the answer: {text, start, end, label,
    # score}, ``text == extracted_text[start:end]`` (core.classify.evidence).
    evidence: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Handoff:
    """How the fast lane passes work on; the worker layer sends the messages (after the commit).

    Attributes:
        slow: Read this job (still PROCESSING, its lease renewed) in the slow lane.
        again: This job was claimed with a batch but not read: it is PENDING again, queue it.
    """

    slow: Callable[[str], None]
    again: Callable[[str], None]


def process_job(
    *,
    engine: Engine,
    blobs: BlobStore,
    models: ModelCache,
    job_id: str,
    policy: RoutingPolicy,
    lease_seconds: int,
    max_attempts: int,
    limits: ExtractionLimits | None = None,
    batch_size: int = 1,
    extractor: Extractor | None = None,
    handoff: Handoff | None = None,
    claimed: bool = False,
) -> str:
    """Extract and classify one job; running it twice, or concurrently, is safe.

    ``claimed``: the caller already claimed it (:func:`claim_job`).

    With ``batch_size`` > 1 the worker also claims up to that many other waiting jobs and
    classifies them together: the transformer tier is far faster on a batch than on one text at a
    time, and their own messages later find nothing left to do.

    Documents are read by ``extractor``'s child processes (in this process only without one, as
    in unit tests). With a ``handoff`` this is the fast lane: a document still being read after
    the fast lane's budget goes to the slow lane, and once the batch has spent that budget the
    jobs not yet read are queued again, so no document holds this worker for long.

    Returns the job's status afterwards. A document Heron cannot read ends the job FAILED with
    the error's code; any other exception puts the jobs back to PENDING (or FAILED after
    ``max_attempts``) and propagates so the queue can retry it.
    """
    if not claimed and not claim_job(
        engine=engine, job_id=job_id, lease_seconds=lease_seconds, max_attempts=max_attempts
    ):
        with session_scope(engine) as session:
            job = session.get(Job, job_id)
            return job.status if job else "MISSING"
    batch = [job_id, *_claim_waiting(engine, batch_size - 1, exclude=job_id)]
    _process_claimed(engine, blobs, models, batch, policy, max_attempts, limits, extractor, handoff)
    with session_scope(engine) as session:
        return session.get(Job, job_id).status


def process_waiting(
    *,
    engine: Engine,
    blobs: BlobStore,
    models: ModelCache,
    policy: RoutingPolicy,
    max_attempts: int,
    limits: ExtractionLimits | None = None,
    batch_size: int = 1,
    extractor: Extractor | None = None,
    handoff: Handoff | None = None,
    first: str | None = None,
    lease_seconds: int | None = None,
) -> int:
    """Claim up to ``batch_size`` waiting jobs, oldest first, and process them as
    :func:`process_job` does; returns how many were claimed (0: nothing was waiting).

    ``first``: the job a message named, claimed before the others if it is waiting (or its
    previous worker's lease of ``lease_seconds`` ran out, as :func:`claim_job`), in the same
    transaction: a message whose job another worker already took costs no statement of its own.

    A worker that keeps calling this until it returns 0 drains the queue with one message.
    """
    if batch_size <= 0:
        return 0
    # The claim and the batch's read share one transaction: two round trips fewer a batch (BEGIN
    # and COMMIT), on the path of every document.
    with session_scope(engine) as session:
        claimed = _claim(
            session, batch_size, first=first, lease_seconds=lease_seconds, max_attempts=max_attempts
        )
        read = _read_batch(session, claimed) if claimed else None
    if claimed:
        _process_claimed(
            engine, blobs, models, claimed, policy, max_attempts, limits, extractor, handoff, read
        )
    return len(claimed)


def _process_claimed(
    engine: Engine,
    blobs: BlobStore,
    models: ModelCache,
    claimed: list[str],
    policy: RoutingPolicy,
    max_attempts: int,
    limits: ExtractionLimits | None,
    extractor: Extractor | None,
    handoff: Handoff | None,
    read: _Read | None = None,
) -> None:
    lane = FAST if extractor is not None and handoff is not None else None
    try:
        batch = _document_texts(engine, blobs, claimed, limits, extractor, lane, read)
        _hand_off(engine, batch.slow, batch.unread)
        if batch.texts:
            _classify_each_if_the_batch_fails(engine, models, policy, batch, max_attempts)
    except Exception as error:
        _give_back(engine, claimed, error, max_attempts)
        raise
    if handoff is not None:
        for slow_id in batch.slow:
            handoff.slow(slow_id)
        for again_id in batch.unread:
            handoff.again(again_id)


def process_slow_job(
    *,
    engine: Engine,
    blobs: BlobStore,
    models: ModelCache,
    job_id: str,
    policy: RoutingPolicy,
    max_attempts: int,
    limits: ExtractionLimits | None,
    extractor: Extractor,
) -> str:
    """Read and classify a job the fast lane handed over, with the slow lane and the whole limit.

    The job is still PROCESSING (the fast lane renewed its lease); if this process dies, the
    lease runs out and the sweeper queues it again.
    """
    with session_scope(engine) as session:
        # Renew the lease as the slow lane starts (the job may have waited for a slow-lane thread);
        # a job the sweeper has meanwhile put back is left to whoever claims it.
        renewed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.PROCESSING)
            .values(updated_at=utcnow())
        ).rowcount
        if not renewed:
            job = session.get(Job, job_id)
            return job.status if job else "MISSING"
    try:
        batch = _document_texts(engine, blobs, [job_id], limits, extractor, SLOW)
        if batch.texts:
            _classify_and_store(engine, models, policy, batch)
    except Exception as error:
        _give_back(engine, [job_id], error, max_attempts)
        raise
    with session_scope(engine) as session:
        return session.get(Job, job_id).status


def _hand_off(engine: Engine, slow: list[str], unread: list[str]) -> None:
    """Renew the lease of jobs going to the slow lane; put jobs not yet read back to PENDING."""
    if not slow and not unread:
        return
    now = utcnow()
    with session_scope(engine) as session:
        if slow:
            session.execute(update(Job).where(Job.id.in_(slow)).values(updated_at=now))
        if unread:
            # They were not tried: the attempt the claim counted is given back.
            session.execute(
                update(Job)
                .where(Job.id.in_(unread), Job.status == JobStatus.PROCESSING)
                .values(status=JobStatus.PENDING, attempts=Job.attempts - 1, updated_at=now)
            )


def reading(encoder: Encoder, texts: list[str]) -> tuple[RememberingEncoder, list[list[tuple[int, int]]]]:
    """An encoder that tokenises each text once for its own static vector and its passages' (what
    the answer and its evidence both read), and those passages."""
    spans = [passage_spans(text) for text in texts]
    remembering = RememberingEncoder(encoder)
    remembering.remember_passages(texts, spans)
    return remembering, spans


def annotations(
    model: HeronModel,
    encoder: RememberingEncoder,
    texts: list[str],
    answers: list[str],
    spans: list[list[tuple[int, int]]],
) -> tuple[list[list[dict[str, Any]]], np.ndarray]:
    """What is stored beside each answer: its evidence (as JSON) and the document's float16 static
    vector (for "more like this")."""
    evidence = model.evidence(texts, answers, encoder=encoder, spans=spans)
    passages = [[asdict(passage) for passage in found] for found in evidence]
    return passages, encoder.static(texts).astype(np.float16)


def _renamed(verdict: Verdict, served: dict[str, str]) -> Verdict:
    """The verdict under today's names of the industries (see served_names)."""
    if all(label == name for label, name in served.items()):
        return verdict
    return replace(
        verdict,
        label=served[verdict.label],
        scores={served[label]: score for label, score in verdict.scores.items()},
    )


def _classify_and_store(engine: Engine, models: ModelCache, policy: RoutingPolicy, batch: _Batch) -> None:
    version_id, model = models.active(engine)
    renamed: dict[str, str] = {}
    if not set(model.labels) <= batch.industries:  # an industry renamed since it was trained, or retired
        with session_scope(engine) as session:
            renamed = renamed_industries(session)
    served = served_names(model.labels, batch.industries, renamed)
    texts = batch.texts
    encoder, spans = reading(models.encoder, list(texts.values()))
    verdicts = model.classify(list(texts.values()), policy, allowed=list(served), encoder=encoder)
    evidence, vectors = annotations(
        model, encoder, list(texts.values()), [verdict.label for verdict in verdicts], spans
    )
    verdicts = [_renamed(verdict, served) for verdict in verdicts]
    now = utcnow()
    with session_scope(engine) as session:
        # One INSERT and one UPDATE for the batch, without building ORM objects: per job they cost
        # about as much as the fast tier's whole answer. A job answered already (a duplicate run)
        # keeps its answer: the insert skips it (job_id is unique).
        rows = [
            {
                "job_id": job_id,
                "model_version_id": version_id,
                "label": verdict.label,
                "confidence": verdict.confidence,
                "scores": verdict.scores,
                "tier": verdict.tier,
                "escalated": verdict.escalated,
                "needs_review": verdict.needs_review,
                "review_reasons": list(verdict.review_reasons),
                "uncertainty_least_confidence": uncertainty(verdict.scores, "least_confidence"),
                "uncertainty_margin": uncertainty(verdict.scores, "margin"),
                "uncertainty_entropy": uncertainty(verdict.scores, "entropy"),
                "evidence": passages,
                "created_at": now,
            }
            for job_id, verdict, passages in zip(texts, verdicts, evidence, strict=True)
        ]
        session.execute(_insert_new(engine, Prediction, "job_id"), rows)
        _store_documents(session, batch, dict(zip(texts, vectors, strict=True)))
        _finish_all(session, list(texts), JobStatus.COMPLETED, now)


def _classify_each_if_the_batch_fails(
    engine: Engine, models: ModelCache, policy: RoutingPolicy, batch: _Batch, max_attempts: int
) -> None:
    """:func:`_classify_and_store`; if the batch fails, each job alone, so that a document nobody
    foresaw (a text the tokenizer refuses, say) costs its own attempts, not its batch-mates': the
    whole batch was given back and charged, and after three such batches innocent documents
    ended FAILED with the poisonous one."""
    try:
        _classify_and_store(engine, models, policy, batch)
        return
    except Exception:
        if len(batch.texts) == 1:
            raise
        log.warning(
            "classifying a batch of %d jobs failed; classifying each alone", len(batch.texts), exc_info=True
        )
    failure: Exception | None = None
    for job_id, text in batch.texts.items():
        document_id = batch.documents.get(job_id)
        alone = _Batch(
            texts={job_id: text},
            documents={job_id: document_id} if document_id is not None else {},
            extracted={document_id: batch.extracted[document_id]} if document_id in batch.extracted else {},
            industries=batch.industries,
        )
        try:
            _classify_and_store(engine, models, policy, alone)
        except Exception as error:
            log.exception("classifying job %s failed", job_id)
            _give_back(engine, [job_id], error, max_attempts)
            failure = error
    if failure is not None:
        raise failure  # the queue retries its message soon, as for a batch of one (not the sweeper)


def _insert_new(engine: Engine, table: type, key: str) -> Any:
    """An INSERT that skips rows whose unique ``key`` is taken (PostgreSQL and SQLite alike)."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=[key])


def _store_documents(session: Session, batch: _Batch, vectors: dict[str, np.ndarray]) -> None:
    """Each document's static vector (float16, :func:`annotations`), and the text (with what
    reading found) of those read in this batch: by primary key, one UPDATE per kind for the batch."""
    table = Document.__table__
    by_document = {batch.documents[job_id]: vector for job_id, vector in vectors.items()}
    read = [
        {
            "doc": document_id,
            "vector": by_document[document_id].tobytes(),
            "text": result.text,
            "page_count": result.page_count,
            "extraction_method": result.method[:40],
            "extraction_warnings": list(result.warnings),
            "ocr_pages": list(result.ocr_pages),
            "page_spans": [list(span) for span in result.page_spans],
            "content_type": result.content_type[:100],
        }
        for document_id, result in batch.extracted.items()
    ]
    known = [
        {"doc": document_id, "vector": vector.tobytes()}
        for document_id, vector in by_document.items()
        if document_id not in batch.extracted
    ]
    for params in (read, known):
        if params:
            columns = {name: bindparam(name) for name in params[0] if name != "doc"}
            session.execute(update(table).where(table.c.id == bindparam("doc")).values(columns), params)


def _give_back(engine: Engine, job_ids: list[str], error: Exception, max_attempts: int) -> None:
    """After an unexpected error: back to PENDING for another try, or FAILED after the last one."""
    with session_scope(engine) as session:
        for job_id in job_ids:
            job = session.get(Job, job_id)
            if job.status != JobStatus.PROCESSING:
                continue
            if job.attempts >= max_attempts:
                _finish(
                    session,
                    job_id,
                    JobStatus.FAILED,
                    "internal_error",
                    f"Classification failed {job.attempts} times; last error: {error}",
                )
            else:
                job.status = JobStatus.PENDING
                job.updated_at = utcnow()
                session.add(job)


def _claim_waiting(engine: Engine, limit: int, *, exclude: str) -> list[str]:
    """:func:`_claim` in a transaction of its own: up to ``limit`` waiting jobs besides ``exclude``."""
    if limit <= 0:
        return []
    with session_scope(engine) as session:
        return _claim(session, limit, exclude=exclude)


def _claim(
    session: Session,
    limit: int,
    *,
    exclude: str | None = None,
    first: str | None = None,
    lease_seconds: int | None = None,
    max_attempts: int | None = None,
) -> list[str]:
    """Claim up to ``limit`` PENDING jobs, oldest first, in ``session``'s transaction: ``first``
    before the others when it can be claimed (:func:`claim_job`'s rule), then the oldest waiting ones.

    On PostgreSQL the pick skips rows another worker is claiming at that moment (SKIP LOCKED)
    instead of waiting for its transaction; SQLite has a single writer anyway.
    """
    now = utcnow()
    claimed: list[str] = []
    if first is not None:
        if _claim_one(session, first, now, lease_seconds, max_attempts):
            claimed.append(first)
        exclude = first
    if len(claimed) < limit:
        pick = select(Job.id).where(Job.status == JobStatus.PENDING).order_by(Job.created_at)
        pick = pick.limit(limit - len(claimed))
        if exclude is not None:
            pick = pick.where(Job.id != exclude)
        if session.get_bind().dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        others = session.execute(
            update(Job)
            .where(Job.id.in_(pick.scalar_subquery()), Job.status == JobStatus.PENDING)
            .values(_claimed(now))
            .returning(Job.id)
        )
        claimed += others.scalars()
    return claimed


def _claimed(now: datetime) -> dict[str, Any]:
    """What claiming writes: PROCESSING, one more attempt, started and touched now."""
    return {
        "status": JobStatus.PROCESSING,
        "attempts": Job.attempts + 1,
        "started_at": now,
        "updated_at": now,
    }


def _claim_one(
    session: Session, job_id: str, now: datetime, lease_seconds: int | None, max_attempts: int | None = None
) -> bool:
    """Move ``job_id`` to PROCESSING if it is waiting, or its previous worker's lease of
    ``lease_seconds`` ran out (None: only if it is waiting) with attempts left (the sweeper ends a
    job whose workers died on every attempt: :func:`requeue_stale_jobs`)."""
    claimable = Job.status == JobStatus.PENDING
    if lease_seconds is not None:
        stale = now - timedelta(seconds=lease_seconds)
        abandoned = (Job.status == JobStatus.PROCESSING) & (Job.updated_at < stale)
        if max_attempts is not None:
            abandoned = abandoned & (Job.attempts < max_attempts)
        claimable = or_(claimable, abandoned)
    claimed = session.execute(update(Job).where(Job.id == job_id, claimable).values(_claimed(now))).rowcount
    return bool(claimed)


def claim_job(*, engine: Engine, job_id: str, lease_seconds: int, max_attempts: int | None = None) -> bool:
    """Move the job to PROCESSING if it is waiting (or its previous worker's lease ran out, with
    attempts left); then :func:`process_job` it with ``claimed=True``. False: someone else has it,
    or it has ended."""
    with session_scope(engine) as session:
        return _claim_one(session, job_id, utcnow(), lease_seconds, max_attempts)


@dataclass
class _Batch:
    """Claimed jobs as the database and the extractor gave them.

    Attributes:
        texts: Each readable job's text (cached on its document, or read now).
        documents: Each job's document id.
        extracted: The documents read now (stored with the answers, not before).
        industries: The active industries (names) when the batch was read.
        slow: Jobs to read in the slow lane.
        unread: Jobs not read at all (the fast lane spent its budget).
    """

    texts: dict[str, str] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)
    extracted: dict[int, Extraction] = field(default_factory=dict)
    industries: set[str] = field(default_factory=set)
    slow: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Read:
    """What a batch reads from the database: each job's name, type and document (id, cached text,
    stored original), and the active industries."""

    rows: list[Any]  # (job id, file name, file type, document id, text or None, storage key)
    industries: set[str]


def _read_batch(session: Session, job_ids: list[str]) -> _Read:
    rows = session.execute(
        select(
            Job.id,
            Job.original_filename,
            Job.file_content_type,
            Document.id,
            Document.text,
            Document.storage_key,
        )
        .join(Document, Document.id == Job.document_id)
        .where(Job.id.in_(job_ids))
    ).all()
    return _Read(rows=list(rows), industries=set(active_industries(session)))


def _document_texts(
    engine: Engine,
    blobs: BlobStore,
    job_ids: list[str],
    limits: ExtractionLimits | None,
    extractor: Extractor | None = None,
    lane: str | None = None,
    read: _Read | None = None,
) -> _Batch:
    """The text of each job's document: cached on its row, else extracted from the stored original.

    One read for the whole batch, which also reads the active industries (round trips to the
    database dominate a small batch otherwise); what was extracted is written with the answers
    (:func:`_store_documents`). A document that cannot be read ends its job FAILED with the error's
    code and is left out. ``read``: what the claim's transaction read already (:func:`_read_batch`).
    """
    if read is None:
        with session_scope(engine) as session:
            read = _read_batch(session, job_ids)
    rows = read.rows
    batch = _Batch(industries=read.industries)
    failed: dict[str, HeronError] = {}
    order = {job_id: i for i, job_id in enumerate(job_ids)}
    started = time.monotonic()
    for job_id, filename, content_type, document_id, text, storage_key in sorted(
        rows, key=lambda row: order[row[0]]
    ):
        batch.documents[job_id] = document_id
        if text is not None:
            batch.texts[job_id] = text
            continue
        if document_id in batch.extracted:  # the same bytes uploaded twice in one batch
            batch.texts[job_id] = batch.extracted[document_id].text
            continue
        if (
            lane == FAST
            and extractor is not None
            and time.monotonic() - started >= extractor.limits.fast_seconds
        ):
            batch.unread.append(job_id)
            continue
        try:
            result = _read_original(blobs, storage_key, filename, content_type, extractor, limits, lane)
        except NeedsSlowLane:
            batch.slow.append(job_id)
            continue
        except HeronError as error:
            failed[job_id] = error
            continue
        batch.extracted[document_id] = result
        batch.texts[job_id] = result.text
    if failed:
        with session_scope(engine) as session:
            for job_id, error in failed.items():
                _finish(session, job_id, JobStatus.FAILED, error.code, error.message)
    return batch


def _read_original(
    blobs: BlobStore,
    storage_key: str,
    filename: str,
    content_type: str,
    extractor: Extractor | None,
    limits: ExtractionLimits | None,
    lane: str | None = None,
) -> Extraction:
    """Extract a job's stored original (in ``extractor``'s child processes).

    The path, not the bytes: PDFs and images are read from disk instead of copied into memory.
    The client's name and MIME type only tell CSV from plain text (core.extract.sniff).
    """
    original = blobs.path(storage_key)
    if not original.exists():
        raise NotFound(f"The stored original {storage_key!r} is missing from {blobs.root}.")
    content_type = content_type or None
    if extractor is None:  # unit tests of the use cases; every entry point passes its extractor
        return extract(original, limits=limits, filename=filename, content_type=content_type)
    return extractor.extract(
        original, limits=limits or ExtractionLimits(), filename=filename, content_type=content_type, lane=lane
    )


def _finish(
    session: Session, job_id: str, status: str, code: str | None = None, message: str | None = None
) -> None:
    _finish_all(session, [job_id], status, utcnow(), code, message)


def _finish_all(
    session: Session,
    job_ids: list[str],
    status: str,
    now: datetime,
    code: str | None = None,
    message: str | None = None,
    *,
    only_if: Any = None,
) -> list[str]:
    """End jobs in one statement (those of them still matching ``only_if``, when given); whoever
    waits for them is woken when ``session`` commits. Returns the jobs it ended."""
    statement = (
        update(Job)
        .where(Job.id.in_(job_ids))
        .values(status=status, error_code=code, error_message=message, updated_at=now, finished_at=now)
    )
    if only_if is None:
        session.execute(statement)
    else:
        job_ids = list(session.execute(statement.where(only_if).returning(Job.id)).scalars())
    for job_id in job_ids:
        job_ended(session, job_id)
        log.info("job %s %s", job_id, status, extra={"job_id": job_id})
    return job_ids


def existing_job(session: Session, job_id: str) -> Job:
    """The job row; NotFound if there is none."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"Job {job_id!r} does not exist.")
    return job


def get_job(*, engine: Engine, job_id: str) -> JobView:
    """A job with its prediction (or its error) and its latest correction.

    Raises:
        NotFound: no such job.

    A job that has not ended may be answered from a view read less than a second ago, until its
    end reaches this process (:meth:`core.events.JobEvents.recall`): polling clients cost one
    query per second each, not one per poll.
    """
    kept = JOB_EVENTS.recall(job_id)
    if isinstance(kept, JobView):
        return kept
    JOB_EVENTS.follow(engine)
    with read_scope(engine) as session:
        row = session.exec(_view_query([job_id])).first()
        if row is None:
            raise NotFound(f"Job {job_id!r} does not exist.")
        view = _view(*row)
    if view.status not in ENDED:
        JOB_EVENTS.remember(job_id, view)
    return view


def wait_for_job(*, engine: Engine, job_id: str, seconds: float) -> JobView:
    """The job once it has ended (COMPLETED or FAILED), or as it is after ``seconds``.

    The waiting thread sleeps until the job's end wakes it (:mod:`core.events`); it re-reads the
    row at least every second regardless, and every 50 ms where no wake-up can reach this process.

    Raises:
        NotFound: no such job.
    """
    deadline = time.monotonic() + seconds
    JOB_EVENTS.follow(engine)
    while True:
        view = get_job(engine=engine, job_id=job_id)
        pause = _pause(view, deadline)
        if pause is None:
            return view
        JOB_EVENTS.wait(job_id, pause)


async def wait_for_job_async(*, engine: Engine, job_id: str, seconds: float) -> JobView:
    """:func:`wait_for_job` for a coroutine (the API): it holds no thread while it waits, so a
    thousand waiting clients cost no more than a thousand idle connections."""
    deadline = time.monotonic() + seconds
    JOB_EVENTS.follow(engine)
    while True:
        view = JOB_EVENTS.recall(job_id)  # a view kept in memory needs no thread
        if not isinstance(view, JobView):
            view = await asyncio.to_thread(get_job, engine=engine, job_id=job_id)
        pause = _pause(view, deadline)
        if pause is None:
            return view
        await JOB_EVENTS.wait_async(job_id, pause)


def _pause(view: JobView, deadline: float) -> float | None:
    """How long a waiter sleeps before reading the job again; None: answer with ``view`` now."""
    remaining = deadline - time.monotonic()
    if view.status in ENDED or remaining <= 0:
        return None
    return min(remaining, 1.0 if JOB_EVENTS.covered else 0.05)


ENDED = (JobStatus.COMPLETED, JobStatus.FAILED)


def get_jobs(*, engine: Engine, job_ids: Sequence[str]) -> list[JobView]:
    """The jobs named, in that order (those that do not exist left out), in one query."""
    with read_scope(engine) as session:
        rows = {row[0].id: row for row in session.exec(_view_query(job_ids))}
        return [_view(*rows[job_id]) for job_id in job_ids if job_id in rows]


def job_views(session: Session, jobs: Sequence[Job]) -> list[JobView]:
    """Views of ``jobs``, in order, in one query however many there are (a page of a list)."""
    if not jobs:
        return []
    rows = {job.id: rest for job, *rest in session.exec(_view_query([job.id for job in jobs]))}
    return [_view(job, *rows.get(job.id, (None, None, None))) for job in jobs]


def new_job_view(job: Job, document: Document) -> JobView:
    """The view of a job just created (no prediction, no correction), without a query."""
    return _view(job, None, None, document)


def _view_query(job_ids: Sequence[str]):  # type: ignore[no-untyped-def]
    """Each job with its prediction, its correction and its document: one statement. The
    correction shown is the one that decides: the last approved (a later approval supersedes an
    earlier one, whichever was filed first), else the latest filed."""
    latest = (
        select(Feedback.id)
        .where(Feedback.job_id == Job.id)
        .correlate(Job)
        .order_by(
            case((Feedback.status == FeedbackStatus.approved, 1), else_=0).desc(),
            case((Feedback.status == FeedbackStatus.approved, Feedback.reviewed_at), else_=None)
            .desc()
            .nulls_last(),
            Feedback.id.desc(),
        )
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(Job, Prediction, Feedback, Document)
        .outerjoin(Prediction, Prediction.job_id == Job.id)
        .outerjoin(Feedback, Feedback.id == latest)
        .outerjoin(Document, Document.id == Job.document_id)
        .where(Job.id.in_(list(job_ids)))
        # Not the document's text, vector or page spans: a view shows none of them, and a client
        # following its job reads the view several times (the text is 5 kB on a median page).
        .options(defer(Document.text), defer(Document.vector), defer(Document.page_spans))
    )


def _view(
    job: Job, prediction: Prediction | None, feedback: Feedback | None, document: Document | None
) -> JobView:
    extra: dict[str, Any] = {}
    if prediction is not None:
        extra = {
            "confidence": prediction.confidence,
            "scores": prediction.scores,
            "tier": prediction.tier,
            "escalated": prediction.escalated,
            "needs_review": prediction.needs_review,
            "review_reasons": prediction.review_reasons,
            "model_version": prediction.model_version_id,
            "evidence": list(prediction.evidence or []),
        }
    return JobView(
        id=job.id,
        status=job.status,
        classification_result=prediction.label if prediction else None,
        error_message=job.error_message,
        original_filename=job.original_filename,
        file_content_type=job.file_content_type,
        created_at=job.created_at,
        updated_at=job.updated_at,
        corrected_classification=feedback.label if feedback else None,
        feedback_status=feedback.status if feedback else None,
        error_code=job.error_code,
        attempts=job.attempts,
        batch_id=job.batch_id,
        document_type=document.content_type if document else None,
        page_count=document.page_count if document else None,
        extraction_method=document.extraction_method if document else None,
        extraction_warnings=list(document.extraction_warnings or []) if document else [],
        ocr_pages=list(document.ocr_pages or []) if document else [],
        **extra,
    )


def requeue_stale_jobs(
    *, engine: Engine, pending_older_than: float, lease_seconds: int, max_attempts: int | None = None
) -> list[str]:
    """Jobs whose message may have been lost, marked as just re-queued; the caller re-sends them.

    The database is the source of truth: a job still PENDING long after upload (its in-process
    queue died with its process, or the broker lost the message), or PROCESSING past its lease
    (its worker was killed), goes back to PENDING with a fresh timestamp. Re-sending is safe —
    claiming a job is atomic, so a duplicate message finds nothing to do. A job whose worker died
    on each of its ``max_attempts`` attempts ends FAILED instead: a document that kills workers
    (out of memory, a native crash) would otherwise take one down every lease, for ever.
    """
    now = utcnow()
    abandoned = (Job.status == JobStatus.PROCESSING) & (
        Job.updated_at < now - timedelta(seconds=lease_seconds)
    )
    with session_scope(engine) as session:
        if max_attempts is not None:
            exhausted = abandoned & (Job.attempts >= max_attempts)
            candidates = list(session.exec(select(Job.id).where(exhausted)))
            # Conditional on the row as it is written: a slow worker may still finish it meanwhile.
            for job_id in _finish_all(
                session,
                candidates,
                JobStatus.FAILED,
                now,
                "internal_error",
                "The worker classifying it stopped (killed, out of memory or crashed) on each of its "
                f"{max_attempts} attempts; it is not tried again (HERON_MAX_ATTEMPTS).",
                only_if=exhausted,
            ):
                log.warning("job %s: its worker stopped on each of %d attempts", job_id, max_attempts)
        session.execute(
            update(Job)
            .where(abandoned, Job.status == JobStatus.PROCESSING)
            .values(status=JobStatus.PENDING, updated_at=now - timedelta(seconds=pending_older_than + 1))
        )
        stale = list(
            session.exec(
                select(Job.id)
                .where(
                    Job.status == JobStatus.PENDING,
                    Job.updated_at < now - timedelta(seconds=pending_older_than),
                )
                .order_by(Job.created_at)
                .limit(1000)
            )
        )
        if stale:
            session.execute(update(Job).where(Job.id.in_(stale)).values(updated_at=now))
    return stale


def list_jobs(
    *,
    engine: Engine,
    status: str | None = None,
    needs_review: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[JobView], int]:
    """Jobs, newest first, filtered by status and by whether their prediction needs review.

    Raises:
        Invalid: an unknown status.
    """
    from sqlalchemy import func

    statuses = [member.value for member in JobStatus]
    if status and status not in statuses:
        raise Invalid(f"Unknown job status {status!r}; use one of {', '.join(statuses)}.")
    query = select(Job)
    if status:
        query = query.where(Job.status == status)
    if needs_review is not None:
        query = query.join(Prediction, Prediction.job_id == Job.id).where(
            Prediction.needs_review == needs_review
        )
    with session_scope(engine) as session:
        total = session.exec(select(func.count()).select_from(query.subquery())).one()
        rows = session.exec(query.order_by(Job.created_at.desc(), Job.id).offset(offset).limit(limit)).all()
        return job_views(session, rows), int(total)


@dataclass(frozen=True)
class JobDocument:
    """The document behind a job as a person reads it: its text and how that text was obtained."""

    job_id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    text: str | None
    page_count: int | None
    extraction_method: str | None
    warnings: list[str]
    ocr_pages: list[int]


@dataclass(frozen=True)
class PageSpan:
    number: int
    start: int
    end: int


@dataclass(frozen=True)
class JobText:
    """A job's extracted text, where each page lies in it, and the passages that support the answer."""

    job_id: str
    status: str
    text: str | None
    page_count: int | None
    pages: list[PageSpan]
    label: str | None
    evidence: list[dict[str, Any]]


def job_text(*, engine: Engine, job_id: str) -> JobText:
    """The text a job's answer was given from (None until a worker has read it).

    ``pages`` is empty for documents read before Heron kept page boundaries.

    Raises:
        NotFound: no such job.
    """
    with session_scope(engine) as session:
        job = existing_job(session, job_id)
        document = session.get(Document, job.document_id)
        prediction = session.exec(select(Prediction).where(Prediction.job_id == job_id)).first()
        return JobText(
            job_id=job.id,
            status=job.status,
            text=document.text,
            page_count=document.page_count,
            pages=[PageSpan(number, start, end) for number, start, end in document.page_spans or []],
            label=prediction.label if prediction else None,
            evidence=list(prediction.evidence or []) if prediction else [],
        )


@dataclass(frozen=True)
class DocumentPage:
    number: int
    text: str
    ocr: bool


def job_document(*, engine: Engine, job_id: str) -> JobDocument:
    """The stored text of a job's document (None until a worker has read it).

    Raises:
        NotFound: no such job.
    """
    with session_scope(engine) as session:
        job = existing_job(session, job_id)
        document = session.get(Document, job.document_id)
    return JobDocument(
        job_id=job.id,
        filename=job.original_filename,
        content_type=document.content_type,
        size=document.size,
        sha256=document.sha256,
        text=document.text,
        page_count=document.page_count,
        extraction_method=document.extraction_method,
        warnings=list(document.extraction_warnings or []),
        ocr_pages=list(document.ocr_pages or []),
    )


def job_document_pages(
    *,
    engine: Engine,
    blobs: BlobStore,
    job_id: str,
    limits: ExtractionLimits | None = None,
    extractor: Extractor | None = None,
) -> list[DocumentPage]:
    """A job's document page by page, read again from the stored original.

    The stored text joins the pages, so the page boundaries are recovered by extracting again
    (deterministic; pages without a text layer go through OCR again, which takes a second or two
    each).

    Raises:
        NotFound: no such job, or its original is missing. HeronError: the document cannot be read.
    """
    with session_scope(engine) as session:
        job = existing_job(session, job_id)
        document = session.get(Document, job.document_id)
    result = _read_original(
        blobs, document.storage_key, job.original_filename, job.file_content_type, extractor, limits
    )
    ocr = set(result.ocr_pages)
    return [DocumentPage(number=page.number, text=page.text, ocr=page.number in ocr) for page in result.pages]
