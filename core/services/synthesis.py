"""Synthetic training data through an OpenAI-compatible LLM: the use cases around a synthesis task.

A run asks the model for the industry's genres once, then for documents in small batches (a few
per request, ``HERON_LLM_CONCURRENCY`` requests at a time). Each batch is parsed tolerantly,
passes the quality gates (length, English, exact and near duplicates against the run and the
stored examples) and a check that the active model does not confidently place it in another
industry; what passes is stored in one transaction, then progress is reported (which is where a
cancellation is noticed). A cancelled or failed run keeps its completed batches and nothing of
the batch in flight.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core.classify.model import RoutingPolicy, Verdict
from core.corpus import content_hash
from core.db import session_scope
from core.db.tables import (
    ExampleSource,
    ExampleStatus,
    Industry,
    IndustryStatus,
    Split,
    Task,
    TaskStatus,
    TrainingExample,
)
from core.errors import HeronError, Invalid, LlmBadReply, LlmUnavailable
from core.services import tasks
from core.services.industries import active_industries, require_active_industry
from core.services.models import ModelCache, industry_prototypes
from core.services.retraining import queue_training
from core.settings import Settings
from core.synthesis.client import Completion, LlmClient
from core.synthesis.parsing import parse_documents, parse_genres
from core.synthesis.prompts import (
    DOCUMENTS_FORMAT,
    GENRES_FORMAT,
    PROMPT_VERSION,
    Brief,
    document_messages,
    genre_messages,
    genres_from_description,
    merge_genres,
    plan_briefs,
)
from core.synthesis.quality import Candidate, NearDuplicateIndex, screen
from core.work import WorkSender

log = logging.getLogger(__name__)

LLM_NOT_CONFIGURED = "llm_not_configured"
MAX_DOCUMENTS = 1000
DOCUMENTS_PER_REQUEST = 4
GENRES_TO_ASK = 12
# A run asks for at most this many times the documents wanted (rejections included), then stops.
ATTEMPT_FACTOR = 3
# The active model placing a document in another industry at least this confidently flags it.
FLAG_CONFIDENCE = 0.8
NEAR_DUPLICATE_SIMILARITY = 0.5
CANCEL_POLL_SECONDS = 0.25
# While requests are in flight the task's row is touched this often, so it is not taken for dead.
HEARTBEAT_SECONDS = 30.0
NOT_PENDING = "not pending (already run, running elsewhere or cancelled)"


def check_count(count: int, *, allow_none: bool = False) -> None:
    """Refuse a number of synthetic documents outside 1–1000 (0 too, unless ``allow_none``)."""
    if not (0 if allow_none else 1) <= count <= MAX_DOCUMENTS:
        raise Invalid(f"Ask for 1–{MAX_DOCUMENTS} synthetic documents (got {count}).")


def request_synthesis(
    *, engine: Engine, industry: str, count: int, settings: Settings, actor: str | None = None
) -> tasks.TaskView:
    """Create a synthesis task for ``count`` documents of ``industry``.

    Without a configured LLM the task is still recorded (so the request is visible) and ends at
    once FAILED with ``llm_not_configured``; the industry keeps working zero-shot. Otherwise it is
    PENDING and the caller sends it to a worker.

    Raises:
        Invalid: unknown industry, or ``count`` outside 1–1000.
    """
    check_count(count)
    with session_scope(engine) as session:
        name = require_active_industry(session, industry)
        task = tasks.create_task(
            session,
            kind="synthesis",
            params={"industry": name, "count": count, "model": settings.llm_model},
            total=count,
            requested_by=actor,
        )
        task_id = task.id
    if not settings.llm_configured:
        tasks.finish(
            engine,
            task_id,
            TaskStatus.FAILED,
            error_code=LLM_NOT_CONFIGURED,
            error_message=_not_configured(name),
        )
    return tasks.get_task(engine=engine, task_id=task_id)


def queue_synthesis(
    *,
    engine: Engine,
    work: WorkSender,
    settings: Settings,
    industry: str,
    count: int,
    actor: str | None = None,
) -> tasks.TaskView:
    """Ask for ``count`` synthetic documents of ``industry`` and send the task to a worker.

    Without a configured LLM the task is still recorded and ends at once with ``llm_not_configured``
    (nothing is sent). Raises Invalid as :func:`request_synthesis` does.
    """
    task = request_synthesis(engine=engine, industry=industry, count=count, settings=settings, actor=actor)
    if task.status == TaskStatus.PENDING:
        work.send_task(task.id, task.kind)
    return task


def _not_configured(industry: str) -> str:
    return (
        "No LLM is configured: set OPENAI_API_KEY for the hosted API, or HERON_LLM_BASE_URL for a "
        f"local OpenAI-compatible server. Industry {industry!r} learns from its description and "
        "examples only."
    )


class _Cancelled(Exception):
    """Someone asked to cancel the task."""


@dataclass
class _Run:
    """A run's inputs and what it has done so far (a failed or cancelled run reports it too)."""

    task_id: str
    industry: str
    description: str
    count: int
    model: str
    seen_hashes: set[str]
    index: NearDuplicateIndex
    stored: int = 0
    approved: int = 0
    flagged: int = 0
    asked: int = 0
    replies: int = 0
    bad_replies: int = 0
    genres: list[str] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)

    def result(self) -> dict[str, Any]:
        return {
            "industry": self.industry,
            "requested": self.count,
            "stored": self.stored,
            "approved": self.approved,
            "pending": self.stored - self.approved,
            "flagged": self.flagged,
            "rejected": dict(self.rejected),
            "asked": self.asked,
            "genres": len(self.genres),
            "tokens": {"prompt": self.tokens["prompt"], "completion": self.tokens["completion"]},
            "model": self.model,
            "prompt_version": PROMPT_VERSION,
        }


