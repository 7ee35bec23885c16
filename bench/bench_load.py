"""Load on real documents: HTTP clients against a real `heron api`, end to end, and the memory of
everything `make run` starts.

Documents: `../shared/corpora/industry-real-dev` (346 human-written texts, 120-3,000 words), each
upload made unique with a reference line so that no cache helps. Sections:

  * in one process — plain MiniLM `SentenceTransformer.encode` on the documents (the baseline:
    docs/s), the routed model as a worker runs it (docs/s, share escalated, ratio to the baseline),
    and the transformer tier's macro-F1 with the served backend beside torch's;
  * per deployment — embedded (`heron up`, what `make run` starts: SQLite, in-process queue, the
    API and the console beside one worker process) and scaled (`heron api` enqueueing,
    `heron worker --processes 2`, Redis + PostgreSQL):
      - closed loop: 8 clients, each uploading a document then polling its job every 50 ms (and
        again, waiting on the job with `?wait=`) until it is done, for a fixed time;
      - burst: 600 uploads from 16 clients as fast as they go; docs/s from the first upload to the
        last job finished (server timestamps);
    afterwards it checks, in the database, that every job COMPLETED with exactly one prediction;
  * memory — `heron up` (API + console) on a fresh data directory, the console opened once in
    headless Chromium, 1,000 documents through the API; PSS of the whole process tree.
  * pairs (``--pairs N``, or ``--only pairs`` for 3) — embedded then scaled polling loops, N times:
    each pair's ratio and their median (the run-to-run drift is larger than the ratio's margin).

    .venv/bin/python bench/bench_load.py [--only inprocess|embedded|scaled|memory|pairs]
                                         [--loop-seconds 30] [--burst 600] [--memory-docs 1000]
                                         [--pairs N]

"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
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
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.server import free_port, heron_api  # noqa: E402
from core.corpus import read_text_corpus  # noqa: E402
from core.runtime import open_runtime  # noqa: E402
from core.settings import load_settings  # noqa: E402

REAL = ROOT.parent / "shared" / "corpora" / "industry-real-dev"
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/9"
DONE = ("COMPLETED", "FAILED")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=("inprocess", "embedded", "scaled", "memory", "pairs"))
    parser.add_argument("--loop-clients", type=int, default=8)
    parser.add_argument("--loop-seconds", type=float, default=30.0)
    parser.add_argument("--poll-ms", type=float, default=50.0)
    parser.add_argument("--burst", type=int, default=600, help="uploads in the burst (0: no burst)")
    parser.add_argument("--burst-clients", type=int, default=16)
    parser.add_argument("--memory-docs", type=int, default=1000)
    parser.add_argument("--modes", default="poll,wait", help="closed-loop clients: poll, wait or both")
    parser.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="then N pairs of polling loops, embedded then scaled, each pair's ratio (--only pairs: 3)",
    )
    args = parser.parse_args()
    if not REAL.is_dir():
        sys.exit(f"{REAL} is missing: this benchmark runs on its real documents.")
    corpus = read_text_corpus(REAL)
    texts = [item.text for item in corpus]
    words = sorted(len(text.split()) for text in texts)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{len(texts)} documents from {REAL.name}, {words[0]}-{words[-1]} words "
        f"(median {words[len(words) // 2]})",
        flush=True,
    )
    if args.only in (None, "inprocess"):
        in_one_process(corpus)
    for name in ("embedded", "scaled"):
        if args.only in (None, name):
            with _deployment(name) as (base, database_url):
                run = uuid.uuid4().hex[:6]
                for mode in args.modes.split(","):
                    closed_loop(name, base, database_url, texts, args, mode=mode, tag=f"{run}{mode}")
                    _settle(name)
                if args.burst:
                    burst(name, base, database_url, texts, args, tag=f"{run}burst")
    if args.only in (None, "memory"):
        memory(texts, args.memory_docs)
    if args.pairs or args.only == "pairs":
        pairs(texts, args, args.pairs or 3)


# -- in one process -----------------------------------------------------------------------------
def in_one_process(corpus) -> None:  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer
    from sklearn.metrics import f1_score

    from core.classify.encoder import TextEncoder
    from core.classify.weights import packaged_model_path

    texts = [item.text for item in corpus]
    truth = [item.label for item in corpus]
    plain = SentenceTransformer(str(packaged_model_path()), device="cpu", local_files_only=True)
    plain.encode(texts[:8], show_progress_bar=False)
    started = time.perf_counter()
    plain.encode(texts, batch_size=32, show_progress_bar=False)
    plain_rate = len(texts) / (time.perf_counter() - started)
    print(
        f"baseline  plain SentenceTransformer.encode (torch, first 256 tokens) on the {len(texts)} "
        f"documents: {plain_rate:.1f} docs/s",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as data_dir:
        runtime = open_runtime(load_settings(data_dir=data_dir, database_url="", broker_url=""))
        model = runtime.models.active(runtime.engine)[1]
        encoder = runtime.encoder
        model.classify(texts[:8], runtime.policy, encoder=encoder)
        started = time.perf_counter()
        verdicts = []
        for start in range(0, len(texts), 16):  # as a worker claims them (HERON_WORKER_BATCH_SIZE)
            verdicts += model.classify(texts[start : start + 16], runtime.policy, encoder=encoder)
        routed = len(texts) / (time.perf_counter() - started)
        escalated = np.mean([v.escalated for v in verdicts])
        routed_f1 = f1_score(truth, [v.label for v in verdicts], average="macro")
        print(
            f"heron     routed model in one process ({encoder.backend} {encoder.precision}, batches of 16): "
            f"{routed:.1f} docs/s = {routed / plain_rate:.1f}x the baseline; {escalated:.0%} escalated; "
            f"macro-F1 {routed_f1:.3f}",
            flush=True,
        )
        labels = model.semantic.labels
        scores = {}
        for backend in dict.fromkeys(("torch", "openvino", encoder.backend)):
            tier = TextEncoder(backend=backend, cache_dir=runtime.settings.static_cache_dir)
            tier.embed(texts[:8])
            started = time.perf_counter()
            vectors = tier.embed(texts)
            seconds = time.perf_counter() - started
            answers = model.semantic_logits(vectors, labels).argmax(axis=1)
            scores[backend] = f1_score(truth, [labels[i] for i in answers], average="macro")
            print(
                f"          transformer tier alone on {backend} {tier.precision}: "
                f"{len(texts) / seconds:.1f} docs/s, macro-F1 {scores[backend]:.3f}",
                flush=True,
            )
        runtime.close()


# -- against a running API ------------------------------------------------------------------------
def closed_loop(name, base, database_url, texts, args, *, mode: str, tag: str) -> float:  # type: ignore[no-untyped-def]
    """Each client uploads one document, follows its job until it is done, and starts again."""
    deadline = time.monotonic() + args.loop_seconds
    latencies: list[float] = []
    uploads: list[float] = []  # the upload request alone
    escalated: list[float] = []  # upload->done of the documents the transformer tier decided
    job_ids: list[str] = []
    lock = threading.Lock()
    counter = iter(range(10**9))

    def client() -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter)
                body = f"{texts[i % len(texts)]}\n\nRef {tag}-{i}".encode()
                started = time.perf_counter()
                job_id = http.post("/api/classify_file", files={"file": (f"d{i}.txt", body)}).json()["job_id"]
                uploaded = time.perf_counter() - started
                while True:
                    if mode == "wait":
                        job = http.get(f"/api/jobs/{job_id}", params={"wait": 30}).json()
                    else:
                        time.sleep(args.poll_ms / 1000)
                        job = http.get(f"/api/jobs/{job_id}").json()
                    if job["status"] in DONE:
                        break
                with lock:
                    latencies.append(time.perf_counter() - started)
                    uploads.append(uploaded)
                    if job.get("escalated"):
                        escalated.append(latencies[-1])
                    job_ids.append(job_id)

    commits = _commits(database_url)
    cpu = _cpu_by_role()
    started = time.perf_counter()
    with ThreadPoolExecutor(args.loop_clients) as pool:
        for future in [pool.submit(client) for _ in range(args.loop_clients)]:
            future.result()
    seconds = time.perf_counter() - started
    how = f"polling every {args.poll_ms:g} ms" if mode == "poll" else "waiting with ?wait="
    print(
        f"{name:8s} closed loop, {args.loop_clients} clients {how}: {len(job_ids) / seconds:.1f} docs/s; "
        f"upload->done p50 {_pct(latencies, 0.5):.0f} ms, p95 {_pct(latencies, 0.95):.0f} ms; "
        f"{_check(database_url, job_ids)}\n"
        f"         (the upload request alone p50 {_pct(uploads, 0.5):.0f} ms, "
        f"p95 {_pct(uploads, 0.95):.0f} ms; "
        f"{len(escalated) / max(1, len(latencies)):.0%} escalated, their upload->done p50 "
        f"{_pct(escalated, 0.5):.0f} ms, p95 {_pct(escalated, 0.95):.0f} ms)\n"
        f"         {_cpu_per_document(cpu, len(job_ids), seconds)}"
        f"{_commits_per_document(commits, database_url, len(job_ids))}",
        flush=True,
    )
    return len(job_ids) / seconds


def pairs(texts: list[str], args: argparse.Namespace, count: int) -> None:
    """Scaled against embedded polling, in pairs run one after the other. Throughput on these
    machines drifts by ±20% over minutes, more than the difference being judged: only a ratio of
    two runs made back to back says something, and the median of several says more."""
    ratios = []
    for number in range(1, count + 1):
        rates = {}
        for name in ("embedded", "scaled"):
            with _deployment(name) as (base, database_url):
                tag = f"{uuid.uuid4().hex[:6]}pair"
                rates[name] = closed_loop(name, base, database_url, texts, args, mode="poll", tag=tag)
        ratios.append(rates["scaled"] / rates["embedded"])
        print(f"pair {number} of {count}: scaled / embedded polling {ratios[-1]:.0%}", flush=True)
    print(
        f"pairs   scaled / embedded polling over {count} pairs: median {float(np.median(ratios)):.0%} "
        f"(lowest {min(ratios):.0%}, highest {max(ratios):.0%}; the target: at least 80%)",
        flush=True,
    )


def burst(name, base, database_url, texts, args, *, tag: str) -> None:  # type: ignore[no-untyped-def]
    commits = _commits(database_url)
    cpu = _cpu_by_role()
    job_ids, started = _upload_all(
        base, [f"{texts[i % len(texts)]}\n\nRef {tag}-{i}" for i in range(args.burst)], args.burst_clients
    )
    upload_seconds = time.perf_counter() - started
    _wait_until_done(base)
    jobs = _jobs(database_url, job_ids)
    completed = [job for job in jobs if job["status"] == "COMPLETED"]
    latencies = sorted(job["finished"] - job["created"] for job in completed)
    first = min(job["created"] for job in jobs)
    last = max(job["finished"] for job in completed)
    print(
        f"{name:8s} burst, {len(job_ids)} uploads from {args.burst_clients} clients: "
        f"{len(completed) / (last - first):.1f} docs/s end to end (uploads took {upload_seconds:.1f} s); "
        f"upload->done p50 {_pct(latencies, 0.5):.0f} ms, p95 {_pct(latencies, 0.95):.0f} ms; "
        f"{_check(database_url, job_ids)}\n"
        f"         {_cpu_per_document(cpu, len(job_ids), time.perf_counter() - started)}"
        f"{_commits_per_document(commits, database_url, len(job_ids))}",
        flush=True,
    )


def memory(texts: list[str], documents: int) -> None:
    """PSS of everything `heron up` starts, after ``documents`` real documents and one console visit."""
    data_dir = Path(tempfile.mkdtemp(prefix="heron-load-memory-"))
    api_port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "HERON_DATA_DIR": str(data_dir),
        "HERON_API_PORT": str(api_port),
        "HERON_UI_PORT": str(ui_port),
        "HERON_LOG_LEVEL": "WARNING",
    }
    up = subprocess.Popen([sys.executable, "-m", "cli.main", "up"], env=env, cwd=ROOT, start_new_session=True)
    base = f"http://127.0.0.1:{api_port}"
    try:
        _wait_for(f"{base}/health")
        _wait_for(f"http://127.0.0.1:{ui_port}/_stcore/health")
        visited = _open_console(f"http://127.0.0.1:{ui_port}/")
        job_ids, _ = _upload_all(base, [f"{texts[i % len(texts)]}\n\nMem {i}" for i in range(documents)], 16)
        _wait_until_done(base)
        if visited:
            _open_console(f"http://127.0.0.1:{ui_port}/")
        time.sleep(2)
        processes = _tree(up.pid)
        pss = {pid: _pss_mib(pid) for pid in processes}
        total = sum(pss.values())
        parts = ", ".join(
            f"{_name(pid)} {mib:.0f}" for pid, mib in sorted(pss.items(), key=lambda kv: -kv[1])
        )
        console = "console opened in Chromium" if visited else "console not opened: no chromium"
        print(
            f"memory    `heron up` (API + {console}) "
            f"after {len(job_ids)} documents: {total:.0f} MiB PSS in all ({parts})",
            flush=True,
        )
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)


# -- helpers --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _deployment(name: str) -> Iterator[tuple[str, str]]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"heron-load-{name}-"))
    if name == "embedded":
        database_url = f"sqlite:///{data_dir / 'heron.db'}"
        with heron_api("up", HERON_DATA_DIR=str(data_dir)) as base:
            _first_document(base)
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
            _first_document(base)
            yield base, database_url
    finally:
        os.killpg(workers.pid, 15)
        workers.wait(timeout=60)
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _first_document(base: str) -> None:
    """Start measuring once a document has gone through and every process this benchmark started
    is idle: the API answers before the worker processes have booted (the scaled shape's second
    worker process was still loading its model well into the first closed loop), and their boot
    is not what the loads measure."""
    with httpx.Client(base_url=base, timeout=300) as http:
        upload = http.post("/api/classify_file", files={"file": ("first.txt", b"Revenue rose.")})
        job_id = upload.json()["job_id"]
        for _ in range(5):
            if http.get(f"/api/jobs/{job_id}", params={"wait": 60}).json()["status"] in DONE:
                break
        else:
            sys.exit("the first document did not finish within 5 minutes")
    deadline = time.monotonic() + 300
    while _cpu_seconds(_tree(os.getpid())[1:], wait=1.0) > 0.15 and time.monotonic() < deadline:
        pass


def _cpu_seconds(pids: list[int], wait: float) -> float:
    """CPU time the processes ``pids`` used over the next ``wait`` seconds."""

    before = sum(map(_cpu_time, pids))
    time.sleep(wait)
    return sum(map(_cpu_time, pids)) - before


def _cpu_time(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far; 0 if it is gone."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


# The machine's own services the scaled shape uses (they idle while the embedded shape runs).
SERVICES = {"postgres": "PostgreSQL", "redis-server": "Redis"}


def _cpu_by_role() -> dict[str, float]:
    """CPU seconds used so far by each kind of process this benchmark started (its own: the
    clients), and by the machine's PostgreSQL and Redis servers."""
    used: dict[str, float] = {}
    for pid in _tree(os.getpid()):
        role = "clients" if pid == os.getpid() else _name(pid)
        used[role] = used.get(role, 0.0) + _cpu_time(pid)
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            role = SERVICES.get((entry / "comm").read_text().strip()) if entry.name.isdigit() else None
            if role:
                used[role] = used.get(role, 0.0) + _cpu_time(int(entry.name))
    return used


