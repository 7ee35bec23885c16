"""Load: many HTTP clients uploading text documents to a real `heron api`, end to end.

Two deployments, each started fresh:
  * embedded — `heron api` on SQLite with the in-process queue (what `make run` starts);
  * scaled   — `heron api` only enqueueing, plus `heron worker --processes 2`, on Redis and PostgreSQL.
Two loads on each:
  * throughput — N uploads from C clients as fast as they go; documents/s from the first upload
    to the last COMPLETED, and upload→COMPLETED latency (server timestamps: created → finished);
  * paced — uploads at a fixed rate (default 20/s), for the latency a steady stream sees.
Afterwards it checks, in the database, that every job COMPLETED with exactly one prediction.
The baseline printed beside it is the routed model alone, in-process, on the same texts in one batch.

    .venv/bin/python bench/bench_load.py [--docs 1000] [--clients 16] [--rate 20] [--paced-docs 400]
                                         [--only embedded|scaled]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.server import heron_api  # noqa: E402
from core.corpus import read_text_corpus  # noqa: E402
from core.runtime import open_runtime  # noqa: E402
from core.settings import load_settings  # noqa: E402

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/9"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--paced-docs", type=int, default=400)
    parser.add_argument("--only", choices=("embedded", "scaled"))
    args = parser.parse_args()
    corpus = read_text_corpus(ROOT / "data" / "starter")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    baseline = _baseline([item.text for item in corpus])
    print(
        f"baseline  routed model alone, in-process, {len(corpus)} starter texts in one batch: "
        f"{baseline:,.0f} docs/s"
    )
    for name in ("embedded", "scaled"):
        if args.only and args.only != name:
            continue
        with _deployment(name) as (base, database_url):
            run = uuid.uuid4().hex[:6]
            texts = [f"{corpus[i % len(corpus)].text}\n\nRef {run}-{i}" for i in range(args.docs)]
            _report(name, "throughput", base, database_url, _upload_all(base, texts, args.clients, rate=None))
            _settle(name)
            texts = [f"{corpus[i % len(corpus)].text}\n\nPaced {run}-{i}" for i in range(args.paced_docs)]
            _report(
                name,
                f"paced {args.rate:g}/s",
                base,
                database_url,
                _upload_all(base, texts, args.clients, args.rate),
            )


def _settle(deployment: str) -> None:
    """Let the burst's leftover messages drain (their jobs were done in other jobs' batches), so the
    paced stream measures a steady state rather than the tail of the burst."""
    if deployment == "scaled":
        import redis

        queue = redis.Redis.from_url(REDIS)
        deadline = time.monotonic() + 120
        while queue.llen("dramatiq:documents") and time.monotonic() < deadline:
            time.sleep(0.2)
    time.sleep(2)


def _baseline(texts: list[str]) -> float:
    with tempfile.TemporaryDirectory() as data_dir:
        runtime = open_runtime(load_settings(data_dir=data_dir, database_url="", broker_url=""))
        model = runtime.models.active(runtime.engine)[1]
        model.classify(texts[:8], runtime.policy, encoder=runtime.encoder)
        started = time.perf_counter()
        model.classify(texts, runtime.policy, encoder=runtime.encoder)
        seconds = time.perf_counter() - started
        runtime.close()
    return len(texts) / seconds


@contextlib.contextmanager
def _deployment(name: str) -> Iterator[tuple[str, str]]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"heron-load-{name}-"))
    if name == "embedded":
        database_url = f"sqlite:///{data_dir / 'heron.db'}"
        with heron_api(HERON_DATA_DIR=str(data_dir)) as base:
            yield base, database_url
        return
    import redis
    from sqlalchemy import text

    from core.db import make_engine

    schema = f"heron_load_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    database_url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    redis.Redis.from_url(REDIS).flushdb()
    settings = {
        "HERON_DATA_DIR": str(data_dir),
        "HERON_DATABASE_URL": database_url,
        "HERON_BROKER_URL": REDIS,
    }
    # Prepare once (migrations + starter model) so the API and the workers start on a ready database.
    open_runtime(load_settings(data_dir=data_dir, database_url=database_url, broker_url=REDIS)).close()
    workers = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "worker", "--processes", "2"],
        env={**os.environ, **settings, "HERON_LOG_LEVEL": "WARNING"},
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        with heron_api(**settings) as base:
            yield base, database_url
    finally:
        os.killpg(workers.pid, 15)
        workers.wait(timeout=60)
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _upload_all(base: str, texts: list[str], clients: int, rate: float | None) -> tuple[list[str], float]:
    """Upload every text (paced at ``rate``/s when given); returns the job ids and the start time."""
    started = time.perf_counter()
    ticket = iter(range(len(texts)))
    lock = threading.Lock()
    job_ids: list[str] = [""] * len(texts)

    def client() -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            while True:
                with lock:
                    i = next(ticket, None)
                if i is None:
                    return
                if rate:
                    time.sleep(max(0.0, started + i / rate - time.perf_counter()))
                response = http.post("/api/classify_file", files={"file": (f"d{i}.txt", texts[i].encode())})
                response.raise_for_status()
                job_ids[i] = response.json()["job_id"]

    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return job_ids, started


def _report(
    deployment: str, load: str, base: str, database_url: str, uploaded: tuple[list[str], float]
) -> None:
    job_ids, started = uploaded
    upload_seconds = time.perf_counter() - started
    with httpx.Client(base_url=base, timeout=60) as http:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            waiting = sum(
                http.get("/api/jobs", params={"status": status, "limit": 1}).json()["total"]
                for status in ("PENDING", "PROCESSING")
            )
            if not waiting:
                break
            time.sleep(0.2)
    jobs = _jobs(database_url, job_ids)
    completed = [job for job in jobs if job["status"] == "COMPLETED"]
    latencies = sorted(job["finished"] - job["created"] for job in completed)
    first = min(job["created"] for job in jobs)
    last = max(job["finished"] for job in completed)
    once = sum(1 for job in jobs if job["predictions"] == 1)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    print(
        f"{deployment:8s} {load:11s} {len(job_ids)} uploads: {len(completed)} COMPLETED, {once} with exactly "
        f"one prediction; {len(completed) / (last - first):,.1f} docs/s end to end "
        f"(uploads took {upload_seconds:.1f} s); "
        f"upload->COMPLETED p50 {pct(0.5):.0f} ms, p95 {pct(0.95):.0f} ms, p99 {pct(0.99):.0f} ms",
        flush=True,
    )


def _jobs(database_url: str, job_ids: list[str]) -> list[dict]:
    from sqlalchemy import func
    from sqlmodel import select

    from core.db import make_engine, session_scope
    from core.db.tables import Job, Prediction

    engine = make_engine(database_url)
    with session_scope(engine) as session:
        rows = session.exec(select(Job).where(Job.id.in_(job_ids))).all()
        counts = dict(
            session.exec(
                select(Prediction.job_id, func.count())
                .where(Prediction.job_id.in_(job_ids))
                .group_by(Prediction.job_id)
            ).all()
        )
        jobs = [
            {
                "status": row.status,
                "created": _seconds(row.created_at),
                "finished": _seconds(row.finished_at or row.updated_at),
                "predictions": counts.get(row.id, 0),
            }
            for row in rows
        ]
    engine.dispose()
    return jobs


def _seconds(moment: datetime) -> float:
    # SQLite hands back naive datetimes; they were stored in UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


if __name__ == "__main__":
    main()
