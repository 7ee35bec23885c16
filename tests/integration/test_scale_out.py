"""Scale-out on the real services: API and workers in separate processes on Redis or RabbitMQ and
PostgreSQL, with workers killed, messages duplicated, the broker restarted and the database cut.

They need PostgreSQL and Redis (and RabbitMQ for its tests) on 127.0.0.1: they run wherever those
answer on their ports, CI or not, and skip saying which one does not otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dramatiq
import httpx
import pytest
from sqlalchemy import func, text
from sqlmodel import select

from core.db import make_engine, session_scope
from core.db.tables import Job, ModelVersion, Prediction
from core.runtime import Runtime, open_runtime
from core.services.documents import submit_batch
from core.settings import load_settings
from tests.conftest import POSTGRES, drop_schema, needs_services
from tests.documents import FINANCE, LEGAL, OCR_LINES, scanned_pdf_bytes
from tests.proxy import TcpProxy
from workers.sender import CLASSIFY_ACTOR, CLASSIFY_QUEUE

pytestmark = needs_services("PostgreSQL", "Redis")
needs_rabbitmq = needs_services("RabbitMQ")

ROOT = Path(__file__).resolve().parents[2]
REDIS = "redis://127.0.0.1:6379/7"
REDIS_OWN = "redis://127.0.0.1:6379/8"  # for a test that counts the messages in a queue
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/%2F"
LEASE_SECONDS = 6
BROKERS_UNDER_TEST = [u for u in os.environ.get("HERON_TEST_BROKERS", f"{REDIS} {RABBITMQ}").split()]


@dataclass
class Cluster:
    """One PostgreSQL schema and data directory that the test process and every worker share."""

    database_url: str
    data_dir: Path
    runtime: Runtime

    def environment(self, broker_url: str, database_url: str | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "HERON_DATA_DIR": str(self.data_dir),
            "HERON_DATABASE_URL": database_url or self.database_url,
            "HERON_BROKER_URL": broker_url,
            "HERON_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
            "HERON_WORKER_THREADS": "1",
            "HERON_LOG_LEVEL": os.environ.get("HERON_TEST_WORKER_LOG_LEVEL", "WARNING"),
            "HF_HUB_OFFLINE": "1",
        }

    def worker(self, broker_url: str, database_url: str | None = None) -> subprocess.Popen:
        """A `heron worker`-equivalent process group (the Dramatiq CLI on workers.entry)."""
        return subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "workers.entry", "--processes", "1", "--threads", "1"],
            env=self.environment(broker_url, database_url),
            cwd=ROOT,
            start_new_session=True,
        )

    def submit(self, data: bytes, name: str) -> str:
        submission = submit_batch(
            engine=self.runtime.engine,
            blobs=self.runtime.blobs,
            chunks=[data],
            filename=name,
            max_bytes=self.runtime.settings.max_upload_bytes,
        )
        return submission.jobs[0].id

    def status(self, job_id: str) -> str:
        with session_scope(self.runtime.engine) as session:
            job = session.get(Job, job_id)
            return job.status if job.status != "FAILED" else f"FAILED {job.error_code}: {job.error_message}"

    def predictions(self, job_id: str) -> int:
        with session_scope(self.runtime.engine) as session:
            return session.exec(select(func.count()).where(Prediction.job_id == job_id)).one()

    def wait(self, job_ids: list[str], statuses: set[str], timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            seen = {job_id: self.status(job_id) for job_id in job_ids}
            if {status.split()[0] for status in seen.values()} <= statuses or time.monotonic() > deadline:
                return seen
            time.sleep(0.25)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    schema = f"heron_scale_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    data_dir = tmp_path_factory.mktemp("cluster")
    # Prepared once here (migrations + starter model on PostgreSQL); workers find it ready.
    runtime = open_runtime(load_settings(data_dir=data_dir, database_url=url, broker_url=""))
    _flush_brokers()
    yield Cluster(database_url=url, data_dir=data_dir, runtime=runtime)
    runtime.close()
    drop_schema(schema)


def _flush_brokers() -> None:
    import redis

    redis.Redis.from_url(REDIS).flushdb()


@contextlib.contextmanager
def _broker(broker_url: str) -> Iterator[dramatiq.Broker]:
    """A connection of this test process to the external broker, its classify queue declared."""
    if broker_url.startswith("redis"):
        from dramatiq.brokers.redis import RedisBroker

        broker: dramatiq.Broker = RedisBroker(url=broker_url)
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=broker_url)
    broker.declare_queue(CLASSIFY_QUEUE)
    try:
        yield broker
    finally:
        broker.close()


def _send(broker_url: str, job_ids: list[str], copies: int = 1) -> None:
    """Put classify messages on the external broker, as `heron api` would (without its process)."""
    with _broker(broker_url) as broker:
        for job_id in job_ids:
            for _ in range(copies):
                broker.enqueue(
                    dramatiq.Message(
                        queue_name=CLASSIFY_QUEUE,
                        actor_name=CLASSIFY_ACTOR,
                        args=(job_id,),
                        kwargs={},
                        options={},
                    )
                )


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    process.wait(timeout=30)


def test_a_worker_killed_mid_job_leaves_the_job_to_another_worker(cluster: Cluster) -> None:
    # Given a slow job (four scanned pages to OCR) that a worker has started
    job_id = cluster.submit(scanned_pdf_bytes(*[OCR_LINES] * 4), "scan.pdf")
    _send(REDIS, [job_id])
    first = cluster.worker(REDIS)
    try:
        assert cluster.wait([job_id], {"PROCESSING", "COMPLETED", "FAILED"}, 90)[job_id] == "PROCESSING"
    finally:
        # When that worker's machine dies (SIGKILL to every process of the worker)
        _stop(first, signal.SIGKILL)
    assert cluster.status(job_id) == "PROCESSING"
    # Then another worker finishes the job after its lease ran out, with exactly one prediction
    second = cluster.worker(REDIS)
    try:
        assert cluster.wait([job_id], {"COMPLETED", "FAILED"}, 120)[job_id] == "COMPLETED"
    finally:
        _stop(second)
    assert cluster.predictions(job_id) == 1
    with session_scope(cluster.runtime.engine) as session:
        assert session.get(Job, job_id).attempts >= 2


@needs_rabbitmq
def test_the_same_message_twice_gives_one_result_on_redis_and_rabbitmq(cluster: Cluster) -> None:
    for broker_url in (REDIS, RABBITMQ):
        # Given jobs whose messages are each delivered twice
        job_ids = [
            cluster.submit(f"{text} ({broker_url[:5]} {i})".encode(), f"d{i}.txt")
            for i, text in enumerate([FINANCE, LEGAL] * 3)
        ]
        _send(broker_url, job_ids, copies=2)
        worker = cluster.worker(broker_url)
        try:
            # Then every job completes once, with one prediction
            assert set(cluster.wait(job_ids, {"COMPLETED", "FAILED"}, 120).values()) == {"COMPLETED"}
            time.sleep(2)  # let the duplicates run too
        finally:
            _stop(worker)
        assert [cluster.predictions(job_id) for job_id in job_ids] == [1] * len(job_ids), broker_url


@needs_rabbitmq
def test_a_burst_of_uploads_while_every_worker_is_busy_sends_one_message(cluster: Cluster) -> None:
    from bench.server import heron_api

    # Redis: a database of its own, so no consumer left by another test can take the message
    for broker_url in (REDIS_OWN, RABBITMQ):
        _flush_queue(broker_url)
        environment = cluster.environment(broker_url)
        settings = {k: v for k, v in environment.items() if k.startswith("HERON_")}
        with heron_api(**settings) as base, httpx.Client(base_url=base, timeout=30) as client:
            # Given no worker free to take a message, when 12 documents are uploaded through the API
            job_ids = [
                client.post(
                    "/api/classify_file",
                    files={"file": (f"b{i}.txt", f"{text} (burst {broker_url[:5]} {i})".encode())},
                ).json()["job_id"]
                for i, text in enumerate([FINANCE, LEGAL] * 6)
            ]
        # Then one classify message waits in the broker, not one per upload
        assert _waiting_classify_messages(broker_url) == 1, (broker_url, _consumers(broker_url))
        # And when a worker starts, that one message's drain completes them all, once each
        worker = cluster.worker(broker_url)
        try:
            assert set(cluster.wait(job_ids, {"COMPLETED", "FAILED"}, 120).values()) == {"COMPLETED"}
        finally:
            _stop(worker)
        assert [cluster.predictions(job_id) for job_id in job_ids] == [1] * len(job_ids), broker_url


def _flush_queue(broker_url: str) -> None:
    with _broker(broker_url) as broker:
        broker.flush(CLASSIFY_QUEUE)


def _waiting_classify_messages(broker_url: str) -> int:
    with _broker(broker_url) as broker:
        if broker_url.startswith("redis"):
            return broker.client.llen(f"{broker.namespace}:{CLASSIFY_QUEUE}")
        return broker.get_queue_message_counts(CLASSIFY_QUEUE)[0]


def _consumers(broker_url: str) -> str:
    """Who else consumes (for a failure's message): Dramatiq's Redis heartbeats, RabbitMQ's count."""
    with _broker(broker_url) as broker:
        if broker_url.startswith("redis"):
            return f"heartbeats: {broker.client.zcard(f'{broker.namespace}:__heartbeats__')}"
        reply = broker.channel.queue_declare(queue=CLASSIFY_QUEUE, passive=True)
        return f"consumers: {reply.method.consumer_count}"


def test_messages_lost_in_a_broker_restart_are_sent_again_from_the_database(cluster: Cluster) -> None:
    import redis

    # Given jobs waiting in Redis while no worker runs
    job_ids = [
        cluster.submit(f"{text} (restart {i})".encode(), f"r{i}.txt")
        for i, text in enumerate([FINANCE, LEGAL] * 3)
    ]
    _send(REDIS, job_ids)
    # When Redis restarts (it keeps nothing on disk: the messages are gone)
    _restart_redis()
    assert not redis.Redis.from_url(REDIS).keys("dramatiq*")
    # Then a worker's sweeper re-sends them from the database and they all complete, once
    worker = cluster.worker(REDIS)
    try:
        assert set(cluster.wait(job_ids, {"COMPLETED", "FAILED"}, 120).values()) == {"COMPLETED"}
    finally:
        _stop(worker)
    assert [cluster.predictions(job_id) for job_id in job_ids] == [1] * len(job_ids)


def _restart_redis() -> None:
    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False, capture_output=True)
    # The command the machine itself starts Redis with.
    command = "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --appendonly no"
    command += " --dir /var/lib/redis --logfile /var/log/redis/ci.log"
    subprocess.run([*command.split(), "--save", ""], check=True)
    for _ in range(100):
        if subprocess.run(["redis-cli", "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
            return
        time.sleep(0.1)
    raise AssertionError("Redis did not come back")


@needs_rabbitmq
def test_a_rabbitmq_restart_loses_no_job_and_the_running_worker_carries_on(cluster: Cluster) -> None:
    # Given jobs whose messages wait in RabbitMQ while no worker runs
    waiting = [
        cluster.submit(f"{text} (rabbit waiting {i})".encode(), f"w{i}.txt")
        for i, text in enumerate([FINANCE, LEGAL] * 2)
    ]
    _send(RABBITMQ, waiting)
    # When RabbitMQ restarts
    _restart_rabbitmq()
    # Then a worker started afterwards completes each once (the durable queue kept the messages;
    # its sweeper re-sends them too, and a duplicate finds nothing left to do)
    worker = cluster.worker(RABBITMQ)
    try:
        assert set(cluster.wait(waiting, {"COMPLETED", "FAILED"}, 120).values()) == {"COMPLETED"}
        # When RabbitMQ restarts again under the running worker
        _restart_rabbitmq()
        later = [
            cluster.submit(f"{text} (rabbit later {i})".encode(), f"l{i}.txt")
            for i, text in enumerate([FINANCE, LEGAL] * 2)
        ]
        _send(RABBITMQ, later)
        # Then the same worker reconnects (or its sweeper re-sends) and completes the new jobs, once
        assert set(cluster.wait(later, {"COMPLETED", "FAILED"}, 120).values()) == {"COMPLETED"}
        assert worker.poll() is None, "the worker died with the broker"
    finally:
        _stop(worker)
    assert [cluster.predictions(job_id) for job_id in waiting + later] == [1] * 8


def _restart_rabbitmq() -> None:
    """Stop and start the RabbitMQ application (the node's connections all drop)."""
    for action in ("stop_app", "start_app"):
        subprocess.run(["rabbitmqctl", action], check=True, capture_output=True, timeout=120)
    subprocess.run(["rabbitmqctl", "await_startup"], check=True, capture_output=True, timeout=120)


def test_while_the_database_is_unreachable_the_api_answers_503_and_nothing_is_lost(cluster: Cluster) -> None:
    from bench.server import heron_api

    proxy = TcpProxy(("127.0.0.1", 5432))
    schema_option = cluster.database_url.split("?", 1)[1]
    through_proxy = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/test?{schema_option}"
    environment = cluster.environment(REDIS, through_proxy)
    worker = cluster.worker(REDIS, through_proxy)
    try:
        settings = {k: v for k, v in environment.items() if k.startswith("HERON_")}
        with heron_api(**settings) as base, httpx.Client(base_url=base, timeout=30) as client:
            # Given uploads accepted just before the database becomes unreachable
            accepted = [
                client.post(
                    "/api/classify_file", files={"file": (f"o{i}.txt", f"{text} (outage {i})".encode())}
                )
                for i, text in enumerate([FINANCE, LEGAL])
            ]
            assert {response.status_code for response in accepted} == {200}
            proxy.cut()
            # When clients call while it is down, they get 503 with a code, not a 500
            for response in (
                client.get("/api/jobs"),
                client.post("/api/classify_file", files={"file": ("late.txt", b"Quarterly revenue rose.")}),
            ):
                assert (response.status_code, response.json()["code"]) == (503, "unavailable"), response.text
            assert client.get("/ready").status_code == 503
            time.sleep(3)
            proxy.restore()
            # Then once it is back, every accepted job completes (workers retried or were re-sent)
            job_ids = [response.json()["job_id"] for response in accepted]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                statuses = {client.get(f"/api/jobs/{job_id}").json()["status"] for job_id in job_ids}
                if statuses <= {"COMPLETED", "FAILED"}:
                    break
                time.sleep(0.5)
            assert statuses == {"COMPLETED"}
            assert client.get("/ready").status_code == 200
    finally:
        _stop(worker)
        proxy.close()
    assert [cluster.predictions(job_id) for job_id in job_ids] == [1] * len(job_ids)


def test_two_training_requests_on_two_machines_make_one_run(cluster: Cluster) -> None:
    from core.db.tables import Lease
    from core.errors import Conflict
    from core.services.training import TRAINING_LEASE, train_full

    with session_scope(cluster.runtime.engine) as session:
        before = session.exec(select(func.count()).select_from(ModelVersion)).one()
    # Given another machine (a separate process on the same PostgreSQL) running a full retrain
    other = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "train", "--full"],
        env=cluster.environment(""),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with session_scope(cluster.runtime.engine) as session:
            if session.get(Lease, TRAINING_LEASE) is not None:
                break
        time.sleep(0.02)
    # When this machine asks for a retrain while that one runs
    rt = cluster.runtime
    with pytest.raises(Conflict):
        train_full(engine=rt.engine, policy=rt.policy, encoder=rt.training_encoder)
    # Then only the other machine's run produces a version
    out, err = other.communicate(timeout=600)
    assert other.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["version_id"]
    with session_scope(cluster.runtime.engine) as session:
        assert session.exec(select(func.count()).select_from(ModelVersion)).one() == before + 1


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _worker_processes(supervisor: int) -> dict[int, list[int]]:
    """Each Dramatiq main `heron worker` runs, with the processes it started."""
    return {main: _children(main) for main in _children(supervisor)}


def test_heron_worker_keeps_its_processes_running_when_one_is_killed(cluster: Cluster) -> None:
    # Given `heron worker --processes 2` on Redis, both processes up
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "worker", "--processes", "2"],
        env=cluster.environment(REDIS),
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (len(mains := _worker_processes(supervisor.pid)) == 2 and all(mains.values())):
            assert time.monotonic() < deadline and supervisor.poll() is None, mains
            time.sleep(0.5)
        # When the OOM killer takes one of its worker processes
        victim_main, victims = next(iter(mains.items()))
        os.kill(victims[0], signal.SIGKILL)
        # Then the other keeps working and the dead one is replaced: a job sent now completes,
        # and two processes run again (Dramatiq stopped them all, and nothing started them again)
        job_id = cluster.submit(FINANCE.encode() + b" After the kill.", "after-kill.txt")
        _send(REDIS, [job_id])
        assert cluster.wait([job_id], {"COMPLETED", "FAILED"}, 90)[job_id] == "COMPLETED"
        deadline = time.monotonic() + 60
        while not (
            len(mains := _worker_processes(supervisor.pid)) == 2
            and victim_main not in mains
            and all(mains.values())
        ):
            assert time.monotonic() < deadline and supervisor.poll() is None, mains
            time.sleep(0.5)
        running = [pid for main, workers in mains.items() for pid in (main, *workers)]
    finally:
        # And SIGTERM stops it all cleanly, its processes included
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(timeout=60)
    assert code == 0
    assert not [pid for pid in running if Path(f"/proc/{pid}").exists()]
