"""Training use cases: the starter model, full retrains and incremental updates, with evaluation."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from core.classify.linear import LinearTextClassifier
from core.classify.model import HeronModel, RoutingPolicy
from core.corpus import read_industries, read_text_corpus, stratified_holdout
from core.db import session_scope
from core.db.tables import (
    EvaluationReport,
    ExampleSource,
    Industry,
    IndustryStatus,
    ModelVersion,
    Split,
    TrainingExample,
)
from core.errors import Conflict, Invalid, ModelNotReady
from core.evaluation import evaluation_report
from core.services import audit, leases
from core.services.models import activate, active_version_id, store_version

log = logging.getLogger(__name__)

TRAINING_LEASE = "training"
TRAINING_LEASE_SECONDS = 1800
HOLDOUT_DATASET = "starter_holdout"


@dataclass(frozen=True)
class TrainingOutcome:
    version_id: int
    activated: bool
    metrics: dict[str, Any]
    reason: str
    seconds: float


def ensure_starter_model(
    *, engine: Engine, starter_dir: Path, policy: RoutingPolicy, wait_seconds: float = 900
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
        outcome = _train_full(engine, policy, actor="system", always_activate=True)
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
    *, engine: Engine, policy: RoutingPolicy, actor: str | None = None, promotion_margin: float = 0.005
) -> TrainingOutcome:
    """Train a new version from every stored training example; promote it if it is not worse.

    Raises:
        Conflict: another training run holds the lease.
    """
    with leases.held(engine, TRAINING_LEASE, ttl_seconds=TRAINING_LEASE_SECONDS) as acquired:
        if not acquired:
            raise Conflict("A training run is already in progress; try again when it has finished.")
        return _train_full(engine, policy, actor=actor, promotion_margin=promotion_margin)


def _train_full(
    engine: Engine,
    policy: RoutingPolicy,
    *,
    actor: str | None,
    always_activate: bool = False,
    promotion_margin: float = 0.005,
) -> TrainingOutcome:
    started = time.perf_counter()
    with session_scope(engine) as session:
        labels = _active_labels(session)
        train = _examples(session, Split.train, labels)
        holdout = _examples(session, Split.holdout, labels)
        parent_id = active_version_id(session)
    if not train:
        raise Invalid("There are no training examples for the active industries.")
    fast = LinearTextClassifier().fit([e.text for e in train], [e.label for e in train])
    model = HeronModel(fast=fast)
    report = evaluate(model, holdout, policy, allowed=labels)
    trained_on = {"examples": len(train), "by_label": dict(Counter(e.label for e in train))}
    with session_scope(engine) as session:
        version = store_version(
            session, model, parent_id=parent_id, kind="full", metrics=_headline(report), trained_on=trained_on
        )
        session.add(EvaluationReport(model_version_id=version.id, dataset=HOLDOUT_DATASET, report=report))
        activated, reason = _promotion_decision(
            session, report, parent_id, holdout, policy, labels, always_activate, promotion_margin
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
        )
        version_id = version.id
    return TrainingOutcome(
        version_id=version_id,
        activated=activated,
        metrics=_headline(report),
        reason=reason,
        seconds=time.perf_counter() - started,
    )


def _promotion_decision(
    session: Session,
    report: dict[str, Any],
    parent_id: int | None,
    holdout: list[TrainingExample],
    policy: RoutingPolicy,
    labels: list[str],
    always_activate: bool,
    margin: float,
) -> tuple[bool, str]:
    if always_activate or parent_id is None:
        return True, "first model"
    # Re-score the active model on today's holdout rather than trusting its stored number:
    # the holdout grows as gold labels arrive, and both must be judged on the same documents.
    parent = HeronModel.from_bytes(session.get(ModelVersion, parent_id).artifact)
    baseline = evaluate(parent, holdout, policy, allowed=labels).get("macro_f1", 0.0)
    candidate = report.get("macro_f1", 0.0)
    if candidate + margin >= baseline:
        return True, f"macro-F1 {candidate:.3f} vs active {baseline:.3f}"
    return False, f"macro-F1 {candidate:.3f} is worse than active {baseline:.3f} by more than {margin:.3f}"


def evaluate(
    model: HeronModel, examples: list[TrainingExample], policy: RoutingPolicy, *, allowed: list[str]
) -> dict[str, Any]:
    if not examples:
        return {"n": 0}
    started = time.perf_counter()
    verdicts = model.classify([e.text for e in examples], policy, allowed=allowed)
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


def _active_labels(session: Session) -> list[str]:
    return list(
        session.exec(
            select(Industry.name).where(Industry.status == IndustryStatus.active).order_by(Industry.id)
        )
    )


def _examples(session: Session, split: Split, labels: list[str]) -> list[TrainingExample]:
    return list(
        session.exec(
            select(TrainingExample)
            .where(TrainingExample.split == split, TrainingExample.label.in_(labels))
            .order_by(TrainingExample.id)
        )
    )
