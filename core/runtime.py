"""The composition root of the domain: one engine, blob store and model cache per process."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from core.blobs import BlobStore
from core.classify.model import RoutingPolicy
from core.db import make_engine, migrate
from core.services.models import ModelCache
from core.services.training import ensure_starter_model
from core.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What every entry point (API, console, worker, CLI) needs to call the use cases."""

    settings: Settings
    engine: Engine
    blobs: BlobStore
    models: ModelCache

    @property
    def policy(self) -> RoutingPolicy:
        return RoutingPolicy(
            review_threshold=self.settings.review_threshold,
            review_margin=self.settings.review_margin,
        )

    def close(self) -> None:
        self.engine.dispose()


def open_runtime(settings: Settings, *, prepare: bool = True) -> Runtime:
    """Connect to the database and blob store; with ``prepare``, migrate and make sure a model is active."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(
        settings=settings,
        engine=make_engine(settings.effective_database_url),
        blobs=BlobStore(settings.blob_dir),
        models=ModelCache(),
    )
    if prepare:
        migrate(runtime.engine)
        ensure_starter_model(engine=runtime.engine, starter_dir=settings.starter_dir, policy=runtime.policy)
    return runtime
