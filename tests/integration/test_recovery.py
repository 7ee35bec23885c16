"""The database is the source of truth: a job whose message was lost still completes."""

from __future__ import annotations

import time
from datetime import timedelta

from core.db import session_scope
from core.db.tables import Job, JobStatus, Task, utcnow
from core.services.documents import submit_upload
from core.services.training import request_training
from tests.conftest import wait_for_job, wait_for_task
from tests.documents import LEGAL, TECHNOLOGY
from workers import dispatch


def test_a_job_whose_message_was_lost_is_resent_and_completes(client, runtime) -> None:  # type: ignore[no-untyped-def]
    # Given an upload whose message never reached the queue (its process died right after the commit)
    job = submit_upload(
        engine=runtime.engine,
        blobs=runtime.blobs,
        chunks=[LEGAL.encode()],
        filename="lost.txt",
        max_bytes=runtime.settings.max_upload_bytes,
    )
    # When the sweeper runs
    resent = dispatch.sweep_once(runtime, pending_older_than=0)
    # Then the job is re-sent and completes with a label
    assert job.id in resent
    assert wait_for_job(client, job.id)["classification_result"] == "legal"


def _abandoned(runtime, words: bytes, name: str, *, attempts: int):  # type: ignore[no-untyped-def]
    """An upload left PROCESSING by a worker that died on its ``attempts``-th try, its lease run out."""
    job = submit_upload(
        engine=runtime.engine,
        blobs=runtime.blobs,
        chunks=[LEGAL.encode() + words],
        filename=name,
        max_bytes=runtime.settings.max_upload_bytes,
    )
    with session_scope(runtime.engine) as session:
        stored = session.get(Job, job.id)
        stored.status = JobStatus.PROCESSING
        stored.attempts = attempts
        stored.updated_at = utcnow() - timedelta(seconds=runtime.settings.job_lease_seconds + 5)
        session.add(stored)
    return job


def test_a_job_abandoned_mid_processing_is_retried_after_its_lease(client, runtime) -> None:  # type: ignore[no-untyped-def]
    # Given a job a killed worker left in PROCESSING long ago
    job = _abandoned(runtime, b" Appeal dismissed.", "stuck.txt", attempts=1)
    # When the sweeper runs
    dispatch.sweep_once(runtime, pending_older_than=60)
    # Then the job completes, once
    finished = wait_for_job(client, job.id)
    assert finished["status"] == "COMPLETED" and finished["attempts"] == 2


def test_a_job_whose_worker_died_on_every_attempt_fails_instead_of_killing_workers_for_ever(
    client, runtime
) -> None:  # type: ignore[no-untyped-def]
    from core.services.jobs import claim_job

    # Given a job whose worker was killed (out of memory, say) on each of its attempts, the last
    # one's lease run out
    job = _abandoned(runtime, b" Kills its worker.", "poison.txt", attempts=runtime.settings.max_attempts)
    # Then a message naming it does not hand it to another worker
    lease, attempts = runtime.settings.job_lease_seconds, runtime.settings.max_attempts
    assert not claim_job(engine=runtime.engine, job_id=job.id, lease_seconds=lease, max_attempts=attempts)
    # And when the sweeper runs, the job ends FAILED with a code saying why, and is not re-sent
    resent = dispatch.sweep_once(runtime, pending_older_than=60)
    assert job.id not in resent
    ended = client.get(f"/api/jobs/{job.id}").json()
    assert (ended["status"], ended["error_code"], ended["attempts"]) == ("FAILED", "internal_error", attempts)
    assert "stopped" in ended["error_message"] and "HERON_MAX_ATTEMPTS" in ended["error_message"]


def test_an_approval_runs_a_waiting_training_whose_message_was_lost_within_seconds(client, runtime) -> None:  # type: ignore[no-untyped-def]
    # Given a training run queued before the broker restarted: its row waits, its message is gone
    lost, _ = request_training(engine=runtime.engine, mode="incremental", actor="ada")
    with session_scope(runtime.engine) as session:
        stored = session.get(Task, lost.id)
        stored.updated_at = utcnow() - timedelta(seconds=60)
        session.add(stored)
    # When a reviewer approves a correction (the sweeper would re-send the run only after minutes)
    text = TECHNOLOGY + " Lost message, found again."
    sent = client.post("/api/classify_file", files={"file": ("lost.txt", text.encode())})
    job = wait_for_job(client, sent.json()["job_id"])
    correction = {"job_id": job["id"], "corrected_classification": "finance"}
    feedback = client.post("/api/feedback/", json=correction)
    approved_at = time.monotonic()
    assert client.post(f"/api/feedback/{feedback.json()['feedback_id']}/approve").status_code == 200
    # Then the approval joined that run and sent it again: it has run within ten seconds
    finished = wait_for_task(client, lost.id, timeout=30)
    assert finished["status"] == "SUCCEEDED", finished
    assert time.monotonic() - approved_at < 10, finished