def run_synthesis_task(
    *,
    engine: Engine,
    task_id: str,
    settings: Settings,
    models: ModelCache,
    policy: RoutingPolicy,
    work: WorkSender | None = None,
) -> str:
    """Run a queued synthesis task to its end, then (given ``work``) queue the incremental training
    run that learns the examples it stored approved; returns what happened (for the log).

    Examples stored approved are in the training set of any run from then on, so an incremental run
    learns them whatever the task's ending (a cancelled run keeps what it stored).
    """
    outcome = _run_synthesis(engine=engine, task_id=task_id, settings=settings, models=models, policy=policy)
    if work is not None and outcome != NOT_PENDING:
        task = tasks.get_task(engine=engine, task_id=task_id)
        if task.result.get("approved"):
            queue_training(engine=engine, work=work, actor=task.requested_by)
    return outcome


def _run_synthesis(
    *, engine: Engine, task_id: str, settings: Settings, models: ModelCache, policy: RoutingPolicy
) -> str:
    """Run a queued synthesis task to its end; returns what happened (for the log).

    The task ends SUCCEEDED with ``result`` = {stored, approved, pending, flagged, rejected:
    {reason: n}, tokens: {prompt, completion}, …}; FAILED with ``llm_not_configured``,
    ``llm_unavailable``, ``llm_bad_reply`` or ``invalid`` (the industry was retired); or
    CANCELLED. Examples of completed batches stay in every case. A task that is not PENDING is
    left alone, so running it twice is harmless.
    """
    with tasks.running(engine, task_id) as task:
        if task is None:
            return NOT_PENDING
        return _synthesise(engine, task, settings, models, policy)


