"""Training use cases: the starter model, full retrains and incremental updates, with evaluation."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, update
from sqlmodel import Session, select

from core.classify.calibration import softmax
from core.classify.carving import Carver, sentences_not_about
from core.classify.label_issues import find_label_issues
from core.classify.model import MODEL_FORMAT, Encoder, HeronModel, RoutingPolicy
from core.classify.training import (
    TrainingSet,
    carve_out,
    description_sentences,
    fit_hybrid,
    fit_settled,
    newcomers,
    origin_group,
)
from core.corpus import read_industries, read_text_corpus, readable_name, stratified_holdout
from core.db import one_at_a_time, session_scope
from core.db.tables import (
    EvaluationReport,
    ExampleSource,
    ExampleStatus,
    Industry,
    ModelVersion,
    Split,
    Task,
    TaskStatus,
    TrainingExample,
    utcnow,
)
from core.errors import Conflict, HeronError, Invalid, ModelNotReady
from core.evaluation import evaluation_report, routing_curve
from core.services import audit, leases, tasks
from core.services.industries import active_industries, catch_all_industry
from core.services.models import (
    ACTIVATION_TURN,
    activate,
    active_version_id,
    industry_prototypes,
    store_version,
)
from core.work import WorkSender

log = logging.getLogger(__name__)

TRAINING_LEASE = "training"
# Renewed while the run lives (leases.held): a worker killed mid-run holds training up this long.
TRAINING_LEASE_SECONDS = 90
HOLDOUT_DATASET = "starter_holdout"
GOLD_DATASET = "gold"
# The report of a version that lists the examples it doubts (core.classify.label_issues).
LABEL_ISSUES_DATASET = "label_issues"
# Sources whose examples are checked for label issues: what people labelled or approved (the
# starter corpus is ours).
CHECKED_SOURCES = (ExampleSource.feedback, ExampleSource.import_, ExampleSource.synthetic)
MAX_LABEL_ISSUES = 500


Progress = Callable[[int, str], None]
# A training run reports stages 0 … TRAINING_STAGES - 1 (reading, fitting, evaluating, comparing).
TRAINING_STAGES = 4


def _no_progress(done: int, stage: str) -> None:
    return None


@dataclass(frozen=True)
class TrainingOutcome:
    version_id: int
    activated: bool
    metrics: dict[str, Any]
    reason: str
    seconds: float
    new_examples: int = 0


def ensure_starter_model(
    *, engine: Engine, starter_dir: Path, policy: RoutingPolicy, encoder: Encoder, wait_seconds: float = 900
) -> int:
    """Return the active model's id, training the starter model first if there is none.

    Safe when several processes start together: one trains, the others wait for its result.
    """
    if active_model_is_current(engine):
        with session_scope(engine) as session:
            return active_version_id(session)  # type: ignore[return-value]
    with leases.held(
        engine, TRAINING_LEASE, ttl_seconds=TRAINING_LEASE_SECONDS, wait_seconds=wait_seconds
    ) as acquired:
        if active_model_is_current(engine):
            with session_scope(engine) as session:
                return active_version_id(session)  # type: ignore[return-value]
        if not acquired:
            raise ModelNotReady("Another process is training the starter model and has not finished.")
        load_starter_corpus(engine=engine, starter_dir=starter_dir)
        log.info("training the starter model from %s", starter_dir)
        outcome = _train(engine, policy, encoder, kind="full", actor="system", always_activate=True)
        return outcome.version_id


def active_model_is_current(engine: Engine) -> bool:
    """Whether a model is active and this Heron can read it (an older Heron's artifact format is
    retrained from the stored examples at start-up, keeping the old version for the record)."""
    with session_scope(engine) as session:
        version_id = active_version_id(session)
        if version_id is None:
            return False
        artifact = session.get(ModelVersion, version_id).artifact
    found = HeronModel.format_of(artifact)
    if found == MODEL_FORMAT:
        return True
    log.warning("the active model %s has format %r; retraining it as %s", version_id, found, MODEL_FORMAT)
    return False


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
                session.add(Industry(name=spec.name, description=spec.description, catch_all=spec.catch_all))
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
    on_progress: Progress | None = None,
) -> TrainingOutcome:
    """Train a new version from every stored training example, from scratch; promote it if the
    promotion rule (:func:`promotion_decision`) allows.

    Raises:
        Conflict: another training run holds the lease.
    """
    return _single_flight(engine, policy, encoder, kind="full", actor=actor, on_progress=on_progress)


def train_incremental(
    *,
    engine: Engine,
    policy: RoutingPolicy,
    encoder: Encoder,
    actor: str | None = None,
    on_progress: Progress | None = None,
) -> TrainingOutcome:
    """Update the active model with what changed since it was trained (approved corrections,
    imported or example files, new or renamed industries): seconds, not a full retrain.

    The update refits both tiers on every stored example, starting from the active version's
    weights and reading embeddings from the cache, so it converges in a few steps to the model a
    full retrain would give (the problem is convex) — unlike a few gradient steps on the new
    examples, which barely moved the model. (Run as a task, it queues a full run after it once the
    examples have grown enough: see REFRESH_SHARE.)

    Raises:
        Conflict: another training run holds the lease.
        Invalid: nothing changed since the active model was trained, or there is no active model.
    """
    return _single_flight(engine, policy, encoder, kind="incremental", actor=actor, on_progress=on_progress)


def _single_flight(
    engine: Engine,
    policy: RoutingPolicy,
    encoder: Encoder,
    *,
    kind: str,
    actor: str | None,
    on_progress: Progress | None,
) -> TrainingOutcome:
    """One training run at a time across every process and machine (a lease row decides)."""
    with leases.held(engine, TRAINING_LEASE, ttl_seconds=TRAINING_LEASE_SECONDS) as acquired:
        if not acquired:
            raise Conflict(
                "A training run is already in progress; try again when it has finished (a run whose "
                f"process was killed lets go within {TRAINING_LEASE_SECONDS} s)."
            )
        return _train(engine, policy, encoder, kind=kind, actor=actor, on_progress=on_progress)


# An incremental update keeps its parent's temperatures and lists no label issues: neither
# cross-validates. Once the training examples have grown by this share of those the last full run
# learned from (and by at least REFRESH_MIN), the task that ran the update queues a full run after
# it: its temperatures fit what the model now learns from, and the newly approved labels get their
# second look — while the update itself stays live within seconds of the approval.
REFRESH_SHARE = 0.1
REFRESH_MIN = 20


def refresh_due(engine: Engine) -> bool:
    """Whether the newest version learned from enough more examples than the last full run to run
    another (both counted as the runs count them)."""
    with session_scope(engine) as session:
        newest = session.exec(select(ModelVersion.trained_on).order_by(ModelVersion.id.desc())).first()
        full = session.exec(
            select(ModelVersion.trained_on)
            .where(ModelVersion.kind == "full")
            .order_by(ModelVersion.id.desc())
        ).first()
    if newest is None:
        return False
    before = int((full or {}).get("examples", 0))
    return int(newest.get("examples", 0)) - before >= max(REFRESH_MIN, REFRESH_SHARE * before)


@dataclass
class _Data:
    """What one training run reads from the database, plain values only."""

    industries: dict[str, str]
    catch_all: str | None
    train: list[dict[str, Any]]
    starter_holdout: list[dict[str, Any]]
    gold: list[dict[str, Any]]
    parent_id: int | None
    parent_artifact: bytes | None
    parent_trained_on: dict[str, Any]

    @property
    def labels(self) -> list[str]:
        return list(self.industries)


def _read(session: Session) -> _Data:
    industries = active_industries(session)
    labels = list(industries)
    parent_id = active_version_id(session)
    parent = session.get(ModelVersion, parent_id) if parent_id is not None else None
    holdout = _examples(session, Split.holdout, labels)
    # No text both trains and judges (two examples of one text, each way: a database from before
    # split_of_text), and a text sent twice to the gold set is judged once.
    judging = {e["content_hash"] for e in holdout}
    gold, judged = [], set()
    for example in holdout:  # (by id: the oldest example of a text is the one kept)
        if example["source"] in USER_SOURCES and example["content_hash"] not in judged:
            judged.add(example["content_hash"])
            gold.append(example)
    return _Data(
        industries=industries,
        catch_all=catch_all_industry(session),
        train=[e for e in _examples(session, Split.train, labels) if e["content_hash"] not in judging],
        starter_holdout=[e for e in holdout if e["source"] == ExampleSource.starter],
        gold=gold,
        parent_id=parent_id,
        parent_artifact=parent.artifact if parent else None,
        parent_trained_on=dict(parent.trained_on) if parent else {},
    )


def _train(
    engine: Engine,
    policy: RoutingPolicy,
    encoder: Encoder,
    *,
    kind: str,
    actor: str | None,
    always_activate: bool = False,
    on_progress: Progress | None = None,
) -> TrainingOutcome:
    started = time.perf_counter()
    progress = on_progress or _no_progress
    progress(0, "reading training examples")
    with session_scope(engine) as session:
        data = _read(session)
    if not data.train:
        raise Invalid("There are no training examples for the active industries.")
    # An older Heron's artifact cannot be read: such a parent is replaced, not compared with.
    readable = data.parent_artifact and HeronModel.format_of(data.parent_artifact) == MODEL_FORMAT
    parent = HeronModel.from_bytes(data.parent_artifact) if readable else None
    if kind == "incremental" and parent is None:
        raise Invalid("There is no active model to update; run a full training first.")
    carving = _carving(data, encoder)
    described = industry_prototypes(encoder, data.industries)
    prototypes = _prototypes(described, carving)
    texts = [e["text"] for e in data.train]
    progress(1, f"embedding and fitting {len(texts)} examples")
    embeddings = encoder.embed(texts)
    static = encoder.static(texts)
    carver = _carver(carving, embeddings, static, data.train)
    labels = _carved_labels(carver, data.train, embeddings, static)
    fingerprint = _fingerprint(data, data.train, labels)
    if kind == "incremental" and fingerprint == data.parent_trained_on.get("fingerprint"):
        raise Invalid("No training examples were added since the active model was trained." + _new_gold(data))
    training_set = TrainingSet(
        texts=texts,
        labels=labels,
        weights=example_weights([e["source"] for e in data.train]),
        groups=[origin_group(e["origin"], f"example:{e['id']}") for e in data.train],
        embeddings=embeddings,
        static=static,
        people=np.array([e["source"] in USER_SOURCES for e in data.train], dtype=bool),
    )
    fit = fit_hybrid(
        training_set,
        prototypes,
        industries=data.labels,
        parent=parent if kind == "incremental" else None,
        calibrate=kind == "full",
        catch_all=data.catch_all,
        descriptions=data.industries,
    )
    settled = fit_settled(
        replace(training_set, labels=[e["label"] for e in data.train]),
        described,
        industries=data.labels,
        learning=newcomers(labels, data.labels),
        parent=parent if kind == "incremental" else None,
        calibrate=kind == "full",
        catch_all=data.catch_all,
        descriptions=data.industries,
    )
    fit.model.settled = settled
    fit.model.carver = carver
    progress(2, f"evaluating on {len(data.starter_holdout)} starter and {len(data.gold)} gold documents")
    sets = _evaluation_sets(data, encoder, carver)
    reports = {
        name: evaluate(fit.model, examples, policy, allowed=data.labels, encoder=encoder)
        for name, examples in sets.items()
    }
    reports[HOLDOUT_DATASET]["cross_validation"] = _cross_validation(fit)
    # What routing serves with this version: the configured threshold, or higher where the people's
    # own documents raise it (Calibration.people).
    reports[HOLDOUT_DATASET]["escalation_threshold"] = round(fit.model.escalation_threshold(policy), 4)
    reports[LABEL_ISSUES_DATASET] = _label_issues(fit, data.train, labels)
    progress(3, "comparing with the active model")
    trained_on = _trained_on(data, labels, fingerprint)
    # The active model as it would serve today's industries: those it never learned, from their
    # descriptions alone.
    as_served = parent.with_prototypes(prototypes) if parent is not None else None
    promotion = (
        {
            "activated": True,
            "reason": "first model" if parent is None else "activated on request",
            "rule": "none",
        }
        if always_activate or parent is None
        else promotion_decision(
            candidate=reports,
            active={
                name: evaluate(as_served, examples, policy, allowed=data.labels, encoder=encoder)
                for name, examples in sets.items()
            },
        )
    )
    # Asked again just before anything is stored: the comparison takes seconds, and a run
    # cancelled meanwhile stored and activated its version.
    progress(3, "storing the version" + (" and activating it" if promotion["activated"] else ""))
    return _register(
        engine,
        fit.model,
        reports,
        promotion,
        parent_id=data.parent_id,
        kind=kind,
        trained_on=trained_on,
        actor=actor,
        started=started,
    )


# The user's own documents (corrections, imported and example files) count this many times as much
# as a starter document: the more a user labels, the larger the share of the fit that is theirs
# (4 per industry: a quarter of the weight; 24 per industry: two thirds). Weights are then scaled to
# average 1, so regularisation stays that of an unweighted fit of the same size.
USER_WEIGHT = 5.0
USER_SOURCES = (ExampleSource.feedback, ExampleSource.import_)


def example_weights(sources: list[str]) -> np.ndarray:
    """Each example's weight in the fit, by where it came from (mean 1)."""
    weights = np.array([USER_WEIGHT if source in USER_SOURCES else 1.0 for source in sources])
    return weights / weights.mean() if len(weights) else weights