def test_running_a_job_twice_stores_one_prediction(client, runtime) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import func, select

    from core.db.tables import Prediction

    job = submit_upload(
        engine=runtime.engine,
        blobs=runtime.blobs,
        chunks=[LEGAL.encode() + b" Costs reserved."],
        filename="twice.txt",
        max_bytes=runtime.settings.max_upload_bytes,
    )
    runtime.work.send_classify(job.id)
    runtime.work.send_classify(job.id)
    assert wait_for_job(client, job.id)["status"] == "COMPLETED"
    with session_scope(runtime.engine) as session:
        count = session.exec(select(func.count()).where(Prediction.job_id == job.id)).one()
    assert count == 1


def test_an_upload_is_accepted_and_kept_while_the_broker_is_unreachable(prepared_dir) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from bench.server import free_port, heron_api

    # Given `heron api` configured for a Redis that does not answer (nothing listens on its port)
    broker = f"redis://127.0.0.1:{free_port()}/0"
    with (
        heron_api(HERON_DATA_DIR=str(prepared_dir), HERON_BROKER_URL=broker, HF_HUB_OFFLINE="1") as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        # When a client uploads a document
        answer = client.post("/api/classify_file", files={"file": ("ruling.txt", LEGAL.encode())})
        # Then the upload is accepted, not failed for the message it could not send: the job is
        # stored and waits (the workers' sweeper sends it once the broker is back)
        assert answer.status_code == 200, answer.text
        job_id = answer.json()["job_id"]
        assert client.get(f"/api/jobs/{job_id}").json()["status"] == "PENDING"
        # And the API keeps serving
        assert client.get("/health").status_code == 200


def test_uploads_waiting_for_their_answer_hold_up_no_other_request(prepared_dir) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    import httpx

    from bench.server import free_port, heron_api

    # Given `heron api` whose jobs cannot run (its broker does not answer): every upload that asks
    # to wait for its answer waits its whole time
    broker = f"redis://127.0.0.1:{free_port()}/0"
    with heron_api(HERON_DATA_DIR=str(prepared_dir), HERON_BROKER_URL=broker, HF_HUB_OFFLINE="1") as base:

        async def scenario() -> tuple[list[int], float, int]:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                # When more clients than the API has threads (40) upload with ?wait=15
                uploads = [
                    asyncio.create_task(
                        client.post(
                            "/api/classify_file?wait=15",
                            files={"file": (f"r{i}.txt", f"{LEGAL} {i}".encode())},
                        )
                    )
                    for i in range(45)
                ]
                await asyncio.sleep(3)  # they are all stored and waiting by now
                loop = asyncio.get_running_loop()
                started = loop.time()
                listed = await client.get("/api/jobs", params={"limit": 5})
                took = loop.time() - started
                statuses = [answer.status_code for answer in await asyncio.gather(*uploads)]
                return statuses, took, listed.status_code

        statuses, took, listed = asyncio.run(scenario())
    # Then another client's request is answered while they wait, not after them (each waiting
    # upload held one of the API's threads, and the 41st request of any kind queued behind them)
    assert listed == 200
    assert took < 10, f"GET /api/jobs took {took:.1f} s behind the waiting uploads"
    assert statuses == [200] * 45


def test_a_lease_outlives_its_ttl_while_its_holder_lives_and_not_once_it_is_killed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from core.db import make_engine, migrate
    from core.services.leases import new_owner, try_acquire

    url = f"sqlite:///{tmp_path / 'leases.db'}"
    engine = make_engine(url)
    migrate(engine)
    # Given a process holding a lease with a 1.5 s time to live, working far longer (as a training
    # run on a big corpus does)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from core.db import make_engine\n"
            "from core.services.leases import held\n"
            "with held(make_engine(sys.argv[1]), 'training', ttl_seconds=1.5) as got:\n"
            "    print(got, flush=True)\n"
            "    time.sleep(120)\n",
            url,
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        # Then while it lives nobody else gets the lease, though its first term ran out long ago
        time.sleep(4)
        assert not try_acquire(engine, "training", new_owner(), ttl_seconds=60)
        # When the holder is killed mid-work (no chance to let go)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        # Then the lease is free again within its time to live, not after half an hour
        deadline = time.monotonic() + 5
        while not try_acquire(engine, "training", new_owner(), ttl_seconds=60):
            assert time.monotonic() < deadline, "the dead holder's lease was never freed"
            time.sleep(0.2)
    finally:
        holder.kill()
        engine.dispose()


def test_a_training_run_whose_worker_died_is_run_again_once_its_lease_is_free(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core.db import make_engine, migrate
    from core.services import leases, tasks

    engine = make_engine(f"sqlite:///{tmp_path / 'tasks.db'}")
    migrate(engine)
    # Given a training task RUNNING, silent for two minutes (its worker was killed mid-stage)
    queued, _ = request_training(engine=engine, mode="full")
    task_id = queued.id
    with session_scope(engine) as session:
        task = session.get(Task, task_id)
        task.status, task.updated_at = "RUNNING", utcnow() - timedelta(minutes=2)
        session.add(task)
    leased = {"training": ("training", 90.0)}
    # When a live run elsewhere holds the training lease, the task is left alone (it may be that run)
    with leases.held(engine, "training", ttl_seconds=60):
        assert tasks.stale_tasks(engine, pending_older_than=3600, silent_for=1800, leased=leased) == []
    # When nobody holds it, the task lost its worker: it goes back to PENDING and is sent again,
    # long before the half hour after which any silent task is
    assert tasks.stale_tasks(engine, pending_older_than=3600, silent_for=1800, leased=leased) == [
        (task_id, "training")
    ]
    with session_scope(engine) as session:
        assert session.get(Task, task_id).status == "PENDING"
    engine.dispose()


def test_a_zip_whose_unpacking_worker_died_is_unpacked_again_within_minutes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io
    import zipfile

    from core.blobs import BlobStore
    from core.db import make_engine, migrate
    from core.extract.types import ExtractionLimits
    from core.services import leases, tasks
    from core.services.documents import run_unpack_task, submit_batch
    from core.services.recovery import resend_lost_work

    class Sent:
        def __init__(self) -> None:
            self.tasks: list[tuple[str, str]] = []

        def send_classify(self, job_id: str) -> None:
            pass

        def send_task(self, task_id: str, kind: str) -> None:
            self.tasks.append((task_id, kind))

    engine = make_engine(f"sqlite:///{tmp_path / 'unpack.db'}")
    migrate(engine)
    blobs = BlobStore(tmp_path / "blobs")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("ruling.txt", LEGAL)
        zipped.writestr("release.txt", TECHNOLOGY)
    submission = submit_batch(
        engine=engine, blobs=blobs, chunks=[archive.getvalue()], filename="batch.zip", max_bytes=10**6
    )
    task_id = submission.unpack_task_id
    # Given its unpacking RUNNING and silent for two minutes: the worker was killed mid-unpack
    # (unpacking reports no progress, so silence alone cannot tell)
    with session_scope(engine) as session:
        task = session.get(Task, task_id)
        task.status, task.updated_at = "RUNNING", utcnow() - timedelta(minutes=2)
        session.add(task)

    def sweep() -> list[tuple[str, str]]:
        sent = Sent()
        resend_lost_work(
            engine=engine, work=sent, pending_older_than=3600, lease_seconds=300, silent_for=1800
        )
        return sent.tasks

    # When a live worker still holds its run's lease, the sweeper leaves it alone (it is busy),
    # however long it has been silent (past the half hour a task without a lease is given)
    with leases.held(engine, tasks.RUN_LEASE.format(id=task_id), ttl_seconds=60):
        assert sweep() == []
        with session_scope(engine) as session:
            task = session.get(Task, task_id)
            task.updated_at = utcnow() - timedelta(minutes=40)
            session.add(task)
        assert sweep() == []
        # and another delivery of its message does not run it a second time
        assert run_unpack_task(engine=engine, blobs=blobs, task_id=task_id, limits=ExtractionLimits()) == []
    # When nobody holds it, the sweeper sends it again within minutes, not after the half hour
    # any silent task waits, and the ZIP becomes its jobs
    assert sweep() == [(task_id, "unpack")]
    job_ids = run_unpack_task(engine=engine, blobs=blobs, task_id=task_id, limits=ExtractionLimits())
    assert len(job_ids) == 2
    assert tasks.get_task(engine=engine, task_id=task_id).status == "SUCCEEDED"
    assert sweep() == []
    engine.dispose()


def test_a_task_cancelled_after_its_worker_died_ends_cancelled_instead_of_running_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core.db import make_engine, migrate
    from core.services import tasks

    engine = make_engine(f"sqlite:///{tmp_path / 'cancel.db'}")
    migrate(engine)
    # Given a training task RUNNING whose worker was killed two minutes ago
    queued, _ = request_training(engine=engine, mode="full")
    with session_scope(engine) as session:
        task = session.get(Task, queued.id)
        task.status, task.updated_at = "RUNNING", utcnow() - timedelta(minutes=2)
        session.add(task)
    # When someone cancels it (the cancellation waits for a progress report that never comes)
    assert tasks.cancel(engine=engine, task_id=queued.id, actor="test").status == "RUNNING"
    with session_scope(engine) as session:  # ... and the lease's time to live goes by
        task = session.get(Task, queued.id)
        task.updated_at = utcnow() - timedelta(minutes=2)
        session.add(task)
    # Then the sweeper ends it CANCELLED rather than sending it to run again
    leased = {"training": ("training", 90.0)}
    assert tasks.stale_tasks(engine, pending_older_than=3600, silent_for=1800, leased=leased) == []
    assert tasks.get_task(engine=engine, task_id=queued.id).status == "CANCELLED"
    engine.dispose()


def test_a_process_that_cannot_reach_its_broker_leaves_the_sweeping_to_one_that_can(heron) -> None:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from tests.conftest import SentWork

    class NoBroker(SentWork):
        def send_classify(self, job_id: str) -> None:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:16398. Connection refused.")

    # Given an upload whose message was lost
    job = submit_upload(
        engine=heron.engine,
        blobs=heron.blobs,
        chunks=[LEGAL.encode() + b" Lost message."],
        filename="lost.txt",
        max_bytes=heron.settings.max_upload_bytes,
    )
    # And a worker that reaches the database but not its broker (a typo in HERON_BROKER_URL),
    # sweeping first
    broken = SimpleNamespace(engine=heron.engine, work=NoBroker(), settings=heron.settings)
    healthy = SimpleNamespace(engine=heron.engine, work=SentWork(), settings=heron.settings)
    stops = [dispatch.start_sweeper(lambda: broken)]
    try:
        time.sleep(1.0)
        # When a healthy worker starts its sweeper too
        stops.append(dispatch.start_sweeper(lambda: healthy))
        deadline = time.monotonic() + 2 * dispatch.SWEEP_INTERVAL_SECONDS + 5
        while job.id not in healthy.work.jobs and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for stop in stops:
            stop.set()
    # Then the healthy worker re-sends the lost job within a sweep or two: the broken one let go
    # of the sweeper lease (it kept it, and nothing re-sent lost work while it lived)
    assert job.id in healthy.work.jobs


def test_an_industry_whose_training_request_was_lost_is_trained_by_the_sweeper(heron) -> None:  # type: ignore[no-untyped-def]
    from core.services import recovery, taxonomy
    from core.services.industries import create_industry
    from core.services.training import run_training_task
    from tests.conftest import SentWork

    def sweep() -> list[tuple[str, str]]:
        work = SentWork()
        recovery.resend_lost_work(
            engine=heron.engine, work=work, pending_older_than=0, lease_seconds=300, silent_for=1800
        )
        return work.tasks

    # Given nothing changed since the starter model, the sweeper asks for no training
    assert sweep() == []
    # Given an industry added through the use case (its training run asked for and done)
    added = taxonomy.add_industry(
        engine=heron.engine, work=SentWork(), settings=heron.settings, name="shipping", description="Ports."
    )
    run_training_task(
        engine=heron.engine,
        task_id=added.training_task.id,
        policy=heron.policy,
        encoder=heron.training_encoder,
    )
    assert sweep() == []
    # When an industry is created but the process dies before its training run is asked for (two
    # commits), nothing would predict it until something else trained
    create_industry(engine=heron.engine, name="aviation", description="Airlines, airports and aircraft.")
    # Then while a training run is under way (`heron import` trains without a task) it waits for it
    from core.services import leases
    from core.services.training import TRAINING_LEASE

    with leases.held(heron.engine, TRAINING_LEASE, ttl_seconds=60) as acquired:
        assert acquired and sweep() == []
    # ... and then asks for that run, once
    sent = sweep()
    assert [kind for _, kind in sent] == ["training"]
    assert sweep() == sent  # (while it waits, its message is re-sent: no second run is asked for)
    # And once it has run, the new industry is served
    run_training_task(
        engine=heron.engine, task_id=sent[0][0], policy=heron.policy, encoder=heron.training_encoder
    )
    _, model = heron.models.active(heron.engine)
    assert "aviation" in model.labels
    assert sweep() == []
