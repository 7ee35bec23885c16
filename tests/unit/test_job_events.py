"""Waiters for a job are woken by its end: in this process on commit, across processes by NOTIFY."""

from __future__ import annotations

import socket
import threading
import uuid

import pytest
from sqlalchemy import text

from core.db import make_engine, session_scope
from core.events import JOB_EVENTS, JobEvents, job_ended
from tests.conftest import POSTGRES, needs_services


def test_a_waiter_is_woken_by_the_end_and_not_before() -> None:
    events = JobEvents()
    assert events.wait("a", 0.01) is False  # nothing ended: the wait runs out
    woken: list[bool] = []
    waiter = threading.Thread(target=lambda: woken.append(events.wait("a", 30)))
    waiter.start()
    events.ended(["b"])  # another job's end does not release it
    waiter.join(0.2)
    assert waiter.is_alive() and not woken
    events.ended(["a"])
    waiter.join(5)
    assert woken == [True]
    assert events.wait("a", 0) is True  # a waiter arriving after the end is not left waiting


def test_a_commit_wakes_waiters_and_a_rollback_does_not(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")
    rolled_back, committed = uuid.uuid4().hex, uuid.uuid4().hex
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        job_ended(session, rolled_back)
        raise RuntimeError("the transaction fails")
    with session_scope(engine) as session:
        job_ended(session, committed)
        assert JOB_EVENTS.wait(committed, 0) is False  # not before the commit
    assert JOB_EVENTS.wait(committed, 0) is True
    assert JOB_EVENTS.wait(rolled_back, 0) is False
    engine.dispose()


@needs_services("PostgreSQL")
def test_postgres_notifies_other_processes_on_commit() -> None:
    # A listener that only hears PostgreSQL (not this process's own commits) stands in for the API
    # process while a worker elsewhere finishes the job.
    elsewhere = JobEvents()
    elsewhere.listen(POSTGRES)
    assert elsewhere.listening.wait(30)
    engine = make_engine(POSTGRES)
    ended = [uuid.uuid4().hex for _ in range(250)]  # more than one NOTIFY's worth
    with session_scope(engine) as session:
        session.execute(text("SELECT 1"))
        for job_id in ended:
            job_ended(session, job_id)
        assert elsewhere.wait(ended[0], 0.3) is False  # nothing is sent before the commit
    assert elsewhere.wait(ended[0], 30) and elsewhere.wait(ended[-1], 30)
    assert elsewhere.covered
    engine.dispose()


def test_a_coroutine_waits_without_a_thread_and_is_woken_from_another() -> None:
    import asyncio

    events = JobEvents()

    async def scenario() -> tuple[bool, bool, bool]:
        early = await events.wait_async("x", 0.01)  # runs out
        waiting = asyncio.ensure_future(events.wait_async("x", 30))
        await asyncio.sleep(0.05)
        threading.Thread(target=events.ended, args=(["x"],)).start()  # a worker thread's commit
        woken = await waiting
        return early, woken, await events.wait_async("x", 0)

    assert asyncio.run(scenario()) == (False, True, True)
    assert events._futures == {}  # nothing left registered


def test_on_sqlite_a_process_hears_the_jobs_another_process_ends(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Two JobEvents stand in for two processes of one machine (the API waiting, a worker ending)
    api, worker = JobEvents(), JobEvents()
    run_dir = tmp_path / "run"
    api.run_dir = worker.run_dir = run_dir
    assert api.listen_here(run_dir, name="api") and api.covered
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(run_dir / "events-gone.sock"))
    dead.close()  # a process that died without removing its socket
    ended = [uuid.uuid4().hex for _ in range(450)]
    worker.tell_others(ended)
    assert api.wait(ended[0], 30) and api.wait(ended[-1], 30)
    assert not (run_dir / "events-gone.sock").exists()  # the dead one is cleared away
    assert worker.wait(ended[0], 0) is False  # the sender is not told its own news


def test_a_kept_view_is_served_until_the_job_ends_or_it_is_a_second_old(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import core.events as events_module

    events = JobEvents()
    events.remember("a", "view of a")
    assert events.recall("a") is None  # nothing tells this process about ends: nothing is kept
    events.local_workers = True
    events.remember("a", "view of a")
    events.remember("b", "view of b")
    assert events.recall("a") == "view of a"
    # The end drops the view at once, and a view read just before the end is not kept after it
    events.ended(["a"])
    assert events.recall("a") is None
    events.remember("a", "stale view of a")
    assert events.recall("a") is None
    # A view older than VIEW_SECONDS is read again
    monkeypatch.setattr(events_module, "VIEW_SECONDS", 0.0)
    assert events.recall("b") is None
