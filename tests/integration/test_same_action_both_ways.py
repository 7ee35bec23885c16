"""One action, two doors: the API route and the console page call the same use case and leave the
same rows behind. Each test spies on the use case (the real one runs) and drives both doors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pytest
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from core.corpus import content_hash
from core.db import session_scope
from core.db.tables import AuditEvent, Feedback, Industry, Task, TrainingExample
from core.services import examples, feedback, industries, models, retraining, review, taxonomy
from core.settings import get_settings
from tests.conftest import wait_for_job, wait_for_task
from tests.documents import FINANCE

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")
VAGUE = "Notes from the meeting {run}. Several items were discussed and some were agreed."
ORCHARDS = "Apple and pear orchards: pruning, grafting, blossom frost, harvests and cold storage."


@pytest.fixture
def app(runtime, client, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # The console reads its settings from the environment, like `heron ui` does; point it at the
    # database the session's worker threads serve (the API's).
    monkeypatch.setenv("HERON_DATA_DIR", str(runtime.settings.data_dir))
    get_settings.cache_clear()
    yield AppTest.from_file(APP, default_timeout=120)
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def same_model_afterwards(runtime, client) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """These tests train new versions of the session's shared model; the one active before comes back
    after each, so later tests meet the model they would have met without them."""
    before = models.active_report(engine=runtime.engine)
    yield
    if before is not None and models.active_report(engine=runtime.engine).id != before.id:
        models.activate_version(engine=runtime.engine, version_id=before.id, actor="test")


@contextmanager
def spying(module: ModuleType, name: str) -> Iterator[list[tuple[dict[str, Any], Any]]]:
    """Record every call of ``module.name`` (keyword arguments, result); the real function runs."""
    real = getattr(module, name)
    calls: list[tuple[dict[str, Any], Any]] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        assert not args, "use cases take keyword arguments"
        result = real(**kwargs)
        calls.append((kwargs, result))
        return result

    with mock.patch.object(module, name, spy):
        yield calls


def console(app: AppTest, user: str, page: str) -> AppTest:
    # The sidebar's name field is filled in before the first run (AppTest re-runs only the page after it).
    app.session_state["heron_user_name"] = user
    app.run()
    app.switch_page(page).run()
    assert not app.exception
    return app


def select_only_row_and_press(page: AppTest, ids: list[int], button: str) -> None:
    """Check that the page's table lists exactly ``ids``, tick its first row and press ``button``."""
    editor = page.data_editor[0]
    assert list(editor.value["id"]) == ids
    page.session_state[editor.key] = {
        "edited_rows": {0: {"select": True}},
        "added_rows": [],
        "deleted_rows": [],
    }
    page.run()
    page.button(key=button).click().run(timeout=180)
    assert not page.exception


def as_user(user: str) -> dict[str, str]:
    return {"X-Heron-User": user}


def classified(client, text: str, name: str) -> str:  # type: ignore[no-untyped-def]
    job = wait_for_job(
        client, client.post("/api/classify_file", files={"file": (name, text.encode())}).json()["job_id"]
    )
    assert job["status"] == "COMPLETED", job
    return job["id"]


def audited(runtime, action: str, actor: str) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    with session_scope(runtime.engine) as session:
        rows = session.exec(select(AuditEvent).where(AuditEvent.action == action, AuditEvent.actor == actor))
        return {row.subject_id: row.details for row in rows}


def training_ends(client, task_ids: list[str]) -> list[dict]:  # type: ignore[no-untyped-def]
    """Wait for these training runs, so the next test starts with no training in flight."""
    ended = [wait_for_task(client, task_id) for task_id in task_ids]
    assert all(task["status"] == "SUCCEEDED" for task in ended), ended
    return ended


def api_training_ends(client, calls: list[tuple[dict[str, Any], Any]]) -> None:  # type: ignore[no-untyped-def]
    """Wait for the training the API's call queued before the console runs: a page's script is
    compiled while the training runs in a worker thread, and CPython 3.11's ast.parse can fail when
    two threads run it at once (SystemError: AST constructor recursion depth mismatch)."""
    ((_, result),) = calls
    task = getattr(result, "training_task", None)
    training_ends(client, [task.id] if task is not None else [])


