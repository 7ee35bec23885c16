"""The Review page, driven by AppTest against the real database, API and in-process queue."""

from __future__ import annotations

import html
import uuid
from pathlib import Path

import pytest
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from core.db import session_scope
from core.db.tables import Feedback, ReviewClaim, TrainingExample
from core.services.audit import list_events
from core.services.jobs import get_job, job_text
from core.services.review import LABEL_ISSUES, claim, label_issue_queue, release_claim, review_queue
from core.services.tasks import list_tasks
from core.settings import get_settings
from tests.conftest import wait_for_job, wait_for_task
from tests.documents import CLINICAL, FINANCE

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
    app.switch_page("views/review.py").run()
    assert not app.exception
    return app


def held(app: AppTest) -> str:
    return app.session_state["review_claim"][0]


def metric(app: AppTest, label: str) -> str:
    return next(element.value for element in app.metric if element.label == label)


def shows(app: AppTest, key: str) -> bool:
    return any(button.key == key for button in app.button)


def _tick_only(app: AppTest, rows: set[int]) -> None:
    """Set the ``select`` box of every row of the page's one data editor (AppTest seeds its edit state)."""
    editor = app.data_editor[0]
    app.session_state[editor.key] = {
        "edited_rows": {row: {"select": row in rows} for row in range(len(editor.value))},
        "added_rows": [],
        "deleted_rows": [],
    }
    app.run()


@pytest.fixture
def held_by_others(runtime):  # type: ignore[no-untyped-def]
    """Hold every item now in the review queue for someone else, except the ``keep`` ids: what is
    left for Ada is one of them. Released after the test."""
    held: list[str] = []

    def hold(keep: set[str], annotator: str = "Ada") -> None:
        # The queue as the annotator sees it: her own claims from earlier tests stay in it, so
        # they are given up too (an earlier test's held document would come first otherwise).
        waiting, _ = review_queue(engine=runtime.engine, limit=10_000, annotator=annotator)
        for item in waiting:
            if item.id not in keep:
                release_claim(engine=runtime.engine, job_id=item.id, annotator=annotator)
                claim(engine=runtime.engine, job_id=item.id, annotator="someone else", seconds=600)
                held.append(item.id)

    yield hold
    for job_id in held:
        release_claim(engine=runtime.engine, job_id=job_id)


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
    shown = " ".join(element.value for element in [*app.html, *app.text])
    assert html.escape(job_text(engine=runtime.engine, job_id=first).text[:40]) in shown, "its text is shown"
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


