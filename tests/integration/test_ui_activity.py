"""The Activity page, driven by AppTest against the real database, API and in-process queue."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.db import session_scope
from core.db.tables import TaskStatus
from core.services import tasks
from core.settings import get_settings
from tests.conftest import wait_for_job
from tests.documents import FINANCE

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
    app.switch_page("pages/activity.py").run()
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
    # When the audit log is filtered to one action
    app.selectbox(key="activity_audit_action").set_value("synthesis.failed").run()
    # Then only those events are left
    assert set(table_with(app, "action")["action"]) == {"synthesis.failed"}
