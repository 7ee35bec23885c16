"""Schemathesis against a real `heron api` process: whatever the OpenAPI schema allows, no 5xx,
and every upload it made ends COMPLETED or FAILED (no stuck job)."""

from __future__ import annotations

import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from bench.server import heron_api
from core.runtime import Runtime
from tests.conftest import copy_prepared

# Valid and invalid requests per operation and mode: over 500 requests in all across the schema.
EXAMPLES_PER_OPERATION = 10


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, starter_runtime: Runtime):  # type: ignore[no-untyped-def]
    # Its own data directory (the fuzzer may activate model versions and retire industries), on a
    # copy of a prepared database: the starter model is not trained again.
    data_dir = copy_prepared(starter_runtime, tmp_path_factory.mktemp("fuzz") / "data")
    with heron_api(HERON_DATA_DIR=str(data_dir), HERON_MAX_UPLOAD_MB="2") as base:
        yield base


def test_no_request_the_schema_allows_or_forbids_gets_a_server_error(server: str) -> None:
    no_server_error(server)


def test_every_fuzzed_upload_finishes(server: str) -> None:
    every_upload_finishes(server)


def no_server_error(server: str) -> None:
    """Fuzz every operation of the running API; fail on any 5xx or any error without a code."""
    # Given the schema the running API serves
    schema = schemathesis.openapi.from_url(f"{server}/docs/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    # When every operation gets valid (positive) and schema-violating (negative) requests
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.generate],
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case) -> None:  # type: ignore[no-untyped-def]
                response = case.call(base_url=server, timeout=60)
                # Then none is a server error, and every error is JSON with a stable code
                if response.status_code >= 500:
                    where = f"{case.method} {case.formatted_path}"
                    failures.append(f"{where} -> {response.status_code}: {response.text[:300]}")
                elif response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                    body = response.json()
                    if not {"code", "message"} <= set(body):
                        failures.append(f"{case.method} {case.formatted_path}: error without a code: {body}")

            try:
                call()
            except Unsatisfiable:
                # An operation without parameters or body has no way to be called wrongly.
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert not failures, "\n".join(failures[:20])


def every_upload_finishes(server: str) -> None:
    """Wait for the jobs the fuzzing left; fail if any is still PENDING or PROCESSING after 2 min."""
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=server, timeout=10) as client:
        while True:
            waiting = sum(
                client.get("/api/jobs", params={"status": status, "limit": 1}).json()["total"]
                for status in ("PENDING", "PROCESSING")
            )
            if waiting == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert waiting == 0, "jobs are stuck after the fuzz run"
        assert client.get("/ready").status_code == 200
