"""Build the Dramatiq broker from one URL: in-process (empty), Redis or RabbitMQ."""

from __future__ import annotations

import logging
import threading
import time

import dramatiq
from dramatiq.brokers.stub import StubBroker

from core.settings import Settings

log = logging.getLogger(__name__)

# How long an idle Redis consumer waits to be woken before it fetches again anyway (a message sent
# by a producer that does not wake, a wake-up lost): also how late its acks and its stop can be.
IDLE_WAIT_SECONDS = 1.0
# Wake-ups kept for consumers that are all busy: each only makes one consumer fetch once more.
WAKE_BACKLOG = 16


def build_broker(settings: Settings) -> dramatiq.Broker:
    url = settings.broker_url
    if not url:
        # The in-process queue: messages live in this process and its worker threads run them.
        # A message lost with the process is re-sent from the database by the sweeper.
        broker = StubBroker()
        broker.emit_after("process_boot")
        return broker
    if url.startswith(("redis://", "rediss://")):
        return _waking_redis_broker(url)
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=url)


def _waking_redis_broker(url: str) -> dramatiq.Broker:
    import redis
    from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
    from dramatiq.common import dq_name, q_name

    waited = threading.local()  # whether this consumer thread's last fetch waited to be woken

    class WakingConsumer(_RedisConsumer):
        """Dramatiq's consumer, minus the sleep after a fetch that already waited: it counts every
        empty fetch as a miss and sleeps longer each time (up to the worker timeout), a sleep no
        send can cut short. A consumer whose threads are all busy fetches nothing and backs off as
        before."""

        @property
        def misses(self) -> int:
            return 0 if getattr(waited, "flag", False) else self._misses

        @misses.setter
        def misses(self, value: int) -> None:
            self._misses = value

        def __next__(self):  # type: ignore[no-untyped-def]
            waited.flag = False
            return super().__next__()

    class WakingRedisBroker(RedisBroker):
        """Dramatiq's Redis broker, whose idle consumers are woken by a send instead of polling.

        Dramatiq's Redis consumer finds an empty queue and sleeps, in growing steps up to the worker
        timeout, before it looks again: a message sent meanwhile waits out the sleep (tens of ms on
        every document of a steady trickle, with a poll of Redis from every idle consumer in every
        worker process). Here a consumer that finds its queue empty blocks on a wake-up list of that
        queue (``BLPOP``) instead, and every send pushes to that list; the consumer fetches as soon
        as one arrives. A message from a producer that does not push (plain Dramatiq) is fetched
        at most :data:`IDLE_WAIT_SECONDS` late.
        """

        def enqueue(self, message: dramatiq.Message, *, delay: int | None = None) -> dramatiq.Message:
            sent = super().enqueue(message, delay=delay)
            if delay is None:  # a delayed message is moved to its queue by a consumer, which is awake
                self._wake(message.queue_name)
            return sent

        def do_requeue(self, queue_name: str, *message_ids: str) -> object:
            """Put messages a consumer had taken but not run back in the queue (it is stopping),
            and wake an idle consumer to take them."""
            requeued = self._dispatch("requeue")(queue_name, *message_ids)
            if message_ids:
                self._wake(queue_name)
            return requeued

        def _wake(self, queue_name: str) -> None:
            key = self._wake_key(queue_name)
            try:
                with self.client.pipeline(transaction=False) as pipeline:
                    pipeline.lpush(key, 1).ltrim(key, 0, WAKE_BACKLOG - 1).execute()
            except redis.RedisError as error:  # the message is queued: a consumer finds it anyway
                log.warning("queued, but no consumer woken (%s): one finds it within 1 s", error)

        @property
        def consumer_class(self):  # type: ignore[no-untyped-def]
            return WakingConsumer

        def do_fetch(self, queue_name: str, prefetch: int) -> list:
            fetch = self._dispatch("fetch")
            messages = fetch(queue_name, prefetch)
            if messages or queue_name == dq_name(q_name(queue_name)):  # a delay queue is not woken
                return messages
            key = self._wake_key(queue_name)
            try:
                self.client.blpop([key], timeout=self._idle_wait)
                waited.flag = True
            except redis.TimeoutError:  # the reply outlasted the socket's timeout: look again
                waited.flag = True
            except redis.ResponseError as error:  # not a list (a stray key): poll as Dramatiq does
                log.debug("cannot wait on %s (%s)", key, error)
                time.sleep(0.1)
            return fetch(queue_name, prefetch)

        @property
        def _idle_wait(self) -> float:
            """How long a blocking wait may last: IDLE_WAIT_SECONDS, or less where the URL set a
            shorter ``socket_timeout`` (a wait as long as the timeout would fail as a lost
            connection)."""
            timeout = self.client.connection_pool.connection_kwargs.get("socket_timeout")
            return IDLE_WAIT_SECONDS if not timeout else min(IDLE_WAIT_SECONDS, float(timeout) / 2)

        def _wake_key(self, queue_name: str) -> str:
            return f"{self.namespace}:{queue_name}.wake"

    return WakingRedisBroker(url=url)


def install_broker(settings: Settings) -> dramatiq.Broker:
    """Set the global broker once per process, before any actor module is imported."""
    current = getattr(install_broker, "_broker", None)
    if current is None:
        current = build_broker(settings)
        dramatiq.set_broker(current)
        install_broker._broker = current  # type: ignore[attr-defined]
    return current