@dataclass(frozen=True)
class _Carving:
    """What carving needs, computed once per run: the catch-all, the industries added since the
    starter corpus (newcomers), and the digest and static vectors of the description sentences of
    every industry that has a description (the catch-all or a newcomer without one: its name)."""

    catch_all: str | None
    newcomers: list[str]
    sentences: dict[str, tuple[np.ndarray, np.ndarray]]
    named_only: list[str]  # newcomers without a description: their sentence is their name


def _carving(data: _Data, encoder: Encoder) -> _Carving | None:
    """None when there is nothing to carve (no industry the starter lacks)."""
    starter = {
        e["label"] for e in (*data.train, *data.starter_holdout) if e["source"] == ExampleSource.starter
    }
    newcomers = [label for label in data.labels if label not in starter and label != data.catch_all]
    if not newcomers:
        return None
    sentences, named_only = {}, []
    for label in data.labels:
        texts = description_sentences(data.industries[label])
        # An import describes an industry by its name: that is no description either.
        if len(texts) == 1 and texts[0].lower() == readable_name(label).lower():
            texts = []
        if not texts and (label in newcomers or label == data.catch_all):
            texts = [readable_name(label)]
            named_only.append(label)
        if texts:
            sentences[label] = (encoder.embed(texts), encoder.static(texts))
    return _Carving(catch_all=data.catch_all, newcomers=newcomers, sentences=sentences, named_only=named_only)


