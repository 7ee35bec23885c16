"""The Review page, driven by AppTest against the real database, API and in-process queue."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from core.db import session_scope
from core.db.tables import Feedback, ReviewClaim
from core.services.review import claim, release_claim, review_queue
from core.settings import get_settings
from tests.conftest import wait_for_job

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")
# Short, topic-free texts: no industry is likely, so the model asks a person.
VAGUE = (
    "Notes from the meeting. Several items were discussed and some were agreed.",
    "Please find the document we talked about attached. Let me know what you think of it.",
    "Thanks for your message. We will come back to you next week with an answer.",
    "Hello, just checking in. Hope all is well on your side and speak to you soon.",
)


@pytest.fixture
def app(runtime, client, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # The console reads its settings from the environment, like `heron ui` does; point it at the
    # database the session's worker threads serve.
    monkeypatch.setenv("HERON_DATA_DIR", str(runtime.settings.data_dir))
    get_settings.cache_clear()
    yield AppTest.from_file(APP, default_timeout=60)
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def uncertain_jobs(client) -> list[dict]:  # type: ignore[no-untyped-def]
    jobs = []
    for number, text in enumerate(VAGUE):
        response = client.post("/api/classify_file", files={"file": (f"vague{number}.txt", text.encode())})
        jobs.append(wait_for_job(client, response.json()["job_id"]))
    assert all(job["status"] == "COMPLETED" and job["needs_review"] for job in jobs), [
        (job["original_filename"], job["classification_result"], job["confidence"], job["needs_review"])
        for job in jobs
    ]
    return jobs


def open_review(app: AppTest, name: str) -> AppTest:
    # Sign in before the first run (see tests/integration/test_ui.py::sign_in), then open Review.
    app.session_state["heron_user_name"] = name
    app.run()
    app.switch_page("pages/review.py").run()
    assert not app.exception
    return app


def held(app: AppTest) -> str:
    return app.session_state["review_claim"][0]


def metric(app: AppTest, label: str) -> str:
    return next(element.value for element in app.metric if element.label == label)


def test_an_empty_queue_says_what_to_do(app: AppTest, runtime) -> None:  # type: ignore[no-untyped-def]
    # Given every item in the queue is being reviewed by someone else
    waiting, _ = review_queue(engine=runtime.engine, limit=1000)
    for item in waiting:
        claim(engine=runtime.engine, job_id=item.id, annotator="someone else", seconds=60)
    try:
        # When Ada opens Review
        open_review(app, "Ada")
        # Then she is told there is nothing to review and where to go
        assert "No documents need review — upload some on Classify" in app.info[0].value
        assert metric(app, "Left in the queue") == "0"
    finally:
        for item in waiting:
            release_claim(engine=runtime.engine, job_id=item.id)


def test_correcting_records_feedback_and_shows_the_next_document(
    app: AppTest, runtime, uncertain_jobs
) -> None:  # type: ignore[no-untyped-def]
    # Given documents the model is unsure about, and Ada on the Review page
    open_review(app, "Ada")
    first = held(app)
    left = int(metric(app, "Left in the queue"))
    assert left >= len(uncertain_jobs)
    with session_scope(runtime.engine) as session:
        holder = session.get(ReviewClaim, first)
    queue, _ = review_queue(engine=runtime.engine, limit=1, annotator="Ada")
    assert holder is not None and holder.claimed_by == "Ada"
    assert queue[0].id == first, "the most uncertain document comes first"
    assert app.subheader[0].value == queue[0].original_filename
    assert app.text, "the document's text is shown"
    # When she picks another industry than the model's
    predicted = queue[0].classification_result
    other = next(name for name in ("legal", "finance") if name != predicted)
    app.button(key=f"review-pick-{first}-{other}").click().run()
    # Then a pending correction with her name exists, and the next document is shown
    assert not app.exception
    with session_scope(runtime.engine) as session:
        feedback = session.exec(select(Feedback).where(Feedback.job_id == first)).all()
    assert [(row.label, row.author, row.status) for row in feedback] == [(other, "Ada", "pending")]
    second = held(app)
    assert second != first
    assert metric(app, "Labelled this session") == "1"
    assert int(metric(app, "Left in the queue")) == left - 1
    # When she skips that one
    app.button(key=f"review-skip-{second}").click().run()
    # Then its claim is released, it is not shown again, and nothing was recorded for it
    assert not app.exception
    with session_scope(runtime.engine) as session:
        assert session.get(ReviewClaim, second) is None
        assert session.exec(select(Feedback).where(Feedback.job_id == second)).first() is None
    assert (app.session_state["review_claim"] or [None])[0] != second
    assert metric(app, "Skipped") == "1"


def test_two_annotators_never_see_the_same_document(runtime, client, uncertain_jobs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Given Ada and Bob open Review at the same time
    monkeypatch.setenv("HERON_DATA_DIR", str(runtime.settings.data_dir))
    get_settings.cache_clear()
    try:
        ada = open_review(AppTest.from_file(APP, default_timeout=60), "Ada")
        bob = open_review(AppTest.from_file(APP, default_timeout=60), "Bob")
    finally:
        get_settings.cache_clear()
    # Then each holds a different document
    assert held(ada) != held(bob)
    # And when Ada confirms the model's answer with one click, Bob still holds his
    ada_first = held(ada)
    confirm = next(button for button in ada.button if button.label.startswith("Confirm "))
    assert confirm.key.startswith(f"review-pick-{ada_first}-")
    confirm.click().run()
    with session_scope(runtime.engine) as session:
        assert session.get(ReviewClaim, held(bob)).claimed_by == "Bob"
        confirmed = session.exec(select(Feedback).where(Feedback.job_id == ada_first)).one()
    assert confirmed.author == "Ada"
