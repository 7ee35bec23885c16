"""The API's sends to Redis or RabbitMQ, made after answering: one message per burst."""

from __future__ import annotations


def test_jobs_handed_over_while_a_send_is_under_way_need_no_message_of_their_own() -> None:
    import threading

    from workers.sender import BackgroundSender

    # Given a broker whose first send is slow (a new connection), and which counts nothing waiting
    release = threading.Event()

    class SlowBroker:
        def __init__(self) -> None:
            self.sent: list[str] = []

        def send_classify(self, job_id: str) -> bool:
            release.wait(5)
            self.sent.append(job_id)
            return True

    inner = SlowBroker()
    sender = BackgroundSender(inner)  # type: ignore[arg-type]
    # When a burst of uploads hands over five jobs during that first send
    for i in range(5):
        sender.send_classify(f"job-{i}")
    release.set()
    assert sender.flush()
    # Then one message went out: its drain claims all five, committed before it was sent
    assert inner.sent == ["job-0"]
    # And a job handed over after it gets its own look at the broker
    sender.send_classify("job-5")
    assert sender.flush()
    assert inner.sent == ["job-0", "job-5"]