def _synthesise(
    engine: Engine, task: Task, settings: Settings, models: ModelCache, policy: RoutingPolicy
) -> str:
    task_id = task.id
    if not settings.llm_configured:
        industry = str(task.params.get("industry", "?"))
        tasks.finish(
            engine,
            task_id,
            TaskStatus.FAILED,
            error_code=LLM_NOT_CONFIGURED,
            error_message=_not_configured(industry),
        )
        return f"failed: {LLM_NOT_CONFIGURED}"
    stop = threading.Event()
    client: LlmClient | None = None
    pool: ThreadPoolExecutor | None = None
    run: _Run | None = None
    try:
        run = _prepare(engine, task, settings)
        client = LlmClient.from_settings(settings, stop=stop)
        pool = ThreadPoolExecutor(max_workers=settings.llm_concurrency, thread_name_prefix="heron-llm")
        _generate(engine, run, settings, models, policy, client, pool)
    except _Cancelled:
        tasks.finish(engine, task_id, TaskStatus.CANCELLED, result=run.result() if run else {})
        return f"cancelled after storing {run.stored if run else 0} document(s)"
    except HeronError as error:
        tasks.finish(
            engine,
            task_id,
            TaskStatus.FAILED,
            result=run.result() if run else {},
            error_code=error.code,
            error_message=error.message,
        )
        return f"failed: {error.code}: {error.message}"
    except Exception as error:
        tasks.finish(
            engine,
            task_id,
            TaskStatus.FAILED,
            result=run.result() if run else {},
            error_code="internal_error",
            error_message=f"{type(error).__name__}: {error}",
        )
        raise
    finally:
        # Requests still in flight (a slow server during a cancellation) are abandoned: their
        # waits end at once, closing the client aborts their connections, and nothing stores them.
        stop.set()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if client is not None:
            client.close()
    result = run.result()
    if run.stored < run.count:
        result["note"] = (
            f"Stored {run.stored} of {run.count}: after asking for {run.asked} documents, the others "
            "had not passed the quality gates (see rejected)."
        )
    tasks.finish(engine, task_id, TaskStatus.SUCCEEDED, result=result)
    return f"stored {run.stored} of {run.count} synthetic {run.industry} document(s)"


def _prepare(engine: Engine, task: Task, settings: Settings) -> _Run:
    """The run's inputs, and its memory: every stored text's hash, and the industry's texts."""
    name = str(task.params.get("industry", ""))
    count = int(task.params.get("count", 0))
    index = NearDuplicateIndex(threshold=NEAR_DUPLICATE_SIMILARITY)
    with session_scope(engine) as session:
        industry = session.exec(select(Industry).where(Industry.name == name)).first()
        if industry is None or industry.status != IndustryStatus.active:
            raise Invalid(f"Industry {name!r} is not active any more; no documents were written.")
        seen = set(session.exec(select(TrainingExample.content_hash)))
        index.add_all(session.exec(select(TrainingExample.text).where(TrainingExample.label == name)))
        # A run resumed after its worker died continues where the stored batches end.
        earlier = session.exec(
            select(TrainingExample.status, TrainingExample.meta).where(
                TrainingExample.origin.startswith(f"synthetic/{task.id}/")
            )
        ).all()
    return _Run(
        task_id=task.id,
        industry=name,
        description=industry.description,
        count=count,
        model=settings.llm_model,
        seen_hashes=seen,
        index=index,
        stored=len(earlier),
        approved=sum(status == ExampleStatus.approved for status, _ in earlier),
        flagged=sum(bool(meta and meta.get("flag")) for _, meta in earlier),
    )


