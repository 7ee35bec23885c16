"""Dramatiq actors: message in (ids only), core use case, done. Import after the broker is set."""

from __future__ import annotations

import logging

import dramatiq

from core.errors import Conflict, Invalid
from core.services.jobs import process_job
from core.services.training import train_full, train_incremental
from core.settings import get_settings
from workers import context

log = logging.getLogger(__name__)
_settings = get_settings()


@dramatiq.actor(
    actor_name="documents.classify",
    queue_name="documents",
    max_retries=_settings.max_attempts,
    min_backoff=500,
    max_backoff=30_000,
    time_limit=15 * 60 * 1000,
)
def classify_job(job_id: str) -> None:
    runtime = context.runtime()
    status = process_job(
        engine=runtime.engine,
        blobs=runtime.blobs,
        models=runtime.models,
        job_id=job_id,
        policy=runtime.policy,
        lease_seconds=runtime.settings.job_lease_seconds,
        max_attempts=runtime.settings.max_attempts,
        limits=runtime.extraction_limits,
    )
    log.info("job %s %s", job_id, status)


@dramatiq.actor(
    actor_name="models.train",
    queue_name="training",
    max_retries=30,
    min_backoff=2_000,
    max_backoff=30_000,
    time_limit=60 * 60 * 1000,
)
def train_model(actor: str | None = None, mode: str = "full") -> None:
    """Train a new version. Requests that arrive while another run holds the training lease are
    retried after it; an incremental run finding nothing new ends quietly (it was coalesced into
    the run before it)."""
    runtime = context.runtime()
    train = train_incremental if mode == "incremental" else train_full
    try:
        outcome = train(
            engine=runtime.engine, policy=runtime.policy, encoder=runtime.training_encoder, actor=actor
        )
    except Conflict as busy:
        raise dramatiq.Retry(busy.message, delay=2_000) from busy
    except Invalid as nothing:
        log.info("training skipped: %s", nothing.message)
        return
    log.info("trained model %s (activated=%s: %s)", outcome.version_id, outcome.activated, outcome.reason)