def test_a_correction_is_the_same_pending_feedback_from_the_api_or_the_review_page(
    app: AppTest, runtime, client
) -> None:  # type: ignore[no-untyped-def]
    # Given two documents the model is unsure about, and nothing else in the annotator's queue
    run = uuid.uuid4().hex[:6]
    user = f"ada-{run}"
    by_api = classified(client, VAGUE.format(run=f"{run}-a"), f"a-{run}.txt")
    by_console = classified(client, VAGUE.format(run=f"{run}-b"), f"b-{run}.txt")
    waiting, _ = review.review_queue(engine=runtime.engine, limit=1000, annotator=user)
    assert {by_api, by_console} <= {item.id for item in waiting}
    others = [item.id for item in waiting if item.id != by_console]
    holder = f"someone-else-{run}"
    for job_id in others:
        review.claim(engine=runtime.engine, job_id=job_id, annotator=holder, seconds=300)
    try:
        with spying(feedback, "submit_feedback") as calls:
            # When the annotator corrects one through the API and the other on the Review page
            sent = client.post(
                "/api/feedback",
                json={"job_id": by_api, "corrected_classification": "legal"},
                headers=as_user(user),
            )
            assert sent.status_code == 200, sent.text
            page = console(app, user, "views/review.py")
            assert page.session_state["review_claim"][0] == by_console
            page.button(key=f"review-pick-{by_console}-legal").click().run()
            assert not page.exception
    finally:
        for job_id in others:
            review.release_claim(engine=runtime.engine, job_id=job_id, annotator=holder)
    # Then both went through the one use case ...
    assert [(kwargs["job_id"], kwargs["label"], kwargs["author"]) for kwargs, _ in calls] == [
        (by_api, "legal", user),
        (by_console, "legal", user),
    ]
    # ... and left the same rows: a pending correction in the annotator's name, and its audit event
    with session_scope(runtime.engine) as session:
        rows = session.exec(select(Feedback).where(Feedback.job_id.in_([by_api, by_console]))).all()
        shapes = {row.job_id: (row.label, row.author, row.status, row.reviewer) for row in rows}
    assert shapes == {by_api: ("legal", user, "pending", None), by_console: ("legal", user, "pending", None)}
    events = audited(runtime, "feedback.created", user)
    assert sorted(details["job_id"] for details in events.values()) == sorted([by_api, by_console])


def test_approving_a_correction_from_the_api_or_the_approvals_page_trains_the_same_way(
    app: AppTest, runtime, client
) -> None:  # type: ignore[no-untyped-def]
    # Given two classified documents, each with a pending correction
    run = uuid.uuid4().hex[:6]
    annotator, reviewer = f"ada-{run}", f"grace-{run}"
    jobs = [classified(client, f"{FINANCE} Ledger {run}-{i}.", f"ledger-{run}-{i}.txt") for i in range(2)]
    corrections = [
        feedback.submit_feedback(engine=runtime.engine, job_id=job_id, label="finance", author=annotator).id
        for job_id in jobs
    ]
    with spying(feedback, "decide") as calls:
        # When a reviewer approves one through the API and the other on the Approvals page
        approved = client.post(f"/api/feedback/{corrections[0]}/approve", headers=as_user(reviewer))
        assert approved.status_code == 200, approved.text
        api_training_ends(client, calls)
        page = console(app, reviewer, "views/approvals.py")
        page.multiselect(key="approvals_author").set_value([annotator]).run()
        select_only_row_and_press(page, [corrections[1]], "approve_selected")
    # Then both went through the one use case, which queued an incremental training run each time
    assert [(kwargs["feedback_ids"], kwargs["approve"], kwargs["reviewer"]) for kwargs, _ in calls] == [
        ([corrections[0]], True, reviewer),
        ([corrections[1]], True, reviewer),
    ]
    queued = [result.training_task for _, result in calls]
    assert all(task is not None and task.params == {"mode": "incremental"} for task in queued)
    training_ends(client, [task.id for task in queued])
    # ... and the rows are the same: approved in the reviewer's name, each a training example
    with session_scope(runtime.engine) as session:
        decided = {
            row.id: (row.status, row.reviewer)
            for row in session.exec(select(Feedback).where(Feedback.id.in_(corrections)))
        }
        trained = session.exec(
            select(TrainingExample.feedback_id, TrainingExample.source).where(
                TrainingExample.feedback_id.in_(corrections)
            )
        ).all()
    assert decided == {correction: ("approved", reviewer) for correction in corrections}
    assert sorted(trained) == [(correction, "feedback") for correction in corrections]
    assert {int(subject) for subject in audited(runtime, "feedback.approved", reviewer)} == set(corrections)