def _commits(database_url: str) -> int | None:
    """Transactions PostgreSQL has committed in this database so far (None on SQLite). Its
    statistics reach the view within a second of each commit."""
    if not database_url.startswith("postgresql"):
        return None
    import psycopg

    with psycopg.connect(POSTGRES.replace("postgresql+psycopg://", "postgresql://", 1)) as connection:
        time.sleep(1.2)  # PostgreSQL flushes each backend's counts at most once a second
        connection.execute("SELECT pg_stat_clear_snapshot()")
        (count,) = connection.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        return int(count)


def _commits_per_document(before: int | None, database_url: str, documents: int) -> str:
    after = _commits(database_url)
    if before is None or after is None:
        return ""
    # The benchmark's own queries (its checks, these counts) are a handful in all.
    return f"; PostgreSQL {(after - before) / max(1, documents):.2f} transactions per document"


def _cpu_per_document(before: dict[str, float], documents: int, seconds: float) -> str:
    """What each kind of process spent per document since ``before``: a cost that the run-to-run
    spread of the throughput (±15% on these machines) does not hide."""
    after = _cpu_by_role()
    spent = {role: after[role] - before.get(role, 0.0) for role in after}
    parts = ", ".join(
        f"{role} {ms:.1f}"
        for role, ms in sorted(
            ((r, 1000 * s / max(1, documents)) for r, s in spent.items()), key=lambda x: -x[1]
        )
        if ms >= 0.05
    )
    busy = sum(spent.values()) / seconds / (os.cpu_count() or 1)
    return f"CPU per document (ms): {parts}; {busy:.0%} of all cores"


