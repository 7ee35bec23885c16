"""More like this: the unlabelled documents closest to one a person is reviewing.

Two things Heron already stores about every classified document are compared, with equal weight:
what it says (its static vector: MiniLM's distilled word vectors, which the fast tier computes
anyway, centred on the mean of the documents compared, so the direction every document shares does
not count) and what the model made of it (its probabilities per industry). On industry-real-dev
the ten nearest documents share the query's industry 0.91 of the time this way, 0.71 by the raw
static vectors and 0.76 by chunk-averaged MiniLM embeddings (bench/bench_annotation.py).
Candidates are completed documents nobody has labelled: no correction other than a rejected one,
and not a training example. Each document appears once, through its latest job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine
from sqlmodel import select

from core.db import session_scope
from core.db.tables import Document, Feedback, FeedbackStatus, Job, JobStatus, Prediction, TrainingExample
from core.errors import NotClassified
from core.services.jobs import JobView, existing_job, job_views

MAX_SIMILAR = 100
# How many documents the centre of the static vectors counts as having been measured on before any.
CENTRE_PRIOR = 20


@dataclass(frozen=True)
class SimilarDocument:
    job_id: str
    similarity: float
    job: JobView


def similar_documents(*, engine: Engine, job_id: str, limit: int = 10) -> list[SimilarDocument]:
    """The ``limit`` unlabelled documents most similar to ``job_id``'s, most similar first.

    Raises:
        NotFound: no such job. NotClassified: its document has not been classified yet.
    """
    limit = max(1, min(limit, MAX_SIMILAR))
    with session_scope(engine) as session:
        job = existing_job(session, job_id)
        target = session.get(Document, job.document_id)
        if target is None or target.vector is None:
            raise NotClassified(f"Job {job_id!r} has not been classified yet; nothing to compare it with.")
        labelled = (
            select(Job.document_id)
            .join(Feedback, Feedback.job_id == Job.id)
            .where(Feedback.status != FeedbackStatus.rejected)
        )
        examples = select(TrainingExample.document_id).where(TrainingExample.document_id.is_not(None))
        target_scores = session.exec(select(Prediction.scores).where(Prediction.job_id == job_id)).first()
        rows = session.exec(
            select(Job.id, Job.document_id, Document.vector, Prediction.scores)
            .join(Document, Document.id == Job.document_id)
            .join(Prediction, Prediction.job_id == Job.id)
            .where(
                Job.status == JobStatus.COMPLETED,
                Document.vector.is_not(None),
                Document.id != target.id,
                Document.id.not_in(labelled),
                Document.id.not_in(examples),
            )
            .order_by(Job.created_at.desc(), Job.id)
        ).all()
        latest: dict[int, tuple[str, bytes, dict[str, float]]] = {}
        for candidate, document_id, vector, scores in rows:
            latest.setdefault(document_id, (candidate, vector, scores or {}))
        if not latest:
            return []
        ids = [candidate for candidate, _, _ in latest.values()]
        labels = sorted(target_scores or {})
        said = np.stack([_vector(target.vector), *(_vector(vector) for _, vector, _ in latest.values())])
        thought = np.array(
            [
                [(scores or {}).get(label, 0.0) for label in labels]
                for scores in (target_scores, *(s for _, _, s in latest.values()))
            ],
            dtype=np.float32,
        ).reshape(len(said), len(labels))
        # Few documents say little about what they all share: the centre shrinks towards none.
        centre = said.mean(axis=0) * len(said) / (len(said) + CENTRE_PRIOR)
        profile = np.hstack([_unit(said - centre), _unit(thought)]) / np.sqrt(2.0)
        scores = profile[1:] @ profile[0]
        best = np.argsort(-scores, kind="stable")[:limit]
        chosen = [ids[i] for i in best]
        found = session.exec(select(Job).where(Job.id.in_(chosen))).all()
        views = {view.id: view for view in job_views(session, found)}
    return [
        SimilarDocument(job_id=ids[i], similarity=round(float(scores[i]), 4), job=views[ids[i]]) for i in best
    ]


def _vector(stored: bytes) -> np.ndarray:
    return np.frombuffer(stored, dtype=np.float16).astype(np.float32)


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
