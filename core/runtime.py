"""The composition root of the domain: one engine, blob store and model cache per process."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from core.blobs import BlobStore
from core.classify.encoder import TextEncoder
from core.classify.model import RoutingPolicy
from core.db import current_revision, head_revision, make_engine, migrate
from core.embeddings import CachedEncoder
from core.errors import ConfigurationError
from core.events import JOB_EVENTS
from core.extract import ExtractionLimits, ocr
from core.extract.isolation import Extractor, IsolationLimits
from core.services.backfill import needs_backfill
from core.services.models import ModelCache
from core.services.training import active_model_is_current, ensure_starter_model
from core.settings import Settings
from core.work import NoQueue, WorkSender

log = logging.getLogger(__name__)
_extractor_lock = threading.Lock()


@dataclass
class Runtime:
    """What every entry point (API, console, worker, CLI) needs to call the use cases."""

    settings: Settings
    engine: Engine
    blobs: BlobStore
    encoder: TextEncoder
    training_encoder: CachedEncoder
    models: ModelCache
    # Where use cases send follow-up work; workers.dispatch.start connects it to the queue.
    work: WorkSender = field(default_factory=NoQueue)
    _extractor: Extractor | None = None

    @property
    def policy(self) -> RoutingPolicy:
        return RoutingPolicy(
            escalation_threshold=self.settings.escalation_threshold,
            escalation_share=self.settings.escalation_share,
            review_threshold=self.settings.review_threshold,
            review_margin=self.settings.review_margin,
        )

    @property
    def extraction_limits(self) -> ExtractionLimits:
        """The ``HERON_*`` extraction limits as the value core.extract takes (built only here)."""
        settings = self.settings
        return ExtractionLimits(
            max_pages=settings.max_pages,
            max_ocr_pages=settings.max_ocr_pages,
            max_chars=settings.max_text_chars,
            max_seconds=float(settings.extraction_timeout_seconds),
            max_image_pixels=settings.max_image_pixels,
            ocr_processes=settings.ocr_processes,
            ocr_language=settings.ocr_language,
            zip_max_members=settings.zip_max_members,
            zip_max_total_bytes=settings.zip_max_total_mb * 1024 * 1024,
            zip_max_ratio=settings.zip_max_ratio,
            max_depth=settings.max_nesting_depth,
        )

    @property
    def extractor(self) -> Extractor:
        """The extraction processes (fast and slow lane), started on first use."""
        with _extractor_lock:
            if self._extractor is None:
                self._extractor = self._start_extractor()
        return self._extractor

    def _start_extractor(self) -> Extractor:
        settings = self.settings
        return Extractor(
            IsolationLimits(
                fast_processes=settings.worker_threads + 1,
                slow_processes=settings.slow_lane_processes,
                max_memory_mb=settings.extraction_max_memory_mb,
                fast_seconds=min(settings.extraction_fast_seconds, settings.extraction_timeout_seconds),
            )
        )

    def close(self) -> None:
        if self._extractor is not None:
            self._extractor.close()
        self.engine.dispose()


def open_runtime(settings: Settings, *, prepare: bool = True) -> Runtime:
    """Connect to the database and blob store; with ``prepare``, migrate and make sure a model is active.

    Raises:
        ConfigurationError: ``HERON_OCR_LANGUAGE`` names a language Tesseract has no data for
            (every scan would otherwise fail as ``no_text``).
    """
    missing = ocr.missing_languages(settings.ocr_language)
    if missing:
        raise ConfigurationError(
            f"HERON_OCR_LANGUAGE: Tesseract has no language data for {'+'.join(missing)} "
            f"(installed: {', '.join(sorted(ocr.installed_languages() or ()))}); install it "
            f"(e.g. apt-get install tesseract-ocr-{missing[0]}) or change the setting."
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Several worker processes on one machine: each gets its share of the cores, not all of them.
    text_encoder = TextEncoder(
        cache_dir=settings.static_cache_dir,
        threads=settings.torch_threads,
        backend=settings.encoder_backend,
    )
    encoder = CachedEncoder(text_encoder, settings.embedding_cache_dir / text_encoder.identity)
    if make_url(settings.effective_database_url).get_backend_name() == "sqlite":
        JOB_EVENTS.run_dir = settings.data_dir / "run"  # where this machine's processes hear job ends
    runtime = Runtime(
        settings=settings,
        engine=make_engine(settings.effective_database_url),
        blobs=BlobStore(settings.blob_dir),
        encoder=text_encoder,
        training_encoder=encoder,
        models=ModelCache(text_encoder),
    )
    if prepare:
        migrate(runtime.engine)
        ensure_starter_model(
            engine=runtime.engine,
            starter_dir=settings.starter_dir,
            policy=runtime.policy,
            encoder=runtime.training_encoder,
        )
    return runtime


def is_prepared(settings: Settings) -> bool:
    """Whether opening a runtime would have nothing to build: the schema is current, a model this
    Heron can read is active, MiniLM's caches exist, and every classified document has its vector
    and evidence (what `heron prepare` makes sure of)."""
    encoder = TextEncoder(cache_dir=settings.static_cache_dir, backend=settings.encoder_backend)
    if not encoder.caches_built():
        return False
    engine = make_engine(settings.effective_database_url)
    try:
        return (
            current_revision(engine) == head_revision()
            and active_model_is_current(engine)
            and not needs_backfill(engine)
        )
    except Exception:  # a database that cannot be read yet: let prepare say why
        return False
    finally:
        engine.dispose()


def migrate_database(settings: Settings) -> str | None:
    """Bring the configured database's schema up to date; returns the revision it is at."""
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine)
        return current_revision(engine)
    finally:
        engine.dispose()