def test_two_people_who_give_no_name_are_two_annotators(runtime, client, uncertain_jobs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Given two people who open Review without typing a name (both were "console": they were
    # handed the same document and took turns overwriting each other's claim)
    for job in uncertain_jobs:  # (an earlier test's claims would leave one document to hand out)
        release_claim(engine=runtime.engine, job_id=job["id"])
    monkeypatch.setenv("HERON_DATA_DIR", str(runtime.settings.data_dir))
    get_settings.cache_clear()
    try:
        first = open_review(AppTest.from_file(APP, default_timeout=60), "")
        second = open_review(AppTest.from_file(APP, default_timeout=60), "")
    finally:
        get_settings.cache_clear()
    # Then each holds a different document, under a guest name of their own that the sidebar shows
    assert held(first) != held(second)
    with session_scope(runtime.engine) as session:
        holders = {session.get(ReviewClaim, held(app)).claimed_by for app in (first, second)}
    assert len(holders) == 2 and all(name.startswith("guest-") for name in holders), holders
    for app in (first, second):
        name = app.session_state["heron_user"].name
        assert any(name in caption.value and "enter your name" in caption.value for caption in app.caption)
        release_claim(engine=runtime.engine, job_id=held(app))


def test_the_document_marks_its_evidence_and_more_like_this_labels_a_selection_in_one_action(
    app: AppTest, runtime, client, held_by_others
) -> None:  # type: ignore[no-untyped-def]
    # Given four near-copies of a vague note (with markup in its text: documents are hostile input)
    # that the model is unsure about, and a confident finance report nobody has labelled
    run = uuid.uuid4().hex[:6]
    # (Fixed words: on a text this vague, a random token can sway the model.)
    note = (
        "Please find the <i>document</i> we talked about attached & let me know what you think of it "
        "(copy {n})."
    )
    family = [
        wait_for_job(
            client,
            client.post(
                "/api/classify_file",
                files={"file": (f"note-{run}-{n}.txt", note.format(n=n).encode())},
            ).json()["job_id"],
        )
        for n in range(1, 5)
    ]
    assert all(job["status"] == "COMPLETED" and job["needs_review"] for job in family), [
        (job["classification_result"], job["confidence"], job["needs_review"]) for job in family
    ]
    report = client.post(
        "/api/classify_file", files={"file": (f"report-{run}.txt", f"{FINANCE} Ref {run}.".encode())}
    ).json()
    assert wait_for_job(client, report["job_id"])["classification_result"] == "finance"
    family_ids = {job["id"] for job in family}
    held_by_others(family_ids)
    # When Ada opens Review
    open_review(app, "Ada")
    current = held(app)
    assert current in family_ids
    view = get_job(engine=runtime.engine, job_id=current)
    # Then the text is shown escaped, with the passages that support the answer marked ...
    assert view.evidence, "a classified document has evidence passages"
    body = app.html[0].value
    assert "<i>" not in body
    assert "&lt;i&gt;document&lt;/i&gt;" in body and "attached &amp; let" in body
    assert body.count("<mark") == len(view.evidence)
    for passage in view.evidence:
        assert html.escape(passage["text"]) in body
    # ... and listed with their scores
    passages = next(frame.value for frame in app.dataframe if "passage" in frame.value.columns)
    assert list(passages["score"]) == pytest.approx([passage["score"] for passage in view.evidence])
    # And "more like this" lists the other three copies first, each with the model's answer
    similar = app.data_editor[0].value
    assert set(similar["job"][:3]) == family_ids - {current}, similar
    assert report["job_id"] not in set(similar["job"][:3])
    assert list(similar["similarity"]) == sorted(similar["similarity"], reverse=True)
    assert similar["model says"].notna().all()
    # ... ticked where the model's answer is the label to apply (the held document's answer at first)
    label = app.selectbox(key=f"review-similar-label-{current}").value
    assert label == view.classification_result
    assert list(similar["select"]) == list(similar["model says"] == label)

    # ... and by default the button labels the document being reviewed too
    assert app.toggle(key="review-similar-include").value is True
    assert app.button(key="review-label-selection").label.startswith(
        f"Label this and {int(similar['select'].sum())} similar as"
    )

    # When she picks another label, leaves this document out, and ticks two of the copies
    app.selectbox(key=f"review-similar-label-{current}").set_value("legal").run()
    app.toggle(key="review-similar-include").set_value(False).run()
    similar = app.data_editor[0].value
    chosen = [job_id for job_id in similar["job"][:3]][:2]
    _tick_only(app, {int(similar.index[similar["job"] == job_id][0]) for job_id in chosen})
    button = app.button(key="review-label-selection")
    assert button.label == "Label selection as legal (2)"
    assert button.proto.shortcut.upper() == "L"
    button.click().run()
    # Then each of the two has its own pending correction by Ada, and nothing else was labelled
    assert not app.exception
    with session_scope(runtime.engine) as session:
        rows = session.exec(select(Feedback).where(Feedback.job_id.in_(family_ids))).all()
    assert sorted((row.job_id, row.label, row.author, row.status) for row in rows) == sorted(
        (job_id, "legal", "Ada", "pending") for job_id in chosen
    )
    assert metric(app, "Labelled this session") == "2"
    # ... they leave the panel, and Ada still holds the same document
    assert held(app) == current
    assert not set(chosen) & set(app.data_editor[0].value["job"])
    # When she hides the panel (key M)
    toggle = app.button(key="review-toggle-similar")
    assert toggle.proto.shortcut.upper() == "M"
    toggle.click().run()
    # Then it is gone, and the key shows it again
    assert not app.data_editor and app.button(key="review-toggle-similar").label == "Show more like this"
    assert held(app) == current

    # When she shows it again, keeps this document in, and labels it with the last copy (key L)
    app.button(key="review-toggle-similar").click().run()
    app.toggle(key="review-similar-include").set_value(True).run()
    app.selectbox(key=f"review-similar-label-{current}").set_value("legal").run()
    similar = app.data_editor[0].value
    last = (family_ids - {current} - set(chosen)).pop()
    _tick_only(app, {int(similar.index[similar["job"] == last][0])})
    button = app.button(key="review-label-selection")
    assert button.label == "Label this and 1 similar as legal (2)"
    button.click().run()
    # Then the document and the copy each have Ada's pending correction, and the next document comes
    assert not app.exception
    with session_scope(runtime.engine) as session:
        rows = session.exec(select(Feedback).where(Feedback.job_id.in_(family_ids))).all()
    assert sorted((row.job_id, row.label, row.author) for row in rows) == sorted(
        (job_id, "legal", "Ada") for job_id in family_ids
    )
    assert metric(app, "Labelled this session") == "4"
    assert app.session_state["review_claim"] is None or held(app) not in family_ids


def test_label_issues_list_doubtful_examples_to_relabel_or_keep(app: AppTest, runtime, client) -> None:  # type: ignore[no-untyped-def]
    # Given approved corrections for eight documents, two of them deliberately wrong, and a full
    # training run that cross-validated them (fixed texts: a document's content decides whether its
    # approved label trains or is kept as gold, and only training examples are cross-validated;
    # these eight all train)
    texts = [f"{FINANCE} Console ledger {i}." for i in range(4)] + [
        f"{CLINICAL} Console ward note {i}." for i in range(4)
    ]
    given = ["finance"] * 4 + ["healthcare"] * 4
    given[1], given[6] = "healthcare", "finance"
    run = uuid.uuid4().hex[:6]
    jobs = []
    for i, text in enumerate(texts):
        accepted = client.post("/api/classify_file", files={"file": (f"issue-{run}-{i}.txt", text.encode())})
        jobs.append(wait_for_job(client, accepted.json()["job_id"])["id"])
    ids = [
        client.post("/api/feedback/", json={"job_id": job_id, "corrected_classification": label}).json()[
            "feedback_id"
        ]
        for job_id, label in zip(jobs, given, strict=True)
    ]
    assert client.post("/api/feedback/approve", json={"ids": ids}).status_code in (200, 201)
    task = client.post("/api/retrain_model", json={}).json()
    assert wait_for_task(client, task["task_id"], timeout=600)["status"] == "SUCCEEDED"
    issues, _ = label_issue_queue(engine=runtime.engine, limit=10_000)
    flipped = {issue.job_id: issue for issue in issues if issue.job_id in (jobs[1], jobs[6])}
    assert set(flipped) == {jobs[1], jobs[6]}, issues
    clinical, report = flipped[jobs[6]].example_id, flipped[jobs[1]].example_id
    # When Ada (an admin: no keys are configured) orders Review by label issues
    open_review(app, "Ada")
    app.selectbox(key="review_strategy").set_value(LABEL_ISSUES).run()
    assert not app.exception
    # Then both wrong labels are listed with the model's suggestion ...
    assert app.button(key=f"review-relabel-{clinical}").label == "Relabel as healthcare"
    assert app.button(key=f"review-keep-{clinical}").label == "Keep finance"
    assert app.button(key=f"review-relabel-{report}").label == "Relabel as finance"
    assert any(flipped[jobs[6]].preview[:60] in element.value for element in app.text)
    # ... and the first one answers the keys A (relabel) and K (keep)
    shortcuts = {button.proto.shortcut.upper(): button.key for button in app.button if button.proto.shortcut}
    first = issues[0].example_id
    assert (shortcuts["A"], shortcuts["K"]) == (f"review-relabel-{first}", f"review-keep-{first}")
    left = int(metric(app, "Label issues left"))
    # When she relabels the clinical note as suggested
    app.button(key=f"review-relabel-{clinical}").click().run()
    # Then the example has the suggested label, it leaves the list, and she queued a training run
    assert not app.exception
    with session_scope(runtime.engine) as session:
        assert session.get(TrainingExample, clinical).label == "healthcare"
    assert not shows(app, f"review-relabel-{clinical}")
    assert int(metric(app, "Label issues left")) == left - 1
    events, _ = list_events(engine=runtime.engine, action="example.relabelled", actor="Ada")
    assert str(clinical) in {str(event.subject_id) for event in events}
    # (a request joins a run still waiting, however old, so the run may be one queued before: what
    # matters is that a run starts after her relabel, which it learns — a waiting one will, even if it
    # was taken once and put back while another run held the lease, keeping that first start time)
    relabelled = max(event.at for event in events if str(event.subject_id) == str(clinical))
    training, _ = list_tasks(engine=runtime.engine, kind="training", limit=1000)
    assert any(
        task.status == "PENDING" or (task.started_at is not None and task.started_at >= relabelled)
        for task in training
    ), [(task.requested_by, task.status, task.started_at, relabelled) for task in training[:5]]
    # When she keeps the other's label
    app.button(key=f"review-keep-{report}").click().run()
    # Then it leaves her list, and its label is unchanged
    assert not shows(app, f"review-keep-{report}")
    assert metric(app, "Kept") == "1"
    with session_scope(runtime.engine) as session:
        assert session.get(TrainingExample, report).label == "healthcare"
    wait_for_task(client, training[0].id)


def test_a_document_someone_else_holds_is_neither_offered_nor_labelled(
    app: AppTest, runtime, client, held_by_others
) -> None:  # type: ignore[no-untyped-def]
    from core.services.similar import similar_documents

    # Given near-copies of a vague note; Ada reviews one of them and Bob holds another
    run = uuid.uuid4().hex[:6]
    note = "Could you have a look at the attached and tell me what you make of it, item {n}."
    family = [
        client.post(
            "/api/classify_file", files={"file": (f"held-{run}-{n}.txt", note.format(n=n).encode())}
        ).json()["job_id"]
        for n in range(1, 5)
    ]
    for job_id in family:
        wait_for_job(client, job_id)
    bobs = family[1]
    claim(engine=runtime.engine, job_id=bobs, annotator="Bob", seconds=600)
    try:
        # Then more like this offers Ada the others, not the one Bob holds (ticked, she labelled it too)
        offered = {
            doc.job_id for doc in similar_documents(engine=runtime.engine, job_id=family[0], annotator="Ada")
        }
        assert bobs not in offered and {family[2], family[3]} <= offered
        assert bobs in {d.job_id for d in similar_documents(engine=runtime.engine, job_id=family[0])}
        # When Ada's claim on the document she is reviewing ran out and Bob took it, while her page
        # still shows it
        release_claim(engine=runtime.engine, job_id=bobs)
        held_by_others({family[0]})
        open_review(app, "Ada")
        assert held(app) == family[0]
        release_claim(engine=runtime.engine, job_id=family[0])
        claim(engine=runtime.engine, job_id=family[0], annotator="Bob", seconds=600)
        app.button(key=f"review-pick-{family[0]}-legal").click().run()
        # Then her label is not saved: the document is Bob's to label now
        assert not app.exception
        with session_scope(runtime.engine) as session:
            assert not session.exec(select(Feedback).where(Feedback.job_id == family[0])).all()
    finally:
        for job_id in family:
            release_claim(engine=runtime.engine, job_id=job_id)


def test_a_document_whose_answer_was_retired_offers_nothing_to_confirm(
    app: AppTest, runtime, client, held_by_others
) -> None:  # type: ignore[no-untyped-def]
    from core.db.tables import Prediction
    from core.services.taxonomy import add_industry, retire_industry

    # Given a queued document the model answered with an industry retired since
    run = uuid.uuid4().hex[:6]
    name = f"realty_{run}"
    add_industry(
        engine=runtime.engine, work=runtime.work, settings=runtime.settings, name=name, description="Homes."
    )
    job = client.post(
        "/api/classify_file", files={"file": (f"lease-{run}.txt", f"Lease {run} for the flat.".encode())}
    )
    job_id = wait_for_job(client, job.json()["job_id"])["id"]
    with session_scope(runtime.engine) as session:
        prediction = session.exec(select(Prediction).where(Prediction.job_id == job_id)).one()
        prediction.label, prediction.needs_review = name, True
        prediction.scores = {**prediction.scores, name: 0.6}
        session.add(prediction)
    retire_industry(engine=runtime.engine, work=runtime.work, name=name)
    held_by_others({job_id})
    # When Ada reviews it
    open_review(app, "Ada")
    assert held(app) == job_id
    # Then no button claims to confirm the model's answer, and the page says why key 1 differs
    assert not [button for button in app.button if button.label.startswith("Confirm ")]
    shown = name.replace("_", "\\_")  # as typed, escaped for Markdown
    assert any("retired since" in warning.value and shown in warning.value for warning in app.warning)
    release_claim(engine=runtime.engine, job_id=job_id)