def _prototypes(described: dict[str, np.ndarray], carving: _Carving | None) -> dict[str, np.ndarray]:
    """Description prototypes per industry; the catch-all's without its sentences about newcomers
    ("A sports match report …" once "sports" exists), so it does not absorb what they now claim."""
    if carving is None or carving.catch_all not in carving.sentences:
        return described
    prototypes = dict(described)
    own = carving.sentences[carving.catch_all][0]
    keep = np.ones(len(own), dtype=bool)
    for newcomer in carving.newcomers:
        keep &= sentences_not_about(own, carving.sentences[newcomer][0])
    prototypes[carving.catch_all] = own[keep] if keep.any() else own
    return prototypes


def _carver(
    carving: _Carving | None, embeddings: np.ndarray, static: np.ndarray, examples: list[dict[str, Any]]
) -> Carver | None:
    """Carving's rule, its similarities measured against this run's training examples (the
    newcomers' own from people among them)."""
    if carving is None:
        return None
    own = {}
    for newcomer in carving.newcomers:
        rows = [i for i, e in enumerate(examples) if e["label"] == newcomer and e["source"] in USER_SOURCES]
        if rows:
            own[newcomer] = (embeddings[rows], static[rows])
    return Carver.measured(
        carving.sentences,
        (embeddings, static),
        catch_all=carving.catch_all,
        newcomers=carving.newcomers,
        named_only=carving.named_only,
        examples=own,
    )


