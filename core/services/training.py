"""Training use cases: the starter model, full retrains and incremental updates, with evaluation."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score
from sqlalchemy import Engine
from sqlmodel import Session, select

from core.classify.calibration import softmax
from core.classify.model import Encoder, HeronModel, RoutingPolicy
from core.classify.training import fit_hybrid, young_labels
from core.corpus import read_industries, read_text_corpus, stratified_holdout
from core.db import session_scope
from core.db.tables import (
    EvaluationReport,
    ExampleSource,
    ExampleStatus,
    Industry,
    ModelVersion,
    Split,
    TaskStatus,
    TrainingExample,
)
from core.errors import Conflict, HeronError, Invalid, ModelNotReady
from core.evaluation import evaluation_report, routing_curve
from core.services import audit, leases, tasks
from core.services.industries import active_industries
from core.services.models import activate, active_version_id, industry_prototypes, store_version

log = logging.getLogger(__name__)

TRAINING_LEASE = "training"
TRAINING_LEASE_SECONDS = 1800
HOLDOUT_DATASET = "starter_holdout"


Progress = Callable[[int, str], None]


def _no_progress(done: int, stage: str) -> None:
    return None


@dataclass(frozen=True)
class TrainingOutcome:
    version_id: int
    activated: bool
    metrics: dict[str, Any]
    reason: str
    seconds: float


def ensure_starter_model(
    *, engine: Engine, starter_dir: Path, policy: RoutingPolicy, encoder: Encoder, wait_seconds: float = 900
) -> int:
    """Return the active model's id, training the starter model first if there is none.

    Safe when several processes start together: one trains, the others wait for its result.
    """
    with session_scope(engine) as session:
        if (version_id := active_version_id(session)) is not None:
            return version_id
    with leases.held(
        engine, TRAINING_LEASE, ttl_seconds=TRAINING_LEASE_SECONDS, wait_seconds=wait_seconds
    ) as acquired:
        with session_scope(engine) as session:
            if (version_id := active_version_id(session)) is not None:
                return version_id
        if not acquired:
            raise ModelNotReady("Another process is training the starter model and has not finished.")
        load_starter_corpus(engine=engine, starter_dir=starter_dir)
        log.info("training the starter model from %s", starter_dir)
        outcome = _train_full(engine, policy, encoder, actor="system", always_activate=True)
        return outcome.version_id


def load_starter_corpus(*, engine: Engine, starter_dir: Path) -> dict[str, int]:
    """Add the shipped industries and starter documents that the database does not have yet."""
    specs = read_industries(starter_dir / "industries.json")
    items = read_text_corpus(starter_dir / "starter")
    if not items:
        raise Invalid(f"The starter corpus in {starter_dir / 'starter'} has no documents.")
    holdout = stratified_holdout(items)
    added: Counter[str] = Counter()
    with session_scope(engine) as session:
        known = set(session.exec(select(Industry.name)))
        for spec in specs:
            if spec.name not in known:
                session.add(Industry(name=spec.name, description=spec.description))
                audit.record(
                    session,
                    action="industry.created",
                    subject_type="industry",
                    subject_id=spec.name,
                    actor="system",
                )
        seen = set(
            session.exec(
                select(TrainingExample.content_hash).where(TrainingExample.source == ExampleSource.starter)
            )
        )
        for item, held_out in zip(items, holdout, strict=True):
            if item.content_hash in seen:
                continue
            seen.add(item.content_hash)
            session.add(
                TrainingExample(
                    text=item.text,
                    content_hash=item.content_hash,
                    label=item.label,
                    source=ExampleSource.starter,
                    split=Split.holdout if held_out else Split.train,
                    origin=item.origin,
                )
            )
            added[item.label] += 1
    return dict(added)


def train_full(
    *,
    engine: Engine,
    policy: RoutingPolicy,
    encoder: Encoder,
    actor: str | None = None,
    promotion_margin: float = 0.005,
    on_progress: Progress | None = None,
) -> TrainingOutcome:
    """Train a new version from every stored training example; promote it if it is not worse.

    Raises:
        Conflict: another training run holds the lease.
    """
    with leases.held(engine, TRAINING_LEASE, ttl_seconds=TRAINING_LEASE_SECONDS) as acquired:
        if not acquired:
            raise Conflict("A training run is already in progress; try again when it has finished.")
        return _train_full(
            engine, policy, encoder, actor=actor, promotion_margin=promotion_margin, on_progress=on_progress
        )


def _train_full(
    engine: Engine,
    policy: RoutingPolicy,
    encoder: Encoder,
    *,
    actor: str | None,
    always_activate: bool = False,
    promotion_margin: float = 0.005,
    on_progress: Progress | None = None,
) -> TrainingOutcome:
    started = time.perf_counter()
    progress = on_progress or _no_progress
    progress(0, "reading training examples")
    with session_scope(engine) as session:
        industries, train, holdout = _training_data(session)
        labels = list(industries)
        parent_id = active_version_id(session)
    if not train:
        raise Invalid("There are no training examples for the active industries.")
    texts = [e.text for e in train]
    progress(1, f"embedding and fitting {len(train)} examples")
    prototypes = industry_prototypes(encoder, industries)
    fit = fit_hybrid(texts, [e.label for e in train], encoder.embed(texts), prototypes, industries=labels)
    model = fit.model
    progress(2, f"evaluating on {len(holdout)} held-out examples")
    report = evaluate(model, holdout, policy, allowed=labels, encoder=encoder)
    report["cross_validation"] = _cross_validation(fit)
    progress(3, "comparing with the active model")
    trained_on = {
        "examples": len(train),
        "by_label": dict(Counter(e.label for e in train)),
        "max_example_id": max(e.id for e in train),
    }
    return _register(
        engine,
        model,
        report,
        parent_id=parent_id,
        kind="full",
        trained_on=trained_on,
        holdout=holdout,
        policy=policy,
        prototypes=prototypes,
        encoder=encoder,
        actor=actor,
        always_activate=always_activate,
        promotion_margin=promotion_margin,
        started=started,
    )


def _register(
    engine: Engine,
    model: HeronModel,
    report: dict[str, Any],
    *,
    parent_id: int | None,
    kind: str,
    trained_on: dict[str, Any],
    holdout: list[TrainingExample],
    policy: RoutingPolicy,
    prototypes: dict[str, Any],
    encoder: Encoder,
    actor: str | None,
    always_activate: bool,
    promotion_margin: float,
    started: float,
) -> TrainingOutcome:
    """Store the trained model as a version with its report, and promote it if it is not worse."""
    with session_scope(engine) as session:
        version = store_version(
            session, model, parent_id=parent_id, kind=kind, metrics=_headline(report), trained_on=trained_on
        )
        session.add(EvaluationReport(model_version_id=version.id, dataset=HOLDOUT_DATASET, report=report))
        activated, reason = _promotion_decision(
            session,
            report,
            parent_id,
            holdout,
            policy,
            prototypes,
            encoder,
            always_activate,
            promotion_margin,
        )
        if activated:
            activate(session, version.id, actor=actor)
        audit.record(
            session,
            action="model.trained",
            subject_type="model",
            subject_id=version.id,
            actor=actor,
            activated=activated,
            reason=reason,
            macro_f1=report.get("macro_f1"),
            kind=kind,
        )
        version_id = version.id
    return TrainingOutcome(
        version_id=version_id,
        activated=activated,
        metrics=_headline(report),
        reason=reason,
        seconds=time.perf_counter() - started,
    )


def train_incremental(
    *,
    engine: Engine,
    policy: RoutingPolicy,
    encoder: Encoder,
    actor: str | None = None,
    promotion_margin: float = 0.005,
    replay: int = 4,
    on_progress: Progress | None = None,
) -> TrainingOutcome:
    """Update the active model with the training examples added since it was trained.

    ``partial_fit`` from the active version's weights on the new examples plus ``replay`` times as
    many earlier ones (so the update does not forget what it knew); seconds, not a full retrain.

    Raises:
        Conflict: another training run holds the lease.
        Invalid: there is nothing new to learn, or no active model to start from.
    """
    with leases.held(engine, TRAINING_LEASE, ttl_seconds=TRAINING_LEASE_SECONDS) as acquired:
        if not acquired:
            raise Conflict("A training run is already in progress; try again when it has finished.")
        started = time.perf_counter()
        progress = on_progress or _no_progress
        progress(0, "reading training examples")
        with session_scope(engine) as session:
            parent_id = active_version_id(session)
            if parent_id is None:
                raise Invalid("There is no active model to update; run a full training first.")
            parent = session.get(ModelVersion, parent_id)
            seen_up_to = int(parent.trained_on.get("max_example_id", 0))
            industries, train, holdout = _training_data(session)
            labels = list(industries)
            model = HeronModel.from_bytes(parent.artifact)
            parent_trained_on = dict(parent.trained_on)
        new = [e for e in train if e.id > seen_up_to]
        if not new:
            raise Invalid("No training examples were added since the active model was trained.")
        old = [e for e in train if e.id <= seen_up_to]
        rng = np.random.default_rng(len(train))
        rehearsal = [old[i] for i in rng.permutation(len(old))[: replay * len(new)]]
        batch = new + rehearsal
        progress(1, f"learning {len(new)} new examples (+{len(rehearsal)} rehearsed)")
        texts = [e.text for e in batch]
        prototypes = industry_prototypes(encoder, industries)
        model = model.with_prototypes(prototypes)
        model.partial_fit(texts, [e.label for e in batch], encoder.embed(texts))
        model.young_labels = young_labels(Counter(e.label for e in train))
        progress(2, f"evaluating on {len(holdout)} held-out examples")
        report = evaluate(model, holdout, policy, allowed=labels, encoder=encoder)
        progress(3, "comparing with the active model")
        by_label = Counter(parent_trained_on.get("by_label", {}))
        by_label.update(e.label for e in new)
        trained_on = {
            "examples": int(parent_trained_on.get("examples", 0)) + len(new),
            "by_label": dict(by_label),
            "max_example_id": max(e.id for e in train),
            "new_examples": len(new),
            "rehearsal_examples": len(rehearsal),
        }
        return _register(
            engine,
            model,
            report,
            parent_id=parent_id,
            kind="incremental",
            trained_on=trained_on,
            holdout=holdout,
            policy=policy,
            prototypes=prototypes,
            encoder=encoder,
            actor=actor,
            always_activate=False,
            promotion_margin=promotion_margin,
            started=started,
        )


def _promotion_decision(
    session: Session,
    report: dict[str, Any],
    parent_id: int | None,
    holdout: list[TrainingExample],
    policy: RoutingPolicy,
    prototypes: dict[str, Any],
    encoder: Encoder,
    always_activate: bool,
    margin: float,
) -> tuple[bool, str]:
    if always_activate or parent_id is None:
        return True, "first model"
    # Re-score the active model on today's holdout rather than trusting its stored number:
    # the holdout grows as gold labels arrive, and both must be judged on the same documents.
    # Both are judged as they would be served: with every active industry, the parent learning the
    # ones it never saw from their descriptions (exactly what ModelCache does).
    parent = HeronModel.from_bytes(session.get(ModelVersion, parent_id).artifact).with_prototypes(prototypes)
    labels = list(prototypes)
    baseline = evaluate(parent, holdout, policy, allowed=labels, encoder=encoder).get("macro_f1", 0.0)
    candidate = report.get("macro_f1", 0.0)
    if candidate + margin >= baseline:
        return True, f"macro-F1 {candidate:.3f} vs active {baseline:.3f}"
    return False, f"macro-F1 {candidate:.3f} is worse than active {baseline:.3f} by more than {margin:.3f}"


def evaluate(
    model: HeronModel,
    examples: list[TrainingExample],
    policy: RoutingPolicy,
    *,
    allowed: list[str],
    encoder: Encoder,
) -> dict[str, Any]:
    """Classify ``examples`` exactly as production would and report how it went."""
    if not examples:
        return {"n": 0}
    started = time.perf_counter()
    verdicts = model.classify([e.text for e in examples], policy, allowed=allowed, encoder=encoder)
    report = evaluation_report(
        [e.label for e in examples],
        [v.label for v in verdicts],
        [v.confidence for v in verdicts],
        labels=allowed,
        escalated=[v.escalated for v in verdicts],
        needs_review=[v.needs_review for v in verdicts],
    )
    report["docs_per_second"] = len(examples) / max(time.perf_counter() - started, 1e-9)
    return report


def _headline(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("n", "accuracy", "macro_f1", "ece", "escalation_rate", "review_rate")
    return {key: report[key] for key in keys if key in report}


def _cross_validation(fit) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Out-of-fold quality of each tier on the training data, and the routing curve derived from it."""
    if not fit.oof_fast.any():
        return {}
    fast = softmax(fit.oof_fast / fit.model.fast_temperature)
    transformer = softmax(fit.oof_semantic / fit.model.semantic.temperature)
    return {
        "fast_macro_f1": float(f1_score(fit.targets, fast.argmax(axis=1), average="macro")),
        "transformer_macro_f1": float(f1_score(fit.targets, transformer.argmax(axis=1), average="macro")),
        "fast_temperature": fit.model.fast_temperature,
        "transformer_temperature": fit.model.semantic.temperature,
        "routing": routing_curve(fast, transformer, fit.targets),
    }


