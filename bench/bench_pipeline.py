"""End-to-end throughput of the embedded default: `heron api` on SQLite + the in-process queue.

Starts a real `heron api` on a fresh data dir, uploads N text documents from C concurrent HTTP
clients, polls every job to COMPLETED and prints documents/s and upload-to-result latency.
The baseline printed beside it is the routed model alone, in-process and batched, on the same texts.
Each upload is one job and each job one actor call, so the transformer tier sees batches of one here.

    .venv/bin/python bench/bench_pipeline.py [--docs 300] [--clients 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.server import heron_api  # noqa: E402
from core.corpus import read_text_corpus  # noqa: E402
from core.runtime import open_runtime  # noqa: E402
from core.settings import load_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    corpus = read_text_corpus(ROOT / "data" / "starter")
    # Unique texts so every upload is a new document (no deduplication shortcut).
    texts = [f"{corpus[i % len(corpus)].text}\n\nRef {i}" for i in range(args.docs)]
    data_dir = Path(tempfile.mkdtemp(prefix="heron-bench-"))

    runtime = open_runtime(load_settings(data_dir=data_dir, database_url="", broker_url=""))
    model = runtime.models.active(runtime.engine)[1]
    started = time.perf_counter()
    model.classify(texts, runtime.policy, encoder=runtime.encoder)
    baseline = len(texts) / (time.perf_counter() - started)
    runtime.close()

    with heron_api(HERON_DATA_DIR=str(data_dir)) as base:

        def run(i: int) -> float:
            with httpx.Client(base_url=base, timeout=60) as c:
                t0 = time.perf_counter()
                job_id = c.post(
                    "/api/classify_file", files={"file": (f"d{i}.txt", texts[i].encode())}
                ).json()["job_id"]
                while c.get(f"/api/jobs/{job_id}").json()["status"] not in ("COMPLETED", "FAILED"):
                    time.sleep(0.02)
                return time.perf_counter() - t0

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            latencies = sorted(pool.map(run, range(args.docs)))
        elapsed = time.perf_counter() - started

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"baseline  routed model alone, in-process, one batch: {baseline:,.0f} docs/s")
    print(
        f"pipeline  {args.docs} uploads, {args.clients} clients, embedded SQLite + in-process queue: "
        f"{args.docs / elapsed:,.1f} docs/s; upload->COMPLETED p50 {pct(0.5):.0f} ms, "
        f"p95 {pct(0.95):.0f} ms, p99 {pct(0.99):.0f} ms"
    )


if __name__ == "__main__":
    main()
