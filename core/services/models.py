"""The model registry: store versions, find the active one, serve it to every process."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, event, func, update
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from core.classify.model import MODEL_FORMAT, Encoder, HeronModel
from core.classify.training import prototype_sentences
from core.db import one_at_a_time, session_scope
from core.db.tables import (
    EvaluationReport,
    ExampleSource,
    ExampleStatus,
    ModelStatus,
    ModelVersion,
    Split,
    TrainingExample,
    utcnow,
)
from core.errors import Conflict, Invalid, ModelNotReady, NotFound
from core.services import audit
from core.services.industries import active_industry_names, renamed_industries, served_names


def active_version_id(session: Session) -> int | None:
    return session.exec(select(ModelVersion.id).where(ModelVersion.status == ModelStatus.active)).first()


def store_version(
    session: Session,
    model: HeronModel,
    *,
    parent_id: int | None,
    kind: str,
    metrics: dict[str, Any],
    trained_on: dict[str, Any],
) -> ModelVersion:
    artifact = model.to_bytes()
    version = ModelVersion(
        parent_id=parent_id,
        status=ModelStatus.candidate,
        kind=kind,
        artifact=artifact,
        artifact_sha256=hashlib.sha256(artifact).hexdigest(),
        labels=model.labels,
        metrics=metrics,
        trained_on=trained_on,
    )
    session.add(version)
    session.flush()
    return version


# Whatever decides which version is active takes this turn first (``one_at_a_time``), so that two
# activations at once leave exactly one active version, the later one: they had left several, or none.
ACTIVATION_TURN = "model activation"


def activate(session: Session, version_id: int, *, actor: str | None = None) -> ModelVersion:
    """Make ``version_id`` the one active version (also how a rollback is done). The caller's
    transaction has taken ``ACTIVATION_TURN`` before reading what it decides on."""
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFound(f"Model version {version_id} does not exist.")
    if (found := HeronModel.format_of(version.artifact)) != MODEL_FORMAT:
        raise Invalid(
            f"Model version {version_id} was trained by an older Heron (format {found!r}) and cannot be "
            "served; retrain instead."
        )
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.status == ModelStatus.active, ModelVersion.id != version_id)
        .values(status=ModelStatus.retired)
        .execution_options(synchronize_session="fetch")
    )
    version.status = ModelStatus.active
    version.activated_at = utcnow()
    session.add(version)
    audit.record(session, action="model.activated", subject_type="model", subject_id=version_id, actor=actor)
    # This process's model caches look again as soon as the change is committed (other processes
    # within their refresh interval).
    event.listen(session, "after_commit", _activated_here, once=True)
    return version


_activations = 0  # activations committed by this process; ModelCache compares it with what it saw


def _activated_here(_: Session) -> None:
    global _activations
    _activations += 1


def industry_prototypes(encoder: Encoder, descriptions: dict[str, str]) -> dict:
    """Prototype embeddings per industry, one per sentence of its description."""
    prototypes = {}
    for name, description in descriptions.items():
        sentences = prototype_sentences(description) or [name.replace("_", " ")]
        prototypes[name] = encoder.embed(sentences)
    return prototypes


class ModelCache:
    """The active model for this process, re-checked against the database every few seconds, and
    at once after this process itself activated a version (the embedded default trains in-process).

    Every process (API, console, workers on other machines) asks the database which version is
    active, so a promotion or rollback reaches all of them within ``refresh_seconds`` without a
    restart; the artifact is loaded only when the active id changes. What is served is exactly the
    active version: an industry added since it was trained is predicted once the training run its
    creation queued has produced a version that knows it (seconds), never by a guess that depends on
    when this cache last looked.
    """

    def __init__(self, encoder: Encoder, refresh_seconds: float = 2.0) -> None:
        self.encoder = encoder
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._served: tuple[int, HeronModel] | None = None
        self._checked_at = 0.0
        self._seen_activations = -1

    def active(self, engine: Engine) -> tuple[int, HeronModel]:
        with self._lock:
            fresh = time.monotonic() - self._checked_at < self.refresh_seconds
            if self._served and fresh and self._seen_activations == _activations:
                return self._served
            self._seen_activations = _activations
            with session_scope(engine) as session:
                version_id = active_version_id(session)
                if version_id is None:
                    raise ModelNotReady(
                        "No model is active yet; run `heron train` to train the starter model."
                    )
                if not self._served or self._served[0] != version_id:
                    artifact = session.get(ModelVersion, version_id).artifact
                    self._served = (version_id, HeronModel.from_bytes(artifact))
            self._checked_at = time.monotonic()
            return self._served


@dataclass(frozen=True)
class VersionView:
    """A model version without its artifact: status, lineage, headline metrics, what it learned from."""

    id: int
    status: str
    kind: str
    parent_id: int | None
    created_at: datetime
    activated_at: datetime | None
    labels: list[str]
    metrics: dict[str, Any]
    trained_on: dict[str, Any]
    # Whether training promoted it, by which rule, and why ({activated, rule, reason}); None for a
    # version trained before this was recorded (its report still says, under starter_holdout).
    promotion: dict[str, Any] | None = None


@dataclass(frozen=True)
class VersionReport:
    """A version's metrics and every evaluation report stored for it, by dataset."""

    id: int
    status: str
    metrics: dict[str, Any]
    trained_on: dict[str, Any]
    reports: dict[str, dict[str, Any]]
    promotion: dict[str, Any] | None = None  # as VersionView's