def _generate(
    engine: Engine,
    run: _Run,
    settings: Settings,
    models: ModelCache,
    policy: RoutingPolicy,
    client: LlmClient,
    pool: ThreadPoolExecutor,
) -> None:
    _report(engine, run, "choosing genres")
    run.genres = _genres(engine, run, client, pool)
    budget = run.count * ATTEMPT_FACTOR + DOCUMENTS_PER_REQUEST
    while run.stored < run.count and run.asked < budget:
        need = run.count - run.stored
        sizes = _request_sizes(need, settings.llm_concurrency)
        briefs = plan_briefs(run.genres, sum(sizes), start=run.asked, seed=run.task_id)
        groups = [briefs[sum(sizes[:i]) : sum(sizes[: i + 1])] for i in range(len(sizes))]
        futures = [
            pool.submit(
                client.complete,
                document_messages(run.industry, run.description, group),
                response_format=DOCUMENTS_FORMAT,
            )
            for group in groups
        ]
        run.asked += len(briefs)
        candidates = _candidates(run, groups, _await(engine, run, futures, client.stop))
        screening = screen(
            candidates,
            min_chars=settings.synthetic_min_chars,
            max_chars=settings.synthetic_max_chars,
            seen_hashes=run.seen_hashes,
            index=run.index,
        )
        run.rejected.update(screening.rejected)
        accepted = screening.accepted[:need]
        if surplus := len(screening.accepted) - len(accepted):
            run.rejected["surplus"] += surplus
        if accepted:
            verdicts = _check(engine, models, policy, run, [c.text for c in accepted])
            _store(engine, run, settings, accepted, verdicts)
        _report(engine, run, f"writing documents: {run.stored} of {run.count} stored")
    if run.stored == 0 and run.replies and run.bad_replies == run.replies:
        raise LlmBadReply(
            f"None of the {run.replies} replies from {settings.llm_model} held a readable document; "
            "check that the model follows instructions (or supports JSON output)."
        )
    if run.stored == 0:
        reasons = ", ".join(f"{reason} {n}" for reason, n in run.rejected.most_common())
        raise LlmBadReply(
            f"None of the {run.asked} documents asked of {settings.llm_model} passed the quality gates "
            f"({reasons})."
        )


def _report(engine: Engine, run: _Run, stage: str) -> None:
    if not tasks.progress(engine, run.task_id, done=run.stored, total=run.count, stage=stage):
        raise _Cancelled()


def _request_sizes(need: int, concurrency: int) -> list[int]:
    """Split ``need`` documents into at most ``concurrency`` requests of ≤ DOCUMENTS_PER_REQUEST."""
    requests = min(concurrency, math.ceil(need / DOCUMENTS_PER_REQUEST))
    base, extra = divmod(min(need, requests * DOCUMENTS_PER_REQUEST), requests)
    return [base + (i < extra) for i in range(requests)]


def _genres(engine: Engine, run: _Run, client: LlmClient, pool: ThreadPoolExecutor) -> list[str]:
    """Genres from the description, then the ones the model proposes (a bad reply just adds none)."""
    described = genres_from_description(run.description)
    future = pool.submit(
        client.complete,
        genre_messages(run.industry, run.description, GENRES_TO_ASK),
        response_format=GENRES_FORMAT,
    )
    (outcome,) = _await(engine, run, [future], client.stop)
    proposed: list[str] = []
    if isinstance(outcome, LlmUnavailable):
        raise outcome
    if isinstance(outcome, Completion):
        _count_tokens(run, outcome)
        try:
            proposed = parse_genres(outcome.text)
        except LlmBadReply as error:
            log.info("synthesis %s: no genres proposed (%s)", run.task_id, error.message)
    return merge_genres(described, proposed)


def _await(
    engine: Engine, run: _Run, futures: Sequence[Future[Completion]], stop: threading.Event
) -> list[Completion | HeronError]:
    """Each request's completion or LLM error, in order, watching for a cancellation meanwhile."""
    pending = set(futures)
    beat = time.monotonic()
    while pending:
        _, pending = wait(pending, timeout=CANCEL_POLL_SECONDS)
        if not pending:
            break
        if time.monotonic() - beat >= HEARTBEAT_SECONDS:
            beat = time.monotonic()
            alive = tasks.progress(engine, run.task_id, done=run.stored)
        else:
            alive = not tasks.cancel_requested(engine, run.task_id)
        if not alive:
            stop.set()
            raise _Cancelled()
    outcomes: list[Completion | HeronError] = []
    for future in futures:
        try:
            outcomes.append(future.result())
        except (LlmUnavailable, LlmBadReply) as error:
            outcomes.append(error)
    return outcomes


def _count_tokens(run: _Run, completion: Completion) -> None:
    run.tokens["prompt"] += completion.prompt_tokens
    run.tokens["completion"] += completion.completion_tokens


