"""The model registry: store versions, find the active one, serve it to every process."""

from __future__ import annotations

import hashlib
import threading
import time

from sqlalchemy import Engine
from sqlmodel import Session, select

from core.classify.model import HeronModel
from core.db import session_scope
from core.db.tables import ModelStatus, ModelVersion, utcnow
from core.errors import ModelNotReady, NotFound
from core.services import audit


def active_version_id(session: Session) -> int | None:
    return session.exec(select(ModelVersion.id).where(ModelVersion.status == ModelStatus.active)).first()


def store_version(
    session: Session,
    model: HeronModel,
    *,
    parent_id: int | None,
    kind: str,
    metrics: dict,
    trained_on: dict,
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


def activate(session: Session, version_id: int, *, actor: str | None = None) -> ModelVersion:
    """Make ``version_id`` the one active version (also how a rollback is done)."""
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFound(f"Model version {version_id} does not exist.")
    for current in session.exec(select(ModelVersion).where(ModelVersion.status == ModelStatus.active)):
        if current.id != version_id:
            current.status = ModelStatus.retired
            session.add(current)
    version.status = ModelStatus.active
    version.activated_at = utcnow()
    session.add(version)
    audit.record(session, action="model.activated", subject_type="model", subject_id=version_id, actor=actor)
    return version


class ModelCache:
    """The active model for this process, re-checked against the database every few seconds.

    Every process (API, console, workers on other machines) asks the database which version is
    active, so a promotion or rollback reaches all of them within ``refresh_seconds`` without a
    restart; the artifact itself is loaded only when the active id changes.
    """

    def __init__(self, refresh_seconds: float = 2.0) -> None:
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._loaded: tuple[int, HeronModel] | None = None
        self._checked_at = 0.0

    def active(self, engine: Engine) -> tuple[int, HeronModel]:
        with self._lock:
            if self._loaded and time.monotonic() - self._checked_at < self.refresh_seconds:
                return self._loaded
            with session_scope(engine) as session:
                version_id = active_version_id(session)
                if version_id is None:
                    raise ModelNotReady(
                        "No model is active yet; run `heron train` to train the starter model."
                    )
                if not self._loaded or self._loaded[0] != version_id:
                    artifact = session.get(ModelVersion, version_id).artifact
                    self._loaded = (version_id, HeronModel.from_bytes(artifact))
            self._checked_at = time.monotonic()
            return self._loaded

    def forget(self) -> None:
        with self._lock:
            self._loaded = None