def _version_view(version: ModelVersion) -> VersionView:
    metrics = dict(version.metrics or {})
    promotion = metrics.pop("promotion", None)
    return VersionView(
        id=version.id,
        status=version.status,
        kind=version.kind,
        parent_id=version.parent_id,
        created_at=version.created_at,
        activated_at=version.activated_at,
        labels=list(version.labels or []),
        metrics=metrics,
        trained_on=version.trained_on or {},
        promotion=promotion,
    )


def list_versions(*, engine: Engine) -> list[VersionView]:
    """Every model version, newest first, without its artifact (megabytes each, never read here)."""
    with session_scope(engine) as session:
        query = select(ModelVersion).options(defer(ModelVersion.artifact)).order_by(ModelVersion.id.desc())
        return [_version_view(version) for version in session.exec(query)]


@dataclass(frozen=True)
class Activated:
    """A version just made active, and the active industries it never learned (it cannot answer
    them until a training run learns them)."""

    version: VersionView
    not_predicted: list[str]
    # The approved examples (corrections, files, synthetic documents) stored since it was trained,
    # about: it never learned them, and the next training run (an approval, an industry change)
    # learns every approved example again. (A relabelled example keeps its date: not counted.)
    newer_examples: int = 0


def activate_version(*, engine: Engine, version_id: int, actor: str | None = None) -> Activated:
    """Promote a version or roll back to it; every process serves it within seconds.

    Raises:
        NotFound: no such version. Invalid: it was trained by an older Heron, or cannot be read, and
        cannot be served. Conflict: it knows none of the active industries.
    """
    with session_scope(engine) as session:
        one_at_a_time(session, ACTIVATION_TURN)
        active = active_industry_names(session)
        version = session.get(ModelVersion, version_id)
        renamed = renamed_industries(session)
        if version is not None and HeronModel.format_of(version.artifact) == MODEL_FORMAT:
            _check_servable(version, active, renamed)
        view = _version_view(activate(session, version_id, actor=actor))
        return Activated(view, _unlearned(active, view.labels, renamed), _newer_examples(session, view))


def newer_examples(*, engine: Engine, version_id: int) -> int:
    """How many of the people's approved training examples were stored after a version was trained
    (asked before it is activated; :func:`activate_version` says the same after)."""
    with session_scope(engine) as session:
        version = session.get(ModelVersion, version_id)
        return _newer_examples(session, _version_view(version)) if version is not None else 0