def _training_data(
    session: Session,
) -> tuple[dict[str, str], list[TrainingExample], list[TrainingExample]]:
    """Active industries (name → description), and their training and holdout examples."""
    industries = active_industries(session)
    labels = list(industries)
    return industries, _examples(session, Split.train, labels), _examples(session, Split.holdout, labels)


def _examples(session: Session, split: Split, labels: list[str]) -> list[TrainingExample]:
    return list(
        session.exec(
            select(TrainingExample)
            .where(
                TrainingExample.split == split,
                TrainingExample.label.in_(labels),
                TrainingExample.status == ExampleStatus.approved,
            )
            .order_by(TrainingExample.id)
        )
    )


TRAINING_MODES = ("full", "incremental")


def request_training(
    *, engine: Engine, mode: str = "full", actor: str | None = None
) -> tuple[tasks.TaskView, bool]:
    """Queue a training task, or join one that is still waiting (requests are coalesced).

    A waiting full retrain absorbs any request; a waiting incremental update absorbs incremental
    ones. Returns the task and whether it was an existing one. Send its message after this returns.
    """
    if mode not in TRAINING_MODES:
        raise Invalid(f"Unknown training mode {mode!r}; use full or incremental.")
    with session_scope(engine) as session:
        waiting = tasks.find_waiting(session, kind="training", params={"mode": "full"})
        if waiting is None and mode == "incremental":
            waiting = tasks.find_waiting(session, kind="training", params={"mode": "incremental"})
        if waiting is not None:
            return tasks.task_view(waiting), True
        task = tasks.create_task(session, kind="training", params={"mode": mode}, total=4, requested_by=actor)
        return tasks.task_view(task), False


