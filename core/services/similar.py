"""More like this: the unlabelled documents closest to one a person is reviewing.

Two things Heron already stores about every classified document are compared, with equal weight:
what it says (its static vector: MiniLM's distilled word vectors, which the fast tier computes
anyway, centred on the mean of the documents compared, so the direction every document shares does
not count) and what the model made of it (its probabilities per industry). On industry-real-dev
the ten nearest documents share the query's industry 0.91 of the time this way, 0.71 by the raw
static vectors and 0.76 by chunk-averaged MiniLM embeddings (bench/bench_annotation.py).
Candidates are completed documents nobody has labelled: no correction other than a rejected one,
and not a training example. Each document appears once, through its latest job. Each process keeps
the vectors and probabilities in memory (``_Index``), reads them all in the background (``warm_up``, as
the API and the console start, and every RELOAD_SECONDS) and only what is new on each request.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine
from sqlmodel import Session, select

from core.db import session_scope
from core.db.tables import Document, Job, JobStatus, Prediction, TrainingExample
from core.errors import NotClassified
from core.services.feedback import corrected_documents
from core.services.jobs import JobView, existing_job, job_views
from core.services.review import held_by_others

log = logging.getLogger(__name__)

__all__ = ["MAX_SIMILAR", "SimilarDocument", "similar_documents", "warm_up"]

MAX_SIMILAR = 100
# How many documents the centre of the static vectors counts as having been measured on before any.
CENTRE_PRIOR = 20
# The index looks again at the ids of this many of the newest predictions on every request: a
# prediction committed after one with a higher id (concurrent workers on PostgreSQL) is still found.
REREAD = 2000
# And reads everything again this often (a vector written later, by `heron prepare`'s backfill), in
# the background: requests meanwhile are served by the index as it is, topped up.
RELOAD_SECONDS = 600.0


@dataclass(frozen=True)
class SimilarDocument:
    job_id: str
    similarity: float
    job: JobView


class _Index:
    """Every classified document's static vector and probabilities (through its latest job), kept
    in memory by each process and topped up from the database on every request: a request then
    costs one product over the matrix, not a read of every row (0.65 s at 20,000 documents)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded_at = time.monotonic()
        self.reloading = False
        self.newest = 0  # the highest prediction id seen
        self.read: set[int] = set()  # the predictions in the index
        self.row: dict[int, int] = {}  # document id -> row
        self.jobs: list[tuple[str, float]] = []  # per row: the job, its creation time
        self.documents = np.zeros(0, dtype=np.int64)
        self.vectors = np.zeros((0, 0), dtype=np.float16)
        self.labels: list[str] = []
        self.probabilities = np.zeros((0, 0), dtype=np.float32)

    def stale(self) -> bool:
        """Due for a reread of everything, and no reread under way."""
        return not self.reloading and time.monotonic() - self.loaded_at > RELOAD_SECONDS

    def refresh(self, session: Session) -> None:
        # The ids of the newest predictions first (cheap), then whole rows from the oldest not read
        # yet on (a range of ids: an IN list of thousands makes SQLite scan per id).
        window = session.exec(select(Prediction.id).where(Prediction.id > self.newest - REREAD)).all()
        unread = [prediction_id for prediction_id in window if prediction_id not in self.read]
        if unread:
            query = (
                select(
                    Prediction.id, Job.id, Job.document_id, Job.created_at, Document.vector, Prediction.scores
                )
                .join(Job, Job.id == Prediction.job_id)
                .join(Document, Document.id == Job.document_id)
                .where(
                    Prediction.id >= min(unread),
                    Job.status == JobStatus.COMPLETED,
                    Document.vector.is_not(None),
                )
            )
            for prediction_id, job_id, document_id, created, vector, scores in session.exec(query):
                if prediction_id not in self.read:
                    self.read.add(prediction_id)
                    self._put(job_id, document_id, created.timestamp(), vector, scores or {})
        self.newest = max([self.newest, *window])

    def _put(self, job_id: str, document_id: int, created: float, vector: bytes, scores: dict) -> None:
        row = self.row.get(document_id)
        if row is not None and self._later(row, job_id, created):
            return
        for label in scores:
            if label not in self.labels:
                self.labels.append(label)
                self.probabilities = _grown(self.probabilities, len(self.probabilities), len(self.labels))
        said = np.frombuffer(vector, dtype=np.float16)
        if row is None:
            row = self.row[document_id] = len(self.jobs)
            self.jobs.append((job_id, created))
            if row >= len(self.documents):  # grow by half: appends cost O(1) on average
                size = max(64, row + row // 2)
                self.documents = np.concatenate(
                    [self.documents, np.zeros(size - len(self.documents), np.int64)]
                )
                self.vectors = _grown(self.vectors, size, said.shape[0])
                self.probabilities = _grown(self.probabilities, size, len(self.labels))
            self.documents[row] = document_id
        self.jobs[row] = (job_id, created)
        self.vectors[row] = said
        self.probabilities[row] = [scores.get(label, 0.0) for label in self.labels]

    def _later(self, row: int, job_id: str, created: float) -> bool:
        """Whether the row holds a later job of the same document than this one. A document appears
        once, through its latest job (the latest created; of two created together, the lower id)."""
        held, held_created = self.jobs[row]
        return held != job_id and (held_created > created or (held_created == created and held < job_id))

    def candidates(self, excluded: set[int]) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
        count = len(self.jobs)
        keep = ~np.isin(self.documents[:count], list(excluded))
        rows = np.flatnonzero(keep)[::-1]  # the newest first: of equally similar ones, they win
        return (
            [self.jobs[i][0] for i in rows],
            self.vectors[rows],
            self.probabilities[rows],
            list(self.labels),
        )


def _grown(matrix: np.ndarray, rows: int, columns: int) -> np.ndarray:
    out = np.zeros((rows, columns), dtype=matrix.dtype)
    out[: matrix.shape[0], : matrix.shape[1]] = matrix
    return out


_INDEXES: weakref.WeakKeyDictionary[Engine, _Index] = weakref.WeakKeyDictionary()
_INDEXES_LOCK = threading.Lock()


def _index(engine: Engine) -> _Index:
    with _INDEXES_LOCK:
        index = _INDEXES.get(engine)
        if index is None:
            index = _INDEXES[engine] = _Index()
        return index


def _load(engine: Engine, stale: _Index | None = None) -> None:
    """Read every classified document into a new index, then serve from it (in the background: 3 s
    at 100,000 documents, which no request should wait for). With no index yet, requests wait for
    this one instead of each reading everything themselves."""
    fresh = _Index()
    try:
        with fresh.lock:
            with _INDEXES_LOCK:
                _INDEXES.setdefault(engine, fresh)
            with session_scope(engine) as session:
                fresh.refresh(session)
            with _INDEXES_LOCK:
                _INDEXES[engine] = fresh
    except Exception:  # the database away: the index in use stays, and is reread on a later request
        log.warning("could not read the documents for 'more like this'", exc_info=True)
        with _INDEXES_LOCK:
            if _INDEXES.get(engine) is fresh:
                del _INDEXES[engine]
        if stale is not None:
            stale.reloading = False


def warm_up(engine: Engine, stale: _Index | None = None) -> threading.Thread | None:
    """Load this process's index in the background, so that the first "more like this" after a
    start is as quick as the next (the API and the console call it as they start); with ``stale``,
    reread that index's documents into a new one (it is marked as being reread meanwhile). None when
    no thread could be started: a later request tries again."""
    thread = threading.Thread(target=_load, args=(engine, stale), name="heron-similar-load", daemon=True)
    if stale is not None:
        stale.reloading = True
    try:
        thread.start()
    except RuntimeError:
        log.warning("could not start reading the documents for 'more like this'", exc_info=True)
        if stale is not None:
            stale.reloading = False
        return None
    return thread


def similar_documents(
    *, engine: Engine, job_id: str, limit: int = 10, annotator: str | None = None
) -> list[SimilarDocument]:
    """The ``limit`` unlabelled documents most similar to ``job_id``'s, most similar first; with
    ``annotator``, none that someone else holds for review (ticked in one labelling action, they
    were labelled by two people).

    Raises:
        NotFound: no such job. NotClassified: its document has not been classified yet.
    """
    limit = max(1, min(limit, MAX_SIMILAR))
    index = _index(engine)
    with session_scope(engine) as session:
        job = existing_job(session, job_id)
        target = session.get(Document, job.document_id)
        if target is None or target.vector is None:
            why = (
                f"failed ({job.error_code}): its document could not be read"
                if job.status == JobStatus.FAILED
                else "has not been classified yet"
            )
            raise NotClassified(f"Job {job_id!r} {why}; nothing to compare it with.")
        target_scores = session.exec(select(Prediction.scores).where(Prediction.job_id == job_id)).first()
        labelled = session.exec(corrected_documents()).all()
        examples = session.exec(
            select(TrainingExample.document_id).where(TrainingExample.document_id.is_not(None))
        ).all()
        held: list[int] = []
        if annotator is not None:
            held = list(
                session.exec(select(Job.document_id).where(Job.id.in_(held_by_others(annotator)))).all()
            )
        with index.lock:
            if index.stale():
                warm_up(engine, index)
            index.refresh(session)
            ids, vectors, probabilities, known = index.candidates({target.id, *labelled, *examples, *held})
        if not ids:
            return []
        scores = _similarity(
            _vector(target.vector), vectors, target_scores or {}, probabilities, known, CENTRE_PRIOR
        )
        best = np.argsort(-scores, kind="stable")[:limit]
        found = session.exec(select(Job).where(Job.id.in_([ids[i] for i in best]))).all()
        views = {view.id: view for view in job_views(session, found)}
    return [
        SimilarDocument(job_id=ids[i], similarity=round(float(scores[i]), 4), job=views[ids[i]])
        for i in best
        if ids[i] in views
    ]


def _similarity(
    said: np.ndarray,
    vectors: np.ndarray,
    thought: dict[str, float],
    probabilities: np.ndarray,
    known: list[str],
    prior: float,
) -> np.ndarray:
    """Each candidate's similarity to the document: the mean of two cosines, of the static vectors
    centred (on the mean of the document and the candidates, shrunk towards none by ``prior``
    documents: few documents say little about what they all share) and of the probabilities.

    The centred cosines come from two products with the candidates' vectors, without centring
    them: (v - c)·(d - c) = v·d - v·c - c·d + c·c and |v - c|² = v·v - 2 v·c + c·c.
    """
    candidates = np.asarray(vectors, dtype=np.float32)
    centre = (said + candidates.sum(axis=0)) / (len(candidates) + 1 + prior)
    along = candidates @ np.stack([said, centre], axis=1)  # v·d, v·c
    squares = np.einsum("ij,ij->i", candidates, candidates)
    across = along[:, 0] - along[:, 1] - float(centre @ said) + float(centre @ centre)
    lengths = np.sqrt(np.maximum(squares - 2 * along[:, 1] + float(centre @ centre), 0.0))
    lengths *= float(np.linalg.norm(said - centre))
    meaning = np.divide(across, lengths, out=np.zeros_like(across), where=lengths > 0)
    labels = sorted(thought)
    target = np.array([thought[label] for label in labels], dtype=np.float32)
    columns = np.zeros((len(candidates), len(labels)), dtype=np.float32)
    for position, label in enumerate(labels):
        if label in known:
            columns[:, position] = probabilities[:, known.index(label)]
    answers = _unit(columns) @ _unit(target[None, :])[0]
    return (meaning + answers) / 2.0


def _vector(stored: bytes) -> np.ndarray:
    return np.frombuffer(stored, dtype=np.float16).astype(np.float32)


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