def test_adding_an_industry_from_the_api_or_the_industries_page_is_one_use_case(
    app: AppTest, runtime, client
) -> None:  # type: ignore[no-untyped-def]
    run = uuid.uuid4().hex[:6]
    user = f"grace-{run}"
    names = [f"orchards_api_{run}", f"orchards_console_{run}"]
    try:
        with spying(taxonomy, "add_industry") as calls:
            # When a reviewer adds one industry through the API and another on the Industries page
            created = client.post(
                "/api/industries",
                json={"industry_name": names[0], "description": ORCHARDS},
                headers=as_user(user),
            )
            assert created.status_code == 202, created.text
            api_training_ends(client, calls)
            page = console(app, user, "views/industries.py")
            page.text_input(key="industries_new_name").input(names[1])
            page.text_area(key="industries_new_description").input(ORCHARDS)
            page.button(key="industries_add_submit").click().run(timeout=180)
            assert not page.exception
        # Then both went through the one use case, which queued the training that makes each live
        assert [(kwargs["name"], kwargs["description"], kwargs["actor"]) for kwargs, _ in calls] == [
            (names[0], ORCHARDS, user),
            (names[1], ORCHARDS, user),
        ]
        training_ends(client, [result.training_task.id for _, result in calls])
        # ... and the rows are the same: an active industry with its description, audited
        with session_scope(runtime.engine) as session:
            rows = session.exec(select(Industry).where(Industry.name.in_(names))).all()
            shapes = {row.name: (row.description, row.status, row.catch_all) for row in rows}
            requested = session.exec(
                select(Task.requested_by).where(Task.id.in_([result.training_task.id for _, result in calls]))
            ).all()
        assert shapes == {name: (ORCHARDS, "active", False) for name in names}
        assert requested == [user, user]
        assert set(audited(runtime, "industry.created", user)) == set(names)
    finally:
        for name in names:
            industries.retire_industry(engine=runtime.engine, name=name, actor="test")


def test_renaming_an_industry_from_the_api_or_the_industries_page_is_one_use_case(
    app: AppTest, runtime, client
) -> None:  # type: ignore[no-untyped-def]
    # Given two industries
    run = uuid.uuid4().hex[:6]
    user = f"grace-{run}"
    old = [f"fruit_a_{run}", f"fruit_b_{run}"]
    new = [f"orchards_a_{run}", f"orchards_b_{run}"]
    for name in old:
        industries.create_industry(engine=runtime.engine, name=name, description=ORCHARDS, actor="test")
    try:
        with spying(taxonomy, "update_industry") as calls:
            # When a reviewer renames one through the API and the other on the Industries page
            renamed = client.patch(f"/api/industries/{old[0]}", json={"name": new[0]}, headers=as_user(user))
            assert renamed.status_code == 200, renamed.text
            api_training_ends(client, calls)
            page = console(app, user, "views/industries.py")
            page.selectbox(key="industries_edit_target").select(old[1]).run()
            page.text_input(key=f"industries_edit_name_{old[1]}").input(new[1])
            page.button(key="industries_edit_submit").click().run()
            assert not page.exception
        # Then both went through the one use case, which queued training each time
        assert [(kwargs["name"], kwargs["new_name"], kwargs["actor"]) for kwargs, _ in calls] == [
            (old[0], new[0], user),
            (old[1], new[1], user),
        ]
        training_ends(client, [result.training_task.id for _, result in calls])
        # ... and the rows are the same: the new names, the old ones gone, the renames audited
        with session_scope(runtime.engine) as session:
            listed = set(session.exec(select(Industry.name).where(Industry.name.in_(old + new))).all())
        assert listed == set(new)
        events = audited(runtime, "industry.renamed", user)
        assert {name: details["previous"] for name, details in events.items()} == dict(
            zip(new, old, strict=True)
        )
    finally:
        for name in new:
            industries.retire_industry(engine=runtime.engine, name=name, actor="test")


