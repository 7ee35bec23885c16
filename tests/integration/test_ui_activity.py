"""The Activity page, driven by AppTest against the real database, API and in-process queue."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.db import session_scope
from core.db.tables import TaskStatus
from core.services import tasks
from core.services.feedback import submit_feedback
from core.settings import get_settings
from tests.conftest import wait_for_job
from tests.documents import CLINICAL, FINANCE

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")
BROKEN_PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage \x00\x01 trailer"


@pytest.fixture
def app(runtime, client, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # The console reads its settings from the environment, like `heron ui` does; point it at the
    # database the session's worker threads serve.
    monkeypatch.setenv("HERON_DATA_DIR", str(runtime.settings.data_dir))
    get_settings.cache_clear()
    yield AppTest.from_file(APP, default_timeout=60)
    get_settings.cache_clear()


def open_activity(app: AppTest) -> AppTest:
    # Sign in before the first run (see tests/integration/test_ui.py::sign_in), then open Activity.
    app.session_state["heron_user_name"] = "Ada"
    app.run()
    app.switch_page("views/activity.py").run()
    assert not app.exception
    return app


def table_with(app: AppTest, column: str) -> pd.DataFrame:
    return next(frame.value for frame in app.dataframe if column in frame.value.columns)


def test_activity_shows_jobs_tasks_failures_and_the_audit_log(app: AppTest, runtime, client) -> None:  # type: ignore[no-untyped-def]
    # Given a classified document, a document that cannot be read, and a synthesis run that failed
    good = client.post("/api/classify_file", files={"file": ("q3.txt", FINANCE.encode())}).json()
    bad = client.post("/api/classify_file", files={"file": ("broken.pdf", BROKEN_PDF)}).json()
    assert wait_for_job(client, good["job_id"])["status"] == "COMPLETED"
    failed = wait_for_job(client, bad["job_id"])
    assert failed["status"] == "FAILED"
    with session_scope(runtime.engine) as session:
        task = tasks.create_task(
            session, kind="synthesis", params={"industry": "finance"}, requested_by="Ada"
        )
    tasks.start(runtime.engine, task.id)
    tasks.finish(
        runtime.engine,
        task.id,
        TaskStatus.FAILED,
        error_code="llm_unavailable",
        error_message="No LLM is configured.",
    )
    # When Ada opens Activity
    open_activity(app)
    # Then the jobs are listed with their outcome
    jobs = table_with(app, "file")
    assert {"q3.txt", "broken.pdf"} <= set(jobs["file"])
    assert jobs.loc[jobs["job"] == bad["job_id"], "error code"].item() == failed["error_code"]
    # And the failed task with its code
    task_table = table_with(app, "kind")
    row = task_table[task_table["task"] == task.id]
    assert row[["kind", "status", "error code"]].values.tolist() == [
        ["synthesis", "FAILED", "llm_unavailable"]
    ]
    # And the failures, each with its error code
    errors = [element.value for element in app.error]
    assert any("broken.pdf" in error and failed["error_code"] in error for error in errors)
    assert any("synthesis" in error and "llm_unavailable" in error for error in errors)
    # And the audit log, newest first, with who did it
    audit = table_with(app, "action")
    assert {"document.uploaded", "synthesis.requested", "synthesis.failed"} <= set(audit["action"])
    assert "Ada" in set(audit.loc[audit["action"] == "synthesis.requested", "actor"])
    # When the reader pages past the end, they are told how many pages there are
    app.number_input(key="activity_audit_page_None").set_value(10_000).run()
    assert any("No events on page 10000: there are" in info.value for info in app.info)
    # When the audit log is filtered to one action
    app.selectbox(key="activity_audit_action").set_value("synthesis.failed").run()
    # Then only those events are left, from the first page on
    assert set(table_with(app, "action")["action"]) == {"synthesis.failed"}


def test_annotators_are_listed_with_their_agreement(app: AppTest, runtime, client) -> None:  # type: ignore[no-untyped-def]
    # Given two annotators who labelled the same four documents, agreeing on three
    run = uuid.uuid4().hex[:6]
    cy, bea = f"cy-{run}", f"bea-{run}"
    jobs = [
        wait_for_job(
            client,
            client.post(
                "/api/classify_file", files={"file": (f"k{i}-{run}.txt", f"{text} Copy {run}-{i}.".encode())}
            ).json()["job_id"],
        )["id"]
        for i, text in enumerate([FINANCE, FINANCE, CLINICAL, CLINICAL])
    ]
    for job_id, label in zip(jobs, ["finance", "finance", "healthcare", "healthcare"], strict=True):
        submit_feedback(engine=runtime.engine, job_id=job_id, label=label, author=cy)
    for job_id, label in zip(jobs, ["finance", "finance", "healthcare", "legal"], strict=True):
        submit_feedback(engine=runtime.engine, job_id=job_id, label=label, author=bea)
    # When Ada opens Activity
    open_activity(app)
    # Then each annotator is listed with what they labelled
    annotators = table_with(app, "gold accuracy").set_index("annotator")
    assert annotators.loc[[bea, cy], ["labels", "documents"]].values.tolist() == [[4, 4], [4, 4]]
    # ... and the pair's agreement: observed 3/4, Cohen's kappa (3/4 - 6/16) / (1 - 6/16) = 0.6
    pairs = table_with(app, "kappa")
    pair = pairs[(pairs["annotator"] == bea) & (pairs["other annotator"] == cy)]
    assert pair[["shared documents", "agreement"]].values.tolist() == [[4, 0.75]]
    assert pair["kappa"].item() == pytest.approx(0.6, abs=1e-4)
    # ... with a sentence saying what kappa means
    assert any("Cohen's kappa" in caption.value and "chance" in caption.value for caption in app.caption)


def test_the_audit_log_is_for_reviewers_as_in_the_api(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    # Given a console with API keys, and an annotator's key (GET /api/audit refuses it: 403)
    monkeypatch.setenv("HERON_API_KEYS", "ann-key:annotator,rev-key:reviewer")
    get_settings.cache_clear()
    app.session_state["heron_api_key"] = "ann-key"
    app.run()
    # When the annotator opens Activity
    app.switch_page("views/activity.py").run()
    # Then jobs and tasks show, but no event of the audit log: the tab says whom it is for
    assert not app.exception
    assert not [frame for frame in app.dataframe if "action" in frame.value.columns]
    assert any("audit log is for reviewers" in info.value for info in app.info)
    # And a reviewer reads it
    app.session_state["heron_api_key"] = "rev-key"
    app.run()
    assert [frame for frame in app.dataframe if "action" in frame.value.columns]


def test_a_file_name_is_shown_as_it_is_never_as_markup(app: AppTest, client) -> None:  # type: ignore[no-untyped-def]
    # Given a file that fails, named like a link a page could show under the console's title
    name = "[Session expired, sign in again](https:evil.example) __URGENT__.pdf"
    failed = client.post("/api/classify_file", files={"file": (name, BROKEN_PDF)}).json()
    assert wait_for_job(client, failed["job_id"])["status"] == "FAILED"
    # When Activity lists the failures
    open_activity(app)
    shown = [error.value for error in app.error if "Session expired" in error.value]
    # Then its name is escaped for Markdown: shown as typed, not as a link in bold
    assert shown and all("\\[Session expired, sign in again\\](https:evil.example)" in s for s in shown)
    assert all("\\_\\_URGENT\\_\\_" in s for s in shown)