def run_training_task(*, engine: Engine, task_id: str, policy: RoutingPolicy, encoder: Encoder) -> str:
    """Run a queued training task to its end; returns what happened (for the log).

    Raises:
        Conflict: another run holds the training lease; the task is PENDING again, to be retried.
    """
    task = tasks.start(engine, task_id)
    if task is None:
        return "not pending (already run, running elsewhere or cancelled)"
    mode = task.params.get("mode", "full")
    train = train_incremental if mode == "incremental" else train_full

    def report(done: int, stage: str) -> None:
        tasks.progress(engine, task_id, done=done, stage=stage)

    try:
        outcome = train(
            engine=engine, policy=policy, encoder=encoder, actor=task.requested_by, on_progress=report
        )
    except Conflict:
        tasks.put_back(engine, task_id, stage="waiting for the running training to finish")
        raise
    except Invalid as nothing:
        # Typically: an incremental request whose examples the previous run already learned.
        tasks.finish(engine, task_id, TaskStatus.SUCCEEDED, result={"skipped": nothing.message})
        return f"skipped: {nothing.message}"
    except HeronError as error:
        tasks.finish(engine, task_id, TaskStatus.FAILED, error_code=error.code, error_message=error.message)
        return f"failed: {error.message}"
    except Exception as error:
        tasks.finish(
            engine,
            task_id,
            TaskStatus.FAILED,
            error_code="internal",
            error_message=f"{type(error).__name__}: {error}",
        )
        raise
    result = {
        "version_id": outcome.version_id,
        "activated": outcome.activated,
        "reason": outcome.reason,
        "metrics": outcome.metrics,
        "seconds": round(outcome.seconds, 3),
    }
    tasks.finish(engine, task_id, TaskStatus.SUCCEEDED, result=result)
    return f"model {outcome.version_id} (activated={outcome.activated}: {outcome.reason})"
