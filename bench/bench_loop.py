"""The human-in-the-loop path over real HTTP: approve -> new model version latency, and job polling.

Starts `heron api` (embedded SQLite + in-process queue) on a fresh data dir, uploads documents of a
new industry, corrects and bulk-approves them, and times the approval until the incremental
version is stored (and whether it was promoted); then measures GET /api/jobs/{id} throughput from
8 concurrent clients for 5 seconds.

    .venv/bin/python bench/bench_loop.py
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.server import heron_api  # noqa: E402
from tests.documents import REAL_ESTATE  # noqa: E402


def main() -> None:
    environment = {
        "HERON_DATA_DIR": tempfile.mkdtemp(prefix="heron-loop-"),
        "HERON_CACHE_DIR": str(ROOT / "var" / "cache"),
        "HF_HUB_OFFLINE": "1",
    }
    with heron_api(**environment) as base:
        with httpx.Client(base_url=base, timeout=60) as client:
            client.post(
                "/api/industries",
                json={"industry_name": "housing", "description": "Homes for sale and rent."},
            )
            ids = []
            for i, text in enumerate(REAL_ESTATE * 2):
                job = client.post(
                    "/api/classify_file?wait=30", files={"file": (f"d{i}.txt", f"{text} #{i}".encode())}
                ).json()
                ids.append(
                    client.post(
                        "/api/feedback", json={"job_id": job["job_id"], "corrected_classification": "housing"}
                    ).json()["feedback_id"]
                )
            before = {m["id"] for m in client.get("/api/models").json()["items"]}
            started = time.perf_counter()
            client.post("/api/feedback/approve", json={"ids": ids})
            new = []
            while not new and time.perf_counter() - started < 300:
                time.sleep(0.1)
                new = [m for m in client.get("/api/models").json()["items"] if m["id"] not in before]
            latency = time.perf_counter() - started
            job_id = job["job_id"]
        count = 0
        lock = threading.Lock()
        stop = time.perf_counter() + 5

        def poll() -> None:
            nonlocal count
            with httpx.Client(base_url=base, timeout=10) as c:
                n = 0
                while time.perf_counter() < stop:
                    c.get(f"/api/jobs/{job_id}")
                    n += 1
            with lock:
                count += n

        threads = [threading.Thread(target=poll) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    status = new[0]["status"] if new else "none"
    print(
        f"approve {len(ids)} corrections -> new incremental version stored in {latency:.2f} s "
        f"(status: {status})"
    )
    print(f"GET /api/jobs/{{id}} from 8 clients for 5 s: {count / 5:.0f} requests/s")


if __name__ == "__main__":
    main()
