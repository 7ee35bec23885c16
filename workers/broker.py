"""Build the Dramatiq broker from one URL: in-process (empty), Redis or RabbitMQ."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker

from core.settings import Settings


def build_broker(settings: Settings) -> dramatiq.Broker:
    url = settings.broker_url
    if not url:
        # The in-process queue: messages live in this process and its worker threads run them.
        # A message lost with the process is re-sent from the database by the sweeper.
        broker = StubBroker()
        broker.emit_after("process_boot")
        return broker
    if url.startswith(("redis://", "rediss://")):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=url)
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=url)


def install_broker(settings: Settings) -> dramatiq.Broker:
    """Set the global broker once per process, before any actor module is imported."""
    current = getattr(install_broker, "_broker", None)
    if current is None:
        current = build_broker(settings)
        dramatiq.set_broker(current)
        install_broker._broker = current  # type: ignore[attr-defined]
    return current
