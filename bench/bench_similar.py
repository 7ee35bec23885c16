""" "More like this" at scale: one request's time as the number of classified documents grows.

A fresh Heron (real SQLite) gets N classified documents written
straight into its tables (random static vectors and probabilities: the cost does not depend on what
they say), then `similar_documents` is asked for the 10 most like one of them:

  * first    the first request of a process (it reads every row into the process's index);
  * warm     later requests (median of 5): only what is new is read;
  * baseline reading every candidate's vector and probabilities from the database on every
    request, scored the same way, measured in the same run (what the code did before the index,
    whose scoring was slower still: 0.65 s a request at 20,000 documents).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_similar.py [--sizes 2000,20000,100000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sqlalchemy import insert  # noqa: E402
from sqlmodel import select  # noqa: E402

from core.db import session_scope  # noqa: E402
from core.db.tables import Document, Job, JobStatus, Prediction, utcnow  # noqa: E402
from core.runtime import open_runtime  # noqa: E402
from core.services.models import active_version_id  # noqa: E402
from core.services.similar import CENTRE_PRIOR, _similarity, similar_documents  # noqa: E402
from core.settings import load_settings  # noqa: E402

LABELS = ["education", "entertainment", "finance", "healthcare", "legal", "other", "technology"]
BATCH = 5000


def fill(engine, count: int, rng: np.random.Generator) -> str:  # type: ignore[no-untyped-def]
    """Write ``count`` completed jobs with predictions and vectors; return one job id."""
    with session_scope(engine) as session:
        version = active_version_id(session)
    now = utcnow()
    first = ""
    for start in range(0, count, BATCH):
        n = min(BATCH, count - start)
        keys = [uuid.uuid4().hex + uuid.uuid4().hex for _ in range(n)]
        vectors = rng.standard_normal((n, 384)).astype(np.float16)
        with session_scope(engine) as session:
            session.execute(
                insert(Document),
                [
                    {
                        "sha256": key,
                        "original_name": "bench.txt",
                        "size": 1,
                        "storage_key": key,
                        "text": "bench",
                        "extraction_warnings": [],
                        "ocr_pages": [],
                        "vector": vector.tobytes(),
                        "created_at": now,
                    }
                    for key, vector in zip(keys, vectors, strict=True)
                ],
            )
            ids = dict(
                session.exec(select(Document.sha256, Document.id).where(Document.sha256.in_(keys))).all()
            )
            jobs = [uuid.uuid4().hex for _ in range(n)]
            session.execute(
                insert(Job),
                [
                    {
                        "id": job,
                        "document_id": ids[key],
                        "original_filename": "bench.txt",
                        "status": JobStatus.COMPLETED,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for job, key in zip(jobs, keys, strict=True)
                ],
            )
            scores = rng.dirichlet(np.ones(len(LABELS)), size=n)
            session.execute(
                insert(Prediction),
                [
                    {
                        "job_id": job,
                        "model_version_id": version,
                        "label": LABELS[int(p.argmax())],
                        "confidence": float(p.max()),
                        "scores": dict(zip(LABELS, map(float, p), strict=True)),
                        "tier": "fast",
                        "needs_review": True,
                        "review_reasons": [],
                        "evidence": [],
                        "created_at": now,
                    }
                    for job, p in zip(jobs, scores, strict=True)
                ],
            )
        first = first or jobs[0]
    return first


def read_everything(engine, job_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The baseline: every candidate read from the database on every request, then scored."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(Job.id, Document.vector, Prediction.scores)
            .join(Document, Document.id == Job.document_id)
            .join(Prediction, Prediction.job_id == Job.id)
            .where(Job.status == JobStatus.COMPLETED, Document.vector.is_not(None))
        ).all()
    target = next(row for row in rows if row[0] == job_id)
    rest = [row for row in rows if row[0] != job_id]
    vectors = np.stack([np.frombuffer(row[1], dtype=np.float16) for row in rest])
    probabilities = np.array([[row[2].get(label, 0.0) for label in LABELS] for row in rest], dtype=np.float32)
    said = np.frombuffer(target[1], dtype=np.float16).astype(np.float32)
    scores = _similarity(said, vectors, target[2], probabilities, LABELS, CENTRE_PRIOR)
    return [rest[i][0] for i in np.argsort(-scores)[:10]]


def timed(call) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def measure(size: int, rng: np.random.Generator) -> None:
    with tempfile.TemporaryDirectory() as directory:
        runtime = open_runtime(load_settings(data_dir=Path(directory), database_url="", broker_url=""))
        try:
            job_id = fill(runtime.engine, size, rng)

            def ask() -> list[str]:
                return [item.job_id for item in similar_documents(engine=runtime.engine, job_id=job_id)]

            first = timed(ask)
            warm = statistics.median(timed(ask) for _ in range(5))
            baseline = statistics.median(
                timed(lambda: read_everything(runtime.engine, job_id)) for _ in range(3)
            )
            assert ask() == read_everything(runtime.engine, job_id), "the index and a full read disagree"
            print(f"{size:>10} | {first:>10.0f} ms | {warm:>15.1f} ms | {baseline:>21.0f} ms", flush=True)
        finally:
            runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="2000,20000,100000")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    header = ["documents".rjust(10), "first request".rjust(13), "warm (median of 5)".rjust(18)]
    print(" | ".join([*header, "baseline: read every row"]))
    rng = np.random.default_rng(0)
    for size in (int(part) for part in args.sizes.split(",")):
        measure(size, rng)


if __name__ == "__main__":
    main()