def _settle(deployment: str) -> None:
    """Let leftover messages drain, so the next load starts from a quiet queue."""
    if deployment == "scaled":
        import redis

        queue = redis.Redis.from_url(REDIS)
        deadline = time.monotonic() + 120
        while queue.llen("dramatiq:documents") and time.monotonic() < deadline:
            time.sleep(0.2)
    time.sleep(2)


def _upload_all(base: str, texts: list[str], clients: int) -> tuple[list[str], float]:
    started = time.perf_counter()
    ticket = iter(range(len(texts)))
    lock = threading.Lock()
    job_ids: list[str] = [""] * len(texts)

    def client() -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            while True:
                with lock:
                    i = next(ticket, None)
                if i is None:
                    return
                response = http.post("/api/classify_file", files={"file": (f"d{i}.txt", texts[i].encode())})
                response.raise_for_status()
                job_ids[i] = response.json()["job_id"]

    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return job_ids, started


def _wait_until_done(base: str) -> None:
    with httpx.Client(base_url=base, timeout=60) as http:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            waiting = sum(
                http.get("/api/jobs", params={"status": status, "limit": 1}).json()["total"]
                for status in ("PENDING", "PROCESSING")
            )
            if not waiting:
                return
            time.sleep(0.5)


def _check(database_url: str, job_ids: list[str]) -> str:
    jobs = _jobs(database_url, job_ids)
    completed = sum(job["status"] == "COMPLETED" for job in jobs)
    once = sum(job["predictions"] == 1 for job in jobs)
    return f"{completed}/{len(job_ids)} COMPLETED, {once} with exactly one prediction"


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


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")


def _wait_for(url: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


def _open_console(url: str) -> bool:
    """Load the console once in headless Chromium (its script runs for a real session)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        return False
    profile = tempfile.mkdtemp(prefix="heron-load-chromium-")
    try:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=30000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return True


def _tree(root: int) -> list[int]:
    """The process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _pss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _name(pid: int) -> str:
    with contextlib.suppress(OSError):
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        words = [part.decode(errors="replace") for part in command if part]
        if "streamlit" in words:
            return "console"
        if "core.extract.isolation" in words:
            return "extraction"
        if "up" in words or "api" in words:
            return "API"
        # `heron worker --processes N` becomes Dramatiq's main process, which forks the workers
        if "worker" in words or "dramatiq" in words:
            return "worker"
        return Path(words[0]).name if words else str(pid)
    return str(pid)


if __name__ == "__main__":
    main()