def _candidates(
    run: _Run, groups: Sequence[Sequence[Brief]], outcomes: Sequence[Completion | HeronError]
) -> list[Candidate]:
    """The documents of every usable reply, each with the brief it answered (by position)."""
    candidates = []
    for group, outcome in zip(groups, outcomes, strict=True):
        if isinstance(outcome, LlmUnavailable):
            raise outcome
        run.replies += 1
        if isinstance(outcome, HeronError):
            run.bad_replies += 1
            run.rejected["bad_reply"] += 1
            continue
        _count_tokens(run, outcome)
        try:
            documents = parse_documents(outcome.text)
        except LlmBadReply as error:
            log.info("synthesis %s: %s", run.task_id, error.message)
            run.bad_replies += 1
            run.rejected["bad_reply"] += 1
            continue
        share = {
            "prompt": round(outcome.prompt_tokens / len(documents)),
            "completion": round(outcome.completion_tokens / len(documents)),
        }
        for position, document in enumerate(documents):
            brief = group[position] if position < len(group) else None
            # The brief says what was asked for; the reply's own genre label only fills a gap.
            meta = {**(brief.as_meta() if brief else {"genre": document.genre}), "tokens": share}
            candidates.append(Candidate(text=document.text, meta=meta))
    return candidates


def _check(
    engine: Engine, models: ModelCache, policy: RoutingPolicy, run: _Run, texts: list[str]
) -> list[Verdict]:
    """The active model's verdicts on the texts, among the active industries (this one included)."""
    _, model = models.active(engine)
    with session_scope(engine) as session:
        active = active_industries(session)
    if run.industry not in model.labels:
        # The cache refreshes its industries every few seconds; a brand-new one may not be in yet.
        model = model.with_prototypes(industry_prototypes(models.encoder, {run.industry: run.description}))
    allowed = [label for label in model.labels if label in active]
    return model.classify(texts, policy, allowed=allowed, encoder=models.encoder)


def _store(
    engine: Engine, run: _Run, settings: Settings, accepted: list[Candidate], verdicts: list[Verdict]
) -> None:
    """Store one batch in one transaction: all of it or (on error) none of it."""
    rows = []
    for position, (candidate, verdict) in enumerate(zip(accepted, verdicts, strict=True), start=1):
        flagged = verdict.label != run.industry and verdict.confidence >= FLAG_CONFIDENCE
        trainable = not flagged and not settings.synthetic_needs_approval
        meta: dict[str, Any] = {
            "model": run.model,
            "prompt_version": PROMPT_VERSION,
            "task_id": run.task_id,
            **candidate.meta,
            "predicted": verdict.label,
            "confidence": round(verdict.confidence, 4),
            "tier": verdict.tier,
        }
        if flagged:
            meta["flag"] = "looks_like"
        rows.append(
            {
                "text": candidate.text.strip(),
                "content_hash": content_hash(candidate.text.strip()),
                "label": run.industry,
                "source": ExampleSource.synthetic,
                # Synthetic text trains but never judges: the holdout must be real documents.
                "split": Split.train,
                "origin": f"synthetic/{run.task_id}/{run.stored + position}",
                "status": ExampleStatus.approved if trainable else ExampleStatus.pending,
                "meta": meta,
            }
        )
    try:
        with session_scope(engine) as session:
            session.add_all(TrainingExample(**row) for row in rows)
    except IntegrityError:
        # Another run stored one of these texts for this industry meanwhile: store the rest.
        with session_scope(engine) as session:
            taken = set(
                session.exec(
                    select(TrainingExample.content_hash).where(
                        TrainingExample.label == run.industry,
                        TrainingExample.source == ExampleSource.synthetic,
                        TrainingExample.content_hash.in_([row["content_hash"] for row in rows]),
                    )
                )
            )
            run.rejected["duplicate"] += sum(row["content_hash"] in taken for row in rows)
            rows = [row for row in rows if row["content_hash"] not in taken]
            session.add_all(TrainingExample(**row) for row in rows)
    run.stored += len(rows)
    run.approved += sum(row["status"] == ExampleStatus.approved for row in rows)
    run.flagged += sum("flag" in row["meta"] for row in rows)
