"""One message per batch of work: a classify message drains the queue, senders coalesce, and no
job is left for the sweeper, however uploads and drains interleave."""

from __future__ import annotations

import io
import random
import threading
import time

import dramatiq
import pytest

from core.services.documents import upload
from core.services.jobs import wait_for_job
from tests.conftest import own_workers
from tests.documents import CLINICAL, FINANCE, LEGAL
from workers import dispatch
from workers.sender import CLASSIFY_ACTOR, Drains

TEXTS = [LEGAL, CLINICAL, FINANCE]


@pytest.fixture
def classify_messages(client):  # type: ignore[no-untyped-def]
    """The classify messages put on the in-process queue while the test runs."""
    broker = dramatiq.get_broker()
    sent: list[str] = []
    enqueue = broker.enqueue

    def counting(message, *, delay=None):  # type: ignore[no-untyped-def]
        if message.actor_name == CLASSIFY_ACTOR:
            sent.append(message.message_id)
        return enqueue(message, delay=delay)

    broker.enqueue = counting
    yield sent
    broker.enqueue = enqueue


def _upload_many(runtime, count: int, threads: int, pause: float) -> list[str]:  # type: ignore[no-untyped-def]
    """The ids of the jobs ``threads`` clients uploaded, ``count`` in all, each pausing up to ``pause`` s."""
    uploaded: list[str] = []
    lock = threading.Lock()
    rng = random.Random(7)
    pauses = [[rng.uniform(0, pause) for _ in range(count)] for _ in range(threads)]

    def client_thread(index: int) -> None:
        for n in range(count // threads):
            text = f"{TEXTS[n % 3]}\nReference {index}-{n}-{time.time_ns()}."
            submission = upload(
                engine=runtime.engine,
                blobs=runtime.blobs,
                work=runtime.work,
                stream=io.BytesIO(text.encode()),
                filename=f"drain-{index}-{n}.txt",
                max_bytes=runtime.settings.max_upload_bytes,
            )
            with lock:
                uploaded.append(submission.jobs[0].id)
            time.sleep(pauses[index][n])

    workers = [threading.Thread(target=client_thread, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return uploaded


def test_a_burst_of_uploads_takes_far_fewer_messages_than_documents(  # type: ignore[no-untyped-def]
    client, runtime, classify_messages
) -> None:
    # When 48 documents are uploaded at once from 4 threads
    uploaded = _upload_many(runtime, 48, threads=4, pause=0.0)
    # Then every one is classified...
    for job_id in uploaded:
        assert wait_for_job(engine=runtime.engine, job_id=job_id, seconds=30).status == "COMPLETED"
    # ...while running drains took most of them without a message of their own
    assert len(classify_messages) <= len(uploaded) // 2, len(classify_messages)


def test_no_job_waits_for_the_sweeper_when_uploads_and_drains_interleave(client, runtime) -> None:  # type: ignore[no-untyped-def]
    # Given this process's workers running without their sweeper, so that a job stranded behind a
    # drain that was leaving would wait for ever (however fast or slow the machine is)
    with own_workers():
        dispatch.start(runtime, sweep=False)
        # When uploads are paced so that drains keep running out of work and ending as new jobs arrive
        uploaded = _upload_many(runtime, 60, threads=3, pause=0.03)
        # Then every job ends all the same: none was left without a drain to take it
        statuses = [wait_for_job(engine=runtime.engine, job_id=i, seconds=60).status for i in uploaded]
    assert statuses == ["COMPLETED"] * len(uploaded), sorted(set(statuses))


def test_a_sender_counts_on_a_running_drain_only_while_it_is_alive() -> None:
    drains = Drains(limit=1)
    # The first job starts a drain; the next ones count on it while it claims
    assert drains.admit()
    drains.beat()
    assert not drains.admit()
    # Once the drain has left, the next job needs a message again
    drains.leave()
    assert drains.admit()
    # A drain silent for too long (stuck in one batch) no longer holds messages back
    drains._last_beat = time.monotonic() - 60
    assert drains.admit()
    # Leaving never counts below zero (a retried message ends like any other)
    for _ in range(5):
        drains.leave()
    assert drains.running == 0
