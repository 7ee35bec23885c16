"""An idle worker on Redis takes a message when it is sent, not when its polling backoff ends."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dramatiq
import pytest
import redis

from core.settings import load_settings
from tests.conftest import needs_services
from workers import broker as broker_module
from workers.broker import build_broker

pytestmark = needs_services("Redis")
REDIS = "redis://127.0.0.1:6379/10"  # a database of its own
QUEUE = "wake-test"


def test_an_idle_worker_takes_a_message_as_soon_as_it_is_sent(tmp_path: Path) -> None:
    redis.Redis.from_url(REDIS).flushdb()
    broker = build_broker(load_settings(data_dir=tmp_path, database_url="", broker_url=REDIS))
    ran: dict[str, float] = {}
    arrived = threading.Condition()

    def note(key: str) -> None:
        with arrived:
            ran[key] = time.monotonic()
            arrived.notify_all()

    actor = dramatiq.actor(note, broker=broker, queue_name=QUEUE, actor_name="wake_test.note")
    # A worker that, idle, would otherwise look at Redis again only every 0.5–1 s (Dramatiq's
    # backoff grows to its worker timeout, 1 s here)
    worker = dramatiq.Worker(broker, worker_timeout=1000, worker_threads=1)
    worker.start()
    waits = []
    try:
        for i in range(3):
            time.sleep(2.5)  # idle a while: its backoff has grown
            sent = time.monotonic()
            actor.send(str(i))
            with arrived:
                assert arrived.wait_for(lambda key=str(i): key in ran, timeout=10), f"message {i} never ran"
            waits.append(ran[str(i)] - sent)
    finally:
        worker.stop()
        broker.close()
    assert statistics.median(waits) < 0.1, waits


def test_a_send_whose_wake_up_cannot_be_pushed_still_runs(tmp_path: Path) -> None:
    client = redis.Redis.from_url(REDIS)
    client.flushdb()
    broker = build_broker(load_settings(data_dir=tmp_path, database_url="", broker_url=REDIS))
    ran = threading.Event()
    actor = dramatiq.actor(lambda: ran.set(), broker=broker, queue_name=QUEUE, actor_name="wake_test.mark")
    # Given a wake-up list that cannot take a push (a key of another type stands in its place)
    client.set(f"dramatiq:{QUEUE}.wake", "not a list")
    worker = dramatiq.Worker(broker, worker_timeout=100, worker_threads=1)
    worker.start()
    try:
        # When a message is sent, the send does not fail, and a consumer finds the message anyway
        actor.send()
        assert ran.wait(timeout=1.5)  # not after the consumer failed and was restarted (~3 s)
    finally:
        worker.stop()
        broker.close()


@contextmanager
def _idle_worker(broker: dramatiq.Broker) -> Iterator[None]:
    """One worker thread on ``broker`` while the block runs; the worker and the broker stopped after."""
    worker = dramatiq.Worker(broker, worker_timeout=1000, worker_threads=1)
    worker.start()
    try:
        yield
    finally:
        worker.stop()
        broker.close()


def test_a_socket_timeout_shorter_than_the_idle_wait_does_not_break_the_consumer(tmp_path: Path) -> None:
    redis.Redis.from_url(REDIS).flushdb()
    # Given a broker URL whose connections time out after 0.3 s, shorter than an idle wait (1 s)
    url = f"{REDIS}?socket_timeout=0.3"
    broker = build_broker(load_settings(data_dir=tmp_path, database_url="", broker_url=url))
    ran = threading.Event()
    actor = dramatiq.actor(lambda: ran.set(), broker=broker, queue_name=QUEUE, actor_name="wake_test.late")
    with _idle_worker(broker):
        # When the worker has been idle for several such timeouts, then a message is sent
        time.sleep(2.0)
        sent = time.monotonic()
        actor.send()
        # Then it runs promptly: the consumer waited in steps the socket allows, and is still there
        assert ran.wait(timeout=5), "the message never ran"
        assert time.monotonic() - sent < 1.0


def test_messages_a_stopping_consumer_gives_back_are_taken_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis.Redis.from_url(REDIS).flushdb()
    # Idle consumers look again by themselves only every 5 s here: only a wake-up is faster
    monkeypatch.setattr(broker_module, "IDLE_WAIT_SECONDS", 5.0)
    broker = build_broker(load_settings(data_dir=tmp_path, database_url="", broker_url=REDIS))
    ran = threading.Event()
    actor = dramatiq.actor(lambda: ran.set(), broker=broker, queue_name=QUEUE, actor_name="wake_test.back")
    # Given a message that one consumer took ahead of its threads
    actor.send()
    holder = broker.consume(QUEUE, prefetch=1, timeout=1000)
    taken, deadline = None, time.monotonic() + 10
    while taken is None and time.monotonic() < deadline:
        taken = next(holder)  # None after each second without a message
    assert taken is not None, "the consumer never got the message"
    # And a worker idle on that queue, waiting to be woken
    with _idle_worker(broker):
        time.sleep(1.0)
        assert not ran.is_set()
        # When the first consumer stops and gives the message back
        given_back = time.monotonic()
        holder.requeue([taken])
        holder.close()
        # Then the idle worker runs it at once, not when its own wait runs out
        assert ran.wait(timeout=10), "the message never ran"
        assert time.monotonic() - given_back < 1.0
