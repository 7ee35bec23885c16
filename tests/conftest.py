"""Shared fixtures: real SQLite databases, the real in-process broker, the starter model."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.runtime import Runtime, open_runtime
from core.settings import Settings, load_settings

# Embeddings are a pure function of the text, so every Heron a test session starts (subprocesses
# included) shares one cache: the starter corpus is embedded once per session, not once per test.
SHARED_CACHE = Path(
    os.environ.setdefault("HERON_CACHE_DIR", str(Path(__file__).resolve().parents[1] / "var" / "test-cache"))
)


def pytest_configure(config: pytest.Config) -> None:
    """With several test processes (``make test`` runs two, pytest-xdist), the parent fills the
    shared cache first (MiniLM's converted network and distilled word vectors, the starter corpus'
    embeddings: ~50 s cold), so the processes do not each build it at the same time."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="heron-warm-") as scratch:
            open_runtime(make_settings(Path(scratch))).close()
        # Each test process (and every Heron it starts) computes on one core: two processes whose
        # inference and BLAS threads each take every core spin against each other.
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "HERON_TORCH_THREADS"):
            os.environ.setdefault(name, "1")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the groups into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Test processes take whole files (module fixtures such as a running server are built once),
    and every file that uses PostgreSQL, Redis or RabbitMQ runs in the same process, one after
    another: they flush Redis and listen on the same channels (``--dist loadgroup``)."""

    def uses_services(item: pytest.Item) -> bool:
        reasons = (str(mark.kwargs.get("reason")) for mark in item.iter_markers("skipif"))
        return any(reason.startswith(SERVICES_SILENT) for reason in reasons)

    services = {item.module.__name__ for item in items if uses_services(item)}
    for item in items:
        module = item.module.__name__
        item.add_marker(pytest.mark.xdist_group("services" if module in services else module))


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Bytes parameters are named by their size, not their content: random bytes, or a ZIP stamped
    with the time, would differ between the test processes, which then refuse to start (pytest-xdist
    compares the tests each collected)."""
    if isinstance(val, bytes | bytearray):
        return f"{len(val)}-bytes"
    return None


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return load_settings(data_dir=data_dir, database_url="", broker_url="", **overrides)


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """One prepared Heron (migrated, starter model trained) shared by the whole session."""
    opened = open_runtime(make_settings(tmp_path_factory.mktemp("heron")))
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def starter_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """A Heron with the untouched starter model (no test adds industries or retrains it)."""
    opened = open_runtime(make_settings(tmp_path_factory.mktemp("starter")))
    yield opened
    opened.close()


@pytest.fixture
def prepared_dir(starter_runtime: Runtime, tmp_path: Path) -> Path:
    """A data directory whose database already holds the migrated schema and the starter model
    (a copy of ``starter_runtime``'s): a fresh Heron without training the starter model again."""
    return copy_prepared(starter_runtime, tmp_path / "prepared")


@pytest.fixture
def heron(prepared_dir: Path) -> Iterator[Runtime]:
    """A fresh Heron of the test's own (on :func:`prepared_dir`), without workers; closed after."""
    runtime = open_runtime(make_settings(prepared_dir))
    yield runtime
    runtime.close()


def copy_prepared(starter_runtime: Runtime, data_dir: Path) -> Path:
    """Make ``data_dir`` a prepared Heron: a copy of ``starter_runtime``'s database."""
    import sqlite3

    data_dir.mkdir(parents=True)
    source = sqlite3.connect(starter_runtime.settings.data_dir / "heron.db")
    target = sqlite3.connect(data_dir / "heron.db")
    with source, target:
        source.backup(target)
    source.close()
    target.close()
    return data_dir


@pytest.fixture(autouse=True)
def _workers_serve_the_shared_runtime(request: pytest.FixtureRequest) -> None:
    """A test on the shared API gets worker threads that run the shared runtime's jobs.

    A process's workers run the jobs of the first runtime that started them. Another object on the
    same database (a console opened by a UI test, a copy with other settings) may have been first
    in this process, and its workers would then run the shared runtime's jobs with its settings
    (seen: a synthesis task failing with llm_not_configured, depending on which tests xdist had
    given the process before)."""
    if "client" not in request.fixturenames:
        return
    from workers import dispatch

    shared = request.getfixturevalue("runtime")
    request.getfixturevalue("client")
    if dispatch.serving() is not shared:
        dispatch.stop()
        dispatch.start(shared)


@pytest.fixture(scope="session")
def client(runtime: Runtime) -> Iterator:
    """The real API on the shared runtime, with the real in-process broker and worker threads."""
    from litestar.testing import TestClient

    from api.app import create_app

    with TestClient(create_app(runtime=runtime), timeout=30) as test_client:
        yield test_client


@contextmanager
def own_workers() -> Iterator[None]:
    """Let a Heron with a database of its own start this process's in-process workers.

    A process's workers run the jobs of the first runtime that started them, and an app given a
    runtime (as tests give it) leaves them running when it stops. So: stop whatever runs, let the
    block start its own, stop those after it, and give the earlier runtime its workers back.
    """
    from workers import dispatch

    earlier = dispatch.serving()
    dispatch.stop()
    try:
        yield
    finally:
        dispatch.stop()
        if earlier is not None:
            dispatch.start(earlier)


