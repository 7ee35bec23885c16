"""The same fuzzing as test_api_fuzz, against the scaled shape: `heron api` on PostgreSQL and Redis,
with a worker process beside it. The embedded shape's fuzzing never saw the scaled shape's own
paths (the one-statement upload, the background sender): an upload while Redis was unreachable
answered 500 there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.server import heron_api
from core.runtime import open_runtime
from core.settings import load_settings
from tests.conftest import needs_services, postgres_schema
from tests.integration.test_api_fuzz import every_upload_finishes, no_server_error

pytestmark = needs_services("PostgreSQL", "Redis")

ROOT = Path(__file__).resolve().parents[2]
REDIS = "redis://127.0.0.1:6379/9"  # a database of its own: no other test's consumer takes its work


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_schema("heron_fuzz") as url:
        data_dir = tmp_path_factory.mktemp("fuzz-scaled")
        # Migrated and the starter model trained once here; the API and the worker find it ready.
        open_runtime(load_settings(data_dir=data_dir, database_url=url, broker_url="")).close()
        settings = {
            "HERON_DATA_DIR": str(data_dir),
            "HERON_DATABASE_URL": url,
            "HERON_BROKER_URL": REDIS,
            "HERON_MAX_UPLOAD_MB": "2",
            "HERON_WORKER_THREADS": "1",
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "workers.entry", "--processes", "1", "--threads", "1"],
            env={**os.environ, **settings, "HERON_LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1"},
            cwd=ROOT,
            start_new_session=True,
        )
        try:
            with heron_api(**settings) as base:
                yield base
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)


def test_no_request_the_schema_allows_or_forbids_gets_a_server_error_when_scaled(server: str) -> None:
    no_server_error(server)


def test_every_fuzzed_upload_finishes_when_scaled(server: str) -> None:
    every_upload_finishes(server)


def test_values_postgresql_cannot_take_are_the_requests_fault(server: str) -> None:
    import httpx

    with httpx.Client(base_url=server, timeout=30) as client:
        # An id beyond the INTEGER columns, a NUL character in a filter: SQLite takes both, and on
        # PostgreSQL both were internal errors
        too_large = client.post("/api/models/2147483648/activate")
        nul = client.get("/api/examples", params={"label": "legal\x00"})
        fine = client.get("/api/examples", params={"label": "legal", "limit": 1})
    assert too_large.status_code == 422 and too_large.json()["code"], too_large.text
    assert nul.status_code == 422 and nul.json()["code"] == "invalid", nul.text
    assert fine.status_code == 200
