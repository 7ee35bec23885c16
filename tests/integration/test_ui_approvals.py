"""The Approvals page, driven by Streamlit's AppTest against the real database and queue."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.services.feedback import list_feedback, submit_feedback
from core.services.models import list_versions
from core.settings import get_settings
from tests.conftest import wait_for_job
from tests.documents import FINANCE

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")


@pytest.fixture
def app(runtime, client, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # The console reads its settings from the environment, like `heron ui` does; point it at the
    # database the session's worker threads serve.
    monkeypatch.setenv("HERON_DATA_DIR", str(runtime.settings.data_dir))
    get_settings.cache_clear()
    yield AppTest.from_file(APP, default_timeout=60)
    get_settings.cache_clear()


def _classified_job(client, text: str, name: str) -> str:  # type: ignore[no-untyped-def]
    job_id = client.post("/api/classify_file", files={"file": (name, text.encode())}).json()["job_id"]
    job = wait_for_job(client, job_id)
    assert job["status"] == "COMPLETED", job
    return job_id


def _tick(app: AppTest, *rows: int) -> None:
    """Tick the ``select`` box of these rows of the data editor (AppTest seeds its edit state)."""
    editor = app.data_editor[0]
    app.session_state[editor.key] = {
        "edited_rows": {row: {"select": True} for row in rows},
        "added_rows": [],
        "deleted_rows": [],
    }
    app.run()


def _version_ids(runtime) -> set[int]:  # type: ignore[no-untyped-def]
    return {version.id for version in list_versions(engine=runtime.engine)}


def _decide_all(app: AppTest):  # type: ignore[no-untyped-def]
    """The "decide all shown" confirmation (its key changes with every decision)."""
    return next(box for box in app.checkbox if box.label.startswith("Decide all"))


def test_approving_corrections_shows_disagreements_and_trains_a_new_version(
    app: AppTest, runtime, client
) -> None:  # type: ignore[no-untyped-def]
    # Given five classified finance documents that one annotator labelled, and a second annotator
    # who disagrees about the first of them
    run = uuid.uuid4().hex[:6]
    ada, bob, grace = f"ada-{run}", f"bob-{run}", f"Grace-{run}"
    jobs = [
        _classified_job(client, f"{FINANCE} Ledger reference {run}-{i}.", f"results-{run}-{i}.txt")
        for i in range(5)
    ]
    for job_id in jobs:
        submit_feedback(engine=runtime.engine, job_id=job_id, label="finance", author=ada)
    submit_feedback(engine=runtime.engine, job_id=jobs[0], label="legal", author=bob)
    before = _version_ids(runtime)

    # When a reviewer opens the Approvals page and filters on the two annotators
    # (the sidebar's name field is filled in before the first run: AppTest re-runs only the page after it)
    app.session_state["heron_user_name"] = grace
    app.run()
    app.switch_page("views/approvals.py").run()
    assert not app.exception
    app.multiselect(key="approvals_author").set_value([ada, bob]).run()
    # Then each correction shows its author, the model's answer and the disagreement
    table = app.data_editor[0].value
    assert sorted(table["author"]) == sorted([ada] * 5 + [bob])
    assert set(table["model said"]) == {"finance"}
    disputed = table[table["job"] == jobs[0]]
    assert list(disputed["disagreement"]) == [True, True]
    assert not table[table["job"] != jobs[0]]["disagreement"].any()

    # When the reviewer ticks the dissenting correction and rejects it
    bob_row = int(table.index[table["author"] == bob][0])
    _tick(app, bob_row)
    assert app.button(key="reject_selected").label == "Reject selected (1)"
    app.button(key="reject_selected").click().run()
    # Then it is rejected in the reviewer's name and leaves the queue
    assert not app.exception
    assert app.success[0].value == f"Rejected 1 correction as {grace}."
    rejected, _ = list_feedback(engine=runtime.engine, status="rejected", limit=1000)
    assert [(item.author, item.reviewer) for item in rejected if item.job_id == jobs[0]] == [(bob, grace)]
    assert sorted(app.data_editor[0].value["author"]) == [ada] * 5
    assert not app.data_editor[0].value["disagreement"].any()

    # When the reviewer approves all five shown
    _decide_all(app).check().run()
    app.button(key="approve_all").click().run(timeout=120)
    # Then they are approved in the reviewer's name, the page follows the training run they queued
    # to its end and says which version it produced and whether it went live
    assert not app.exception
    assert app.success[0].value.startswith(f"Approved 5 corrections as {grace}.")
    approved, _ = list_feedback(engine=runtime.engine, status="approved", limit=1000)
    assert sorted(item.job_id for item in approved if item.reviewer == grace) == sorted(jobs)
    assert [bar.value for bar in app.get("progress")][-1] == 100  # percent
    outcome = " ".join(element.value for element in [*app.success, *app.warning, *app.info, *app.error])
    assert "Model v" in outcome or "nothing new to learn" in outcome, outcome
    # ... and "decide all" asks afresh: nothing is armed for whatever the queue shows next
    assert not [box for box in app.checkbox if box.label.startswith("Decide all") and box.value]
    assert not [button for button in app.button if button.key in ("approve_all", "reject_all")]
    # ... and a new model version exists
    deadline = time.monotonic() + 120
    while not (_version_ids(runtime) - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _version_ids(runtime) - before, "no model version was trained after the approval"


def test_a_tick_stays_on_its_correction_when_the_queue_moves_under_it(app: AppTest, runtime, client) -> None:  # type: ignore[no-untyped-def]
    from core.services.feedback import decide

    # Given three corrections by one annotator and one by another, shown to a reviewer
    run = uuid.uuid4().hex[:6]
    ada, bob = f"ada-{run}", f"bob-{run}"
    jobs = [
        _classified_job(client, f"{FINANCE} Remittance {run}-{i}.", f"moving-{run}-{i}.txt") for i in range(5)
    ]
    first = [submit_feedback(engine=runtime.engine, job_id=j, label="finance", author=ada) for j in jobs[:3]]
    bobs = submit_feedback(engine=runtime.engine, job_id=jobs[3], label="legal", author=bob)
    app.session_state["heron_user_name"] = f"Grace-{run}"
    app.run()
    app.switch_page("views/approvals.py").run()
    app.multiselect(key="approvals_author").set_value([ada, bob]).run()
    table = app.data_editor[0].value
    # When the reviewer ticks Bob's correction
    _tick(app, int(table.index[table["id"] == bobs.id][0]))
    # ... and meanwhile another reviewer decides one of Ada's and Ada files another (as many rows)
    decide(
        engine=runtime.engine, work=runtime.work, feedback_ids=[first[0].id], approve=False, reviewer="eve"
    )
    later = submit_feedback(engine=runtime.engine, job_id=jobs[4], label="finance", author=ada)
    app.run()
    # Then the tick is still on Bob's correction, and rejecting the selection rejects Bob's only
    assert app.button(key="reject_selected").label == "Reject selected (1)"
    app.button(key="reject_selected").click().run()
    assert not app.exception
    pending = {item.id for item in list_feedback(engine=runtime.engine, status="pending", limit=1000)[0]}
    assert bobs.id not in pending and later.id in pending, (bobs.id, later.id)


def test_a_refused_approval_keeps_the_reviewers_ticks(app: AppTest, runtime, client) -> None:  # type: ignore[no-untyped-def]
    # Given two corrections that label one document differently, both ticked by a reviewer
    run = uuid.uuid4().hex[:6]
    job = _classified_job(client, f"{FINANCE} Disputed {run}.", f"disputed-{run}.txt")
    ada = submit_feedback(engine=runtime.engine, job_id=job, label="finance", author=f"ada-{run}")
    bob = submit_feedback(engine=runtime.engine, job_id=job, label="legal", author=f"bob-{run}")
    app.session_state["heron_user_name"] = f"Grace-{run}"
    app.run()
    app.switch_page("views/approvals.py").run()
    app.multiselect(key="approvals_author").set_value([f"ada-{run}", f"bob-{run}"]).run()
    table = app.data_editor[0].value
    _tick(app, *(int(table.index[table["id"] == row.id][0]) for row in (ada, bob)))
    # When the reviewer approves the selection, which is refused (one document, two labels)
    app.button(key="approve_selected").click().run()
    # Then the page says why, and the ticks are still there to untick the wrong one (they were cleared)
    assert not app.exception
    assert any("Nothing was decided" in error.value for error in app.error)
    assert app.button(key="approve_selected").label == "Approve selected (2)"


def test_approve_all_leaves_corrections_to_a_retired_industry_and_says_which(
    app: AppTest, runtime, client
) -> None:  # type: ignore[no-untyped-def]
    from core.services.taxonomy import add_industry, retire_industry

    # Given two corrections by one annotator, one of them to an industry retired since it was filed
    run = uuid.uuid4().hex[:6]
    ada = f"ada-{run}"
    name = f"realty_{run}"
    add_industry(
        engine=runtime.engine,
        work=runtime.work,
        settings=runtime.settings,
        name=name,
        description="Property.",
    )
    jobs = [_classified_job(client, f"{FINANCE} Deed {run}-{i}.", f"deed-{run}-{i}.txt") for i in range(2)]
    kept = submit_feedback(engine=runtime.engine, job_id=jobs[0], label="finance", author=ada)
    stale = submit_feedback(engine=runtime.engine, job_id=jobs[1], label=name, author=ada)
    retire_industry(engine=runtime.engine, work=runtime.work, name=name)
    app.session_state["heron_user_name"] = f"Grace-{run}"
    app.run()
    app.switch_page("views/approvals.py").run()
    app.multiselect(key="approvals_author").set_value([ada]).run()
    # Then the table marks the one that cannot be approved
    table = app.data_editor[0].value
    assert dict(zip(table["id"], table["industry retired"], strict=True)) == {kept.id: False, stale.id: True}
    # When the reviewer approves all shown
    _decide_all(app).check().run()
    app.button(key="approve_all").click().run(timeout=120)
    # Then the other is approved, and the stale one stays, named, instead of blocking both
    assert not app.exception
    assert any(f"#{stale.id}" in warning.value and "retired" in warning.value for warning in app.warning)
    status = {item.id: item.status for item in list_feedback(engine=runtime.engine, limit=10_000)[0]}
    assert (status[kept.id], status[stale.id]) == ("approved", "pending")