def _carved_labels(
    carver: Carver | None, examples: list[dict[str, Any]], embeddings: np.ndarray, static: np.ndarray
) -> list[str]:
    """Labels with the starter's catch-all examples of newly added industries moved to them."""
    labels = [e["label"] for e in examples]
    carvable = [e["source"] == ExampleSource.starter for e in examples]
    if carver is None or not any(carvable):
        return labels
    return carve_out(labels, carvable, (embeddings, static), carver)


def _evaluation_sets(data: _Data, encoder: Encoder, carver: Carver | None) -> dict[str, list[dict[str, Any]]]:
    """The starter holdout and the gold set.

    The starter holdout guards what the starter corpus taught: its documents that a new industry
    would take from the catch-all or from a parent (carved like the training ones, or as a version
    serves them) are left out of it, since they no longer belong where the starter filed them and
    were never labelled as the newcomer by anyone. Kept, they counted against every candidate that
    knows the newcomer and never against the active model.
    """
    sets: dict[str, list[dict[str, Any]]] = {HOLDOUT_DATASET: data.starter_holdout, GOLD_DATASET: data.gold}
    if data.starter_holdout and carver is not None:
        texts = [e["text"] for e in data.starter_holdout]
        # takes covers the catch-all too: what it takes from there is what training carves
        taken = carver.takes(
            (encoder.embed(texts), encoder.static(texts)), [e["label"] for e in data.starter_holdout]
        )
        sets[HOLDOUT_DATASET] = [
            e for e, newcomer in zip(data.starter_holdout, taken, strict=True) if newcomer is None
        ]
    return sets