def test_a_full_retrain_from_the_api_or_the_models_page_is_one_use_case(
    app: AppTest, runtime, client
) -> None:  # type: ignore[no-untyped-def]
    run = uuid.uuid4().hex[:6]
    user = f"admin-{run}"
    with spying(retraining, "queue_training") as calls:
        # When an admin asks for a full retrain through the API, and (once it ran) on the Models page
        asked = client.post(
            "/api/retrain_model", json={"retrain_on_feedback_only": False}, headers=as_user(user)
        )
        assert asked.status_code == 202, asked.text
        training_ends(client, [asked.json()["task_id"]])
        page = console(app, user, "views/models.py")
        page.button(key="models_retrain").click().run(timeout=300)
        assert not page.exception
    # Then both went through the one use case ...
    assert [(kwargs["incremental"], kwargs["actor"]) for kwargs, _ in calls] == [(False, user), (False, user)]
    ended = training_ends(client, [result.id for _, result in calls])
    # ... and each ran a full retrain in the admin's name that produced a version
    assert [(task["params"], task["requested_by"]) for task in ended] == [({"mode": "full"}, user)] * 2
    assert all(task["result"]["version_id"] for task in ended)
    assert any("Model v" in success.value for success in page.success)


def test_approving_synthetic_examples_from_the_api_or_the_industries_page_is_one_use_case(
    app: AppTest, runtime, client
) -> None:  # type: ignore[no-untyped-def]
    # Given an industry with two synthetic documents waiting for review
    run = uuid.uuid4().hex[:6]
    user = f"grace-{run}"
    name = f"orchards_synthetic_{run}"
    industries.create_industry(engine=runtime.engine, name=name, description=ORCHARDS, actor="test")
    texts = [
        f"Orchard diary {run}-{i}: pruned the pear trees, grafted apples and checked the cold store."
        for i in range(2)
    ]
    with session_scope(runtime.engine) as session:
        rows = [
            TrainingExample(
                text=text,
                content_hash=content_hash(text),
                label=name,
                source="synthetic",
                status="pending",
                origin=f"synthetic/test/{i}",
                meta={"genre": "orchard diary", "predicted": name, "confidence": 0.8},
            )
            for i, text in enumerate(texts)
        ]
        session.add_all(rows)
        session.flush()
        ids = [row.id for row in rows]
    try:
        with spying(examples, "decide_examples") as calls:
            # When a reviewer approves one through the API and the other on the Industries page
            approved = client.post("/api/examples/approve", json={"ids": [ids[0]]}, headers=as_user(user))
            assert approved.status_code == 200, approved.text
            api_training_ends(client, calls)
            page = console(app, user, "views/industries.py")
            page.selectbox(key="industries_synthetic_industry").select(name).run()
            select_only_row_and_press(page, [ids[1]], "synthetic_approve")
        # Then both went through the one use case, which queued an incremental training run each time
        assert [(kwargs["ids"], kwargs["approve"], kwargs["actor"]) for kwargs, _ in calls] == [
            ([ids[0]], True, user),
            ([ids[1]], True, user),
        ]
        training_ends(client, [result.training_task.id for _, result in calls])
        # ... and the rows are the same: approved, audited in the reviewer's name
        with session_scope(runtime.engine) as session:
            statuses = session.exec(select(TrainingExample.status).where(TrainingExample.id.in_(ids))).all()
        assert statuses == ["approved", "approved"]
        assert {int(subject) for subject in audited(runtime, "example.approved", user)} == set(ids)
    finally:
        industries.retire_industry(engine=runtime.engine, name=name, actor="test")