def wait_for_job(client, job_id: str, timeout: float = 30.0) -> dict:  # type: ignore[no-untyped-def]
    """The job once it has ended (or as it is after ``timeout``), waiting as clients do: ``?wait=``."""
    deadline = time.monotonic() + timeout
    while True:
        wait = max(0.0, min(60.0, deadline - time.monotonic()))
        job = client.get(f"/api/jobs/{job_id}", params={"wait": wait}).json()
        if job["status"] in ("COMPLETED", "FAILED") or time.monotonic() >= deadline:
            return job


def wait_for_task(client, task_id: str, timeout: float = 120.0) -> dict:  # type: ignore[no-untyped-def]
    """Poll a background task over the API until it ends (or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while True:
        task = client.get(f"/api/tasks/{task_id}").json()
        if task["status"] in ("SUCCEEDED", "FAILED", "CANCELLED") or time.monotonic() > deadline:
            return task
        time.sleep(0.1)


def classify_now(runtime: Runtime, text: str, filename: str = "document.txt") -> str:
    """Upload ``text`` and classify it in this thread, as a worker does (no queue); the job id."""
    from core.services.documents import submit_batch
    from core.services.jobs import process_job

    submission = submit_batch(
        engine=runtime.engine,
        blobs=runtime.blobs,
        chunks=[text.encode()],
        filename=filename,
        max_bytes=runtime.settings.max_upload_bytes,
        submitted_by="test",
        limits=runtime.extraction_limits,
    )
    job_id = submission.jobs[0].id
    process_job(
        engine=runtime.engine,
        blobs=runtime.blobs,
        models=runtime.models,
        job_id=job_id,
        policy=runtime.policy,
        lease_seconds=runtime.settings.job_lease_seconds,
        max_attempts=runtime.settings.max_attempts,
        limits=runtime.extraction_limits,
    )
    return job_id


class SentWork:
    """Core's WorkSender for use cases run without a queue: it keeps what it was asked to send."""

    def __init__(self) -> None:
        self.jobs: list[str] = []
        self.tasks: list[tuple[str, str]] = []

    def send_classify(self, job_id: str) -> None:
        self.jobs.append(job_id)

    def send_task(self, task_id: str, kind: str) -> None:
        self.tasks.append((task_id, kind))


SERVICE_PORTS = {"PostgreSQL": 5432, "Redis": 6379, "RabbitMQ": 5672}
# The PostgreSQL every machine runs (trust auth); tests needing it use their own schema or tables.
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A PostgreSQL schema of the test's own (named ``prefix`` + random): yields a database URL whose
    tables live in it, and drops it afterwards (:func:`drop_schema`)."""
    import uuid

    from sqlalchemy import text

    from core.db import make_engine

    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        drop_schema(schema)


def drop_schema(schema: str, wait_seconds: int = 20) -> None:
    """Drop a test's PostgreSQL schema without waiting forever for whoever still holds its tables.

    A process a test started and did not end (or a connection left inside a transaction) would
    make ``DROP SCHEMA`` wait without end and the test time out in its teardown, naming nobody.
    Here the drop waits ``wait_seconds``; then the holders are named in a warning, ended, and the
    drop retried.
    """
    import warnings

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from core.db import make_engine

    admin = make_engine(POSTGRES)
    drop = text(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    try:
        try:
            with admin.begin() as connection:
                connection.execute(text(f"SET LOCAL lock_timeout = '{wait_seconds}s'"))
                connection.execute(drop)
            return
        except OperationalError:
            pass
        holders = text(
            "SELECT DISTINCT a.pid, a.application_name, a.state, a.backend_start, a.xact_start, a.query"
            " FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE n.nspname = :schema AND a.pid <> pg_backend_pid()"
        )
        with admin.begin() as connection:
            found = connection.execute(holders, {"schema": schema}).all()
            for row in found:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": row.pid})
        warnings.warn(
            f"schema {schema} was still held at teardown, by: {[tuple(r) for r in found]}", stacklevel=2
        )
        with admin.begin() as connection:
            connection.execute(drop)
    finally:
        admin.dispose()


def service_answers(name: str) -> bool:
    """Whether the named service accepts a TCP connection on 127.0.0.1 (its usual port)."""
    try:
        with socket.create_connection(("127.0.0.1", SERVICE_PORTS[name]), timeout=1.0):
            return True
    except OSError:
        return False


def needs_services(*names: str) -> pytest.MarkDecorator:
    """Skip unless every named service answers on 127.0.0.1, saying which does not (CI or not)."""
    silent = [f"{name} (:{SERVICE_PORTS[name]})" for name in names if not service_answers(name)]
    return pytest.mark.skipif(bool(silent), reason=f"{SERVICES_SILENT} {', '.join(silent)}")


SERVICES_SILENT = "nothing answers on 127.0.0.1 for"