def _new_gold(data: _Data) -> str:
    """Why an approval trained nothing, when it is because its documents joined the gold set: the
    newest example is a gold one."""
    newest = max([*data.train, *data.gold], key=lambda e: e["id"], default=None)
    if newest is None or not any(e is newest for e in data.gold):
        return ""
    what = "imported file" if newest["source"] == ExampleSource.import_ else "approved document"
    return (
        f" The newest {what} went to the gold set: a fixed share of the people's documents "
        "judges every model and is never trained on."
    )


def _fingerprint(data: _Data, examples: list[dict[str, Any]], labels: list[str]) -> str:
    """Names what a fit learns from: the industries (with descriptions) and every example's label."""
    payload = json.dumps(
        {
            "industries": data.industries,
            "catch_all": data.catch_all,
            "examples": [[e["id"], label] for e, label in zip(examples, labels, strict=True)],
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _trained_on(data: _Data, labels: list[str], fingerprint: str) -> dict[str, Any]:
    """What the version learned from, and what it learned that its parent had not (the approvals,
    imports or industries that triggered it), for its report."""
    ids = [e["id"] for e in data.train]
    parent_ids = set(expand_ranges(data.parent_trained_on.get("example_ids", [])))
    # The label each example trained under in the parent (versions from before this was kept
    # have none): an example relabelled, or carved into a new industry, is learned anew.
    parent_label = {
        example_id: label
        for label, runs in data.parent_trained_on.get("label_ids", {}).items()
        for example_id in expand_ranges(runs)
    }
    pairs = list(zip(data.train, labels, strict=True))
    new = [(e, label) for e, label in pairs if e["id"] not in parent_ids]
    relabelled = [(e, label) for e, label in pairs if parent_label.get(e["id"], label) != label]
    by_label: dict[str, list[int]] = {}
    for e, label in pairs:
        by_label.setdefault(label, []).append(e["id"])
    parent_industries = set(data.parent_trained_on.get("industries", []))
    return {
        "examples": len(ids),
        "by_label": dict(Counter(labels)),
        "by_source": dict(Counter(str(e["source"]) for e in data.train)),
        "max_example_id": max(ids),
        "example_ids": id_ranges(ids),
        "label_ids": {label: id_ranges(members) for label, members in sorted(by_label.items())},
        "fingerprint": fingerprint,
        "industries": data.labels,
        "carved": sum(e["label"] != label for e, label in pairs),
        "new_examples": len(new),
        "relabelled_examples": len(relabelled),
        "new_industries": [label for label in data.labels if label not in parent_industries],
        "learned": [
            {
                "example_id": e["id"],
                "label": label,
                "source": str(e["source"]),
                "feedback_id": e["feedback_id"],
                "origin": e["origin"],
            }
            for e, label in (new + relabelled)[:LEARNED_LISTED]
        ],
    }


LEARNED_LISTED = 50


def id_ranges(ids: list[int]) -> list[list[int]]:
    """Sorted ids as ``[first, last]`` runs: a few numbers for thousands of mostly consecutive ids."""
    runs: list[list[int]] = []
    for value in sorted(ids):
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return runs


def expand_ranges(runs: list[list[int]]) -> list[int]:
    return [value for first, last in runs for value in range(first, last + 1)]


def _register(
    engine: Engine,
    model: HeronModel,
    reports: dict[str, dict[str, Any]],
    promotion: dict[str, Any],
    *,
    parent_id: int | None,
    kind: str,
    trained_on: dict[str, Any],
    actor: str | None,
    started: float,
) -> TrainingOutcome:
    """Store the trained model as a version with its reports, and promote it if the rule allows."""
    headline = _headline(reports[HOLDOUT_DATASET])
    if reports[GOLD_DATASET].get("n"):
        headline["gold_macro_f1"] = reports[GOLD_DATASET]["macro_f1"]
        headline["gold_n"] = reports[GOLD_DATASET]["n"]
    with session_scope(engine) as session:
        one_at_a_time(session, ACTIVATION_TURN)  # a rollback at this moment is seen, not undone
        active = active_version_id(session)
        if promotion["activated"] and promotion["rule"] != "none" and active != parent_id:
            # Someone activated another version while this one trained (a rollback, most likely):
            # it was judged against the version it started from, and it does not undo their choice.
            promotion = {
                **promotion,
                "activated": False,
                "reason": f"not promoted: v{active} was made active while it trained from v{parent_id} "
                f"(it was judged against v{parent_id}: {promotion['reason']})",
            }
        reports[HOLDOUT_DATASET]["promotion"] = promotion
        reports[HOLDOUT_DATASET]["learned"] = trained_on["learned"]
        # Listed with the version (GET /api/models, the Models page): whether and why it was promoted.
        listed = {**headline, "promotion": {key: promotion[key] for key in ("activated", "rule", "reason")}}
        version = store_version(
            session, model, parent_id=parent_id, kind=kind, metrics=listed, trained_on=trained_on
        )
        for name, report in reports.items():
            if name == HOLDOUT_DATASET or report.get("n"):
                session.add(EvaluationReport(model_version_id=version.id, dataset=name, report=report))
        activated = bool(promotion["activated"])
        if activated:
            activate(session, version.id, actor=actor)
        audit.record(
            session,
            action="model.trained",
            subject_type="model",
            subject_id=version.id,
            actor=actor,
            activated=activated,
            reason=promotion["reason"],
            macro_f1=headline.get("macro_f1"),
            kind=kind,
            new_examples=trained_on["new_examples"],
        )
        version_id = version.id
    return TrainingOutcome(
        version_id=version_id,
        activated=activated,
        metrics=headline,
        reason=promotion["reason"],
        seconds=time.perf_counter() - started,
        new_examples=trained_on["new_examples"],
    )


# The promotion rule. The user's gold documents (a fixed share of approved corrections and imported
# files, never trained on) judge every candidate: it is refused if it gets more of them wrong than the
# active model does, beyond a tolerance of GOLD_TOLERANCE of them (at least one document, so a single
# coin-flip document cannot block learning). The starter holdout (our own LLM-written documents) only
# guards against collapse: a candidate may not lose more than STARTER_COLLAPSE points of macro-F1 on
# it — or, while there are fewer than GOLD_DECIDES_AT gold documents to judge by, STARTER_MARGIN.
GOLD_DECIDES_AT = 20
GOLD_TOLERANCE = 0.02
STARTER_MARGIN = 0.02
STARTER_COLLAPSE = 0.05


def promotion_decision(
    *, candidate: dict[str, dict[str, Any]], active: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Whether the candidate replaces the active model, with every number the decision used.

    Both reports were computed on the same documents just now, with today's industries.
    """
    gold_c, gold_a = candidate.get(GOLD_DATASET, {}), active.get(GOLD_DATASET, {})
    starter_c, starter_a = candidate.get(HOLDOUT_DATASET, {}), active.get(HOLDOUT_DATASET, {})
    gold_n = int(gold_c.get("n", 0))
    gold_decides = gold_n >= GOLD_DECIDES_AT
    starter_margin = STARTER_COLLAPSE if gold_decides else STARTER_MARGIN
    decision: dict[str, Any] = {
        "rule": "gold decides, starter holdout guards against collapse"
        if gold_decides
        else f"starter holdout and gold (fewer than {GOLD_DECIDES_AT} gold documents)",
        "gold_n": gold_n,
        "starter_n": int(starter_c.get("n", 0)),
    }
    reasons_against = []
    reasons_for = []
    if gold_n:
        wrong_c = round(gold_n * (1 - gold_c["accuracy"]))
        wrong_a = round(gold_n * (1 - gold_a["accuracy"]))
        tolerance = max(1, int(GOLD_TOLERANCE * gold_n))
        decision.update(
            gold_wrong_candidate=wrong_c,
            gold_wrong_active=wrong_a,
            gold_tolerance=tolerance,
            gold_macro_f1_candidate=gold_c["macro_f1"],
            gold_macro_f1_active=gold_a["macro_f1"],
        )
        text = f"gold: {wrong_c} of {gold_n} wrong vs active {wrong_a}"
        (reasons_against if wrong_c - wrong_a > tolerance else reasons_for).append(text)
    if decision["starter_n"] and len(starter_c.get("per_class", {})) >= 2:
        f1_c, f1_a = starter_c["macro_f1"], starter_a["macro_f1"]
        decision.update(
            starter_macro_f1_candidate=f1_c, starter_macro_f1_active=f1_a, starter_margin=starter_margin
        )
        text = f"starter holdout macro-F1 {f1_c:.3f} vs active {f1_a:.3f}"
        if f1_c + starter_margin < f1_a:
            reasons_against.append(f"{text} (worse than active by more than {starter_margin:.2f})")
        else:
            reasons_for.append(text)
    decision["activated"] = not reasons_against
    decision["reason"] = "; ".join(reasons_against or reasons_for or ["nothing to judge by"])
    return decision


def evaluate(
    model: HeronModel,
    examples: list[dict[str, Any]],
    policy: RoutingPolicy,
    *,
    allowed: list[str],
    encoder: Encoder,
) -> dict[str, Any]:
    """Classify ``examples`` exactly as production would and report how it went."""
    if not examples:
        return {"n": 0}
    started = time.perf_counter()
    verdicts = model.classify([e["text"] for e in examples], policy, allowed=allowed, encoder=encoder)
    report = evaluation_report(
        [e["label"] for e in examples],
        [v.label for v in verdicts],
        [v.confidence for v in verdicts],
        labels=allowed,
        escalated=[v.escalated for v in verdicts],
        needs_review=[v.needs_review for v in verdicts],
    )
    report["docs_per_second"] = len(examples) / max(time.perf_counter() - started, 1e-9)
    return report


def _headline(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("n", "accuracy", "macro_f1", "ece", "escalation_rate", "escalation_threshold", "review_rate")
    return {key: report[key] for key in keys if key in report}


def _cross_validation(fit) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Out-of-fold quality of each tier on the training data (folds hold out whole groups: genres,
    sources), and the routing curve derived from it."""
    from sklearn.metrics import f1_score  # see core.evaluation: not at import time

    if not fit.oof_fast.any():
        return {}
    calibration = fit.model.calibration
    fast = softmax(fit.oof_fast / calibration.alone)
    combined = _out_of_fold_combined(fit)
    return {
        "fast_macro_f1": float(f1_score(fit.targets, fast.argmax(axis=1), average="macro")),
        "transformer_macro_f1": float(
            f1_score(fit.targets, fit.oof_semantic.argmax(axis=1), average="macro")
        ),
        "combined_macro_f1": float(f1_score(fit.targets, combined.argmax(axis=1), average="macro")),
        "fast_temperature": calibration.fast,
        "fast_alone_temperature": calibration.alone,
        "transformer_temperature": calibration.semantic,
        "combined_temperature": calibration.combined,
        "routing": routing_curve(fast, combined, fit.targets),
    }


def _out_of_fold_combined(fit) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Out-of-fold probabilities of both tiers combined, calibrated as the model combines them."""
    calibration = fit.model.calibration
    return softmax(
        (fit.oof_fast / calibration.fast + fit.oof_semantic / calibration.semantic) / calibration.combined
    )


def _label_issues(fit, examples: list[dict[str, Any]], fitted: list[str]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The people's examples that the model, cross-validated, confidently places elsewhere.

    Out-of-fold probabilities are those of the combined tiers (both read every example); an example
    the catch-all was carved into a newcomer for is left out (its stored label is not what was fitted).
    """
    if not fit.oof_fast.any():
        return {"n": 0, "issues": []}
    checked = {
        i
        for i, example in enumerate(examples)
        if example["source"] in CHECKED_SOURCES and fitted[i] == example["label"]
    }
    # Only rows whose label their fold's model knew (FitResult.judged) say anything about it.
    rows = np.flatnonzero(fit.judged)
    checked &= set(rows.tolist())
    found = find_label_issues(_out_of_fold_combined(fit)[rows], fit.targets[rows])
    issues = [
        {
            "example_id": examples[index]["id"],
            "label": examples[index]["label"],
            "suggested": fit.learned[issue.suggested],
            "self_confidence": round(issue.self_confidence, 4),
            "suggested_confidence": round(issue.suggested_confidence, 4),
        }
        for issue in found
        if (index := int(rows[issue.index])) in checked
    ][:MAX_LABEL_ISSUES]
    return {"n": len(checked), "issues": issues}


def _examples(session: Session, split: Split, labels: list[str]) -> list[dict[str, Any]]:
    rows = session.exec(
        select(
            TrainingExample.id,
            TrainingExample.text,
            TrainingExample.label,
            TrainingExample.source,
            TrainingExample.origin,
            TrainingExample.feedback_id,
            TrainingExample.content_hash,
        )
        .where(
            TrainingExample.split == split,
            TrainingExample.label.in_(labels),
            TrainingExample.status == ExampleStatus.approved,
        )
        .order_by(TrainingExample.id)
    )
    return [
        {
            "id": i,
            "text": text,
            "label": label,
            "source": source,
            "origin": origin,
            "feedback_id": feedback_id,
            "content_hash": digest,
        }
        for i, text, label, source, origin, feedback_id, digest in rows
    ]


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
        one_at_a_time(session, "training requests")  # two at once each found none waiting
        waiting = tasks.find_waiting(session, kind="training", params={"mode": "full"})
        if waiting is None and mode == "incremental":
            waiting = tasks.find_waiting(session, kind="training", params={"mode": "incremental"})
        if waiting is not None:
            # Record when it was last asked for (a run started after that covers it: _covered_by),
            # and only while it still waits: one a worker took meanwhile may have read the examples
            # before this request's, so the request then gets a task of its own.
            params = {**waiting.params, "requested_at": utcnow().isoformat()}
            joined = session.execute(
                update(Task)
                .where(Task.id == waiting.id, Task.status == TaskStatus.PENDING)
                .values(params=params)
            ).rowcount
            if joined:
                session.refresh(waiting)
                return tasks.task_view(waiting), True
        task = tasks.create_task(session, kind="training", params={"mode": mode}, total=4, requested_by=actor)
        return tasks.task_view(task), False


class _Cancelled(Exception):
    """Someone asked to cancel the training run under way."""


def _covered_by(engine: Engine, task: Task) -> str | None:
    """A training run that succeeded having started after ``task`` was last requested, of its mode
    or a full one: it read every example the requests were for, so running the request again would only
    repeat it. (Requests made while a run is under way queue one follow-up between them, but one
    made while that follow-up was briefly taken and put back — the training lease was busy —
    queued another, and each ran in full.)"""
    modes = {"full"} if task.params.get("mode", "full") == "full" else {"full", "incremental"}
    since = task.created_at  # or, when requests joined it since, the last of them
    if requested := task.params.get("requested_at"):
        joined = datetime.fromisoformat(requested)
        since = max(since, joined.replace(tzinfo=None) if since.tzinfo is None else joined)
    with session_scope(engine) as session:
        runs = session.exec(
            select(Task).where(
                Task.kind == "training",
                Task.status == TaskStatus.SUCCEEDED,
                Task.id != task.id,
                # A second's grace for clocks of different machines (the request's and the run's)
                Task.started_at >= since + timedelta(seconds=1),
            )
        ).all()
    # A run that was itself covered read nothing: it cannot vouch for what was asked after it.
    read = [run for run in runs if run.params.get("mode", "full") in modes and "covered_by" not in run.result]
    return next((run.id for run in read), None)


def run_training_task(
    *, engine: Engine, task_id: str, policy: RoutingPolicy, encoder: Encoder, work: WorkSender | None = None
) -> str:
    """Run a queued training task to its end; returns what happened (for the log). After an
    incremental update, queues a full run through ``work`` when one is due (:func:`refresh_due`).

    Raises:
        Conflict: another run holds the training lease; the task is PENDING again, to be retried.
    """
    task = tasks.start(engine, task_id)
    if task is None:
        return "not pending (already run, running elsewhere or cancelled)"
    mode = task.params.get("mode", "full")
    if (covering := _covered_by(engine, task)) is not None:
        message = f"training run {covering} started after this request and learned what it asked for"
        tasks.finish(
            engine, task_id, TaskStatus.SUCCEEDED, result={"skipped": message, "covered_by": covering}
        )
        return f"skipped: {message}"
    train = train_incremental if mode == "incremental" else train_full

    def report(done: int, stage: str) -> None:
        if not tasks.progress(engine, task_id, done=done, stage=stage):
            raise _Cancelled  # checked at each stage: a cancelled run stores and activates nothing

    try:
        outcome = train(
            engine=engine, policy=policy, encoder=encoder, actor=task.requested_by, on_progress=report
        )
    except _Cancelled:
        tasks.finish(
            engine, task_id, TaskStatus.CANCELLED, result={"cancelled": "before it stored a version"}
        )
        return "cancelled"
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
        "new_examples": outcome.new_examples,
    }
    if mode == "incremental" and work is not None and refresh_due(engine):
        refresh, joined = request_training(engine=engine, mode="full", actor=task.requested_by)
        tasks.send(engine, work, refresh, joined=joined)
        result["full_run_task_id"] = refresh.id
    tasks.finish(engine, task_id, TaskStatus.SUCCEEDED, result=result)
    return f"model {outcome.version_id} (activated={outcome.activated}: {outcome.reason})"
