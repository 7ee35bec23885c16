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


def test_a_send_the_broker_refused_goes_out_once_it_answers_again(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    from workers import sender as module

    monkeypatch.setattr(module, "RETRY_SECONDS", 0.05, raising=False)

    # Given a broker that refuses the first three attempts (it is restarting), then answers
    class RestartingBroker:
        def __init__(self) -> None:
            self.refusals = 3
            self.sent: list[tuple[str, str]] = []

        def _attempt(self) -> None:
            if self.refusals:
                self.refusals -= 1
                raise ConnectionError("connection refused")

        def send_classify(self, job_id: str) -> bool:
            self._attempt()
            self.sent.append(("classify", job_id))
            return True

        def send_task(self, task_id: str, kind: str) -> None:
            self._attempt()
            self.sent.append((kind, task_id))

    inner = RestartingBroker()
    sender = module.BackgroundSender(inner)  # type: ignore[arg-type]
    # When an upload and a training request are handed over while it refuses
    sender.send_classify("job-1")
    sender.send_task("task-1", "training")
    assert sender.flush()
    # Then, with nothing more handed over, both go out within seconds of it answering again
    deadline = time.monotonic() + 5
    while len(inner.sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert inner.sent == [("classify", "job-1"), ("training", "task-1")]


def test_a_refused_task_goes_out_as_soon_as_the_broker_takes_other_work(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    from workers import sender as module

    monkeypatch.setattr(module, "RETRY_SECONDS", 30.0, raising=False)
    sent: list[str] = []
    refusals = [1]

    class BlippingBroker:
        def send_classify(self, job_id: str) -> bool:
            sent.append(job_id)
            return True

        def send_task(self, task_id: str, kind: str) -> None:
            if refusals[0]:
                refusals[0] -= 1
                raise ConnectionError("connection refused")
            sent.append(task_id)

    sender = module.BackgroundSender(BlippingBroker())  # type: ignore[arg-type]
    # Given a training request the broker refused in a blip
    sender.send_task("task-1", "training")
    assert sender.flush() and sent == []
    # When uploads keep coming and the broker takes them, then the request goes out with them,
    # long before its 30 s retry
    sender.send_classify("job-1")
    assert sender.flush()
    deadline = time.monotonic() + 2
    while "task-1" not in sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sent == ["job-1", "task-1"]