def _newer_examples(session: Session, version: VersionView) -> int:
    return session.exec(
        select(func.count())
        .select_from(TrainingExample)
        .where(
            TrainingExample.created_at > version.created_at,
            TrainingExample.source != ExampleSource.starter,
            TrainingExample.split == Split.train,
            TrainingExample.status == ExampleStatus.approved,
        )
    ).one()


def not_predicted(*, engine: Engine, labels: Sequence[str]) -> list[str]:
    """The active industries a version that learned ``labels`` cannot answer (asked before it is
    activated; :func:`activate_version` says the same after)."""
    with session_scope(engine) as session:
        return _unlearned(active_industry_names(session), labels, renamed_industries(session))


def _unlearned(active: Sequence[str], labels: Sequence[str], renamed: dict[str, str]) -> list[str]:
    """The active industries a version with ``labels`` cannot answer (one renamed since it was
    trained it answers under its new name)."""
    learned = set(served_names(labels, active, renamed).values())
    return [name for name in active if name not in learned]


def _check_servable(version: ModelVersion, active: list[str], renamed: dict[str, str]) -> None:
    """Refuse a rollback to a version that would fail every document: one this Heron cannot read,
    or one that knows none of today's active industries (all retired by an import since)."""
    try:
        model = HeronModel.from_bytes(version.artifact)
    except Exception as error:  # a damaged or foreign artifact: any failure to read it
        raise Invalid(
            f"Model version {version.id} cannot be read by this Heron ({type(error).__name__}: {error}); "
            "retrain instead."
        ) from error
    if not served_names(model.labels, active, renamed):
        raise Conflict(
            f"Model version {version.id} knows none of the active industries ({', '.join(sorted(active))}): "
            "served, it would fail every document. Activate a version trained since, or bring its "
            f"industries back ({', '.join(model.labels)}) and retrain."
        )


def version_report(*, engine: Engine, version_id: int) -> VersionReport:
    """A version's metrics and every evaluation report stored for it.

    Raises:
        NotFound: no such version.
    """
    with session_scope(engine) as session:
        return _report(session, version_id)


def served_escalation_threshold(*, engine: Engine, version_id: int | None, default: float) -> float:
    """The escalation threshold version ``version_id`` routed with, as recorded when it was trained
    (``metrics.escalation_threshold``), or ``default`` for a version from before it was recorded."""
    if version_id is None:
        return default
    with session_scope(engine) as session:
        version = session.get(ModelVersion, version_id)
        metrics = dict(version.metrics or {}) if version is not None else {}
    return float(metrics.get("escalation_threshold", default))


def active_report(*, engine: Engine) -> VersionReport | None:
    """The active version's report, or None while no version is active."""
    with session_scope(engine) as session:
        version_id = active_version_id(session)
        return _report(session, version_id) if version_id is not None else None


def _report(session: Session, version_id: int) -> VersionReport:
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFound(f"Model version {version_id} does not exist.")
    reports = session.exec(
        select(EvaluationReport).where(EvaluationReport.model_version_id == version_id)
    ).all()
    view = _version_view(version)
    return VersionReport(
        id=version.id,
        status=version.status,
        metrics=view.metrics,
        trained_on=view.trained_on,
        reports={report.dataset: report.report for report in reports},
        promotion=view.promotion,
    )


def readiness(engine: Engine) -> dict[str, str]:
    """Whether the database answers and a model is active (for /ready)."""
    from sqlalchemy import text

    checks: dict[str, str] = {}
    try:
        with session_scope(engine) as session:
            session.execute(text("SELECT 1"))
            version_id = active_version_id(session)
        checks["database"] = "ok"
        checks["model"] = f"version {version_id}" if version_id else "no active model"
    except Exception as error:  # any driver error means "not ready", reported, never raised
        checks["database"] = f"unreachable: {type(error).__name__}"
        checks["model"] = "unknown"
    return checks
