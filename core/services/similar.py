"""More like this: the unlabelled documents closest to one a person is reviewing.

Every classified document keeps its static vector (MiniLM's distilled word vectors, which the fast
tier computes anyway); similarity is their cosine. Candidates are completed documents nobody has
labelled: no correction other than a rejected one, and not a training example. Each document
appears once, through its latest job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine
from sqlmodel import select

from core.db import session_scope
from core.db.tables import Document, Feedback, FeedbackStatus, Job, JobStatus, TrainingExample
from core.errors import NotClassified
from core.services.jobs import JobView, existing_job, job_views

MAX_SIMILAR = 100


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
        rows = session.exec(
            select(Job.id, Job.document_id, Document.vector)
            .join(Document, Document.id == Job.document_id)
            .where(
                Job.status == JobStatus.COMPLETED,
                Document.vector.is_not(None),
                Document.id != target.id,
                Document.id.not_in(labelled),
                Document.id.not_in(examples),
            )
            .order_by(Job.created_at.desc(), Job.id)
        ).all()
        latest: dict[int, tuple[str, bytes]] = {}
        for candidate, document_id, vector in rows:
            latest.setdefault(document_id, (candidate, vector))
        if not latest:
            return []
        ids = [candidate for candidate, _ in latest.values()]
        matrix = np.stack([_vector(vector) for _, vector in latest.values()])
        scores = matrix @ _vector(target.vector)
        best = np.argsort(-scores, kind="stable")[:limit]
        chosen = [ids[i] for i in best]
        found = session.exec(select(Job).where(Job.id.in_(chosen))).all()
        views = {view.id: view for view in job_views(session, found)}
    return [
        SimilarDocument(job_id=ids[i], similarity=round(float(scores[i]), 4), job=views[ids[i]]) for i in best
    ]


def _vector(stored: bytes) -> np.ndarray:
    vector = np.frombuffer(stored, dtype=np.float16).astype(np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
