"""The console's first page, driven by Streamlit's AppTest against the real database and queue."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.db import session_scope
from core.services.audit import list_events
from core.services.models import list_versions
from core.settings import get_settings
from tests.conftest import wait_for_job
from tests.documents import FINANCE, LEGAL, pdf_bytes

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")


@pytest.fixture
def app(runtime, client, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # The console reads its settings from the environment, like `heron ui` does; point it at the
    # database the session's worker threads serve.
    monkeypatch.setenv("HERON_DATA_DIR", str(runtime.settings.data_dir))
    get_settings.cache_clear()
    yield AppTest.from_file(APP, default_timeout=60)
    get_settings.cache_clear()


def sign_in(app: AppTest, name: str) -> None:
    """Type ``name`` into the sidebar before the first run (the router signs the person in).

    (The page scripts are in ``ui/views``, not ``pages/``: with a ``pages/`` folder, Streamlit's
    older multipage mode runs a page's script without the router, in AppTest after the first run and
    in a real server when the first visitor opens a page's own address.)
    """
    app.session_state["heron_user_name"] = name
    app.run()
    assert app.session_state["heron_user"].name == name


def test_empty_page_says_what_to_do(app: AppTest) -> None:
    app.run()
    assert not app.exception
    assert app.title[0].value == "Classify documents"
    assert "Choose one or more files" in app.info[0].value


def test_upload_shows_the_industry(app: AppTest) -> None:
    # Given the classify page
    app.run()
    # When a PDF about quarterly results is uploaded and classified
    app.file_uploader[0].upload("q3.pdf", pdf_bytes(FINANCE), "application/pdf")
    app.run()
    app.button[0].click()
    app.run()
    # Then the results table shows the file with its industry
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table["file"]) == ["q3.pdf"]
    assert list(table["status"]) == ["COMPLETED"]
    assert list(table["industry"]) == ["finance"]


def test_an_empty_file_is_refused_with_its_reason(app: AppTest) -> None:
    app.run()
    app.file_uploader[0].upload("blank.txt", b"", "text/plain")
    app.run()
    app.button[0].click()
    app.run()
    assert not app.exception
    assert "empty" in app.error[0].value


def test_the_document_view_shows_text_pages_scores_and_why(app: AppTest, runtime) -> None:  # type: ignore[no-untyped-def]
    # Given a signed-in user on the classify page
    sign_in(app, "Ada")
    # When a two-page PDF is uploaded and classified
    app.file_uploader[0].upload("report.pdf", pdf_bytes(FINANCE, LEGAL), "application/pdf")
    app.run()
    app.button[0].click()
    app.run()
    # Then the document view shows its extracted text, the score of every industry and the routing
    assert not app.exception
    assert app.subheader[0].value == "Document"
    assert any("Quarterly results" in text.value for text in app.text)
    assert any("2 page(s)" in caption.value for caption in app.caption)
    assert app.get("vega_lite_chart"), "no score chart"
    explained = " ".join(markdown.value for markdown in app.markdown)
    assert "fast tier answered alone" in explained or "Escalated to the transformer tier" in explained
    # ... with the threshold the model that answered routed by (recorded with its version)
    served = list_versions(engine=runtime.engine)
    thresholds = {
        f"{v.metrics['escalation_threshold']:.0%}" for v in served if "escalation_threshold" in v.metrics
    }
    assert any(f"{threshold})" in explained for threshold in thresholds), explained
    # When the user asks for the pages
    pages_toggle = next(toggle for toggle in app.toggle if toggle.key and toggle.key.endswith("-pages"))
    pages_toggle.set_value(True).run()
    # Then each page is shown under its number
    shown = [markdown.value for markdown in app.markdown]
    assert "**Page 1**" in shown and "**Page 2**" in shown
    assert any(text.value.startswith("IN THE HIGH COURT") for text in app.text)
    # And the upload was recorded under the user's name, not "console"
    events, _ = list_events(engine=runtime.engine, action="document.uploaded", limit=5)
    assert "Ada" in {event.actor for event in events}


def test_results_can_be_filtered_by_industry(app: AppTest) -> None:
    # Given two documents about different industries, classified together
    app.run()
    app.file_uploader[0].upload("q3.txt", FINANCE.encode(), "text/plain")
    app.file_uploader[0].upload("ruling.txt", LEGAL.encode(), "text/plain")
    app.run()
    app.button[0].click()
    app.run()
    assert not app.exception
    assert sorted(app.dataframe[0].value["file"]) == ["q3.txt", "ruling.txt"]
    # When the table is filtered to legal documents
    app.multiselect[0].set_value(["legal"]).run()
    # Then only the ruling is left, in the table and among the documents to read
    assert list(app.dataframe[0].value["file"]) == ["ruling.txt"]
    assert [option.split(" — ")[0] for option in app.selectbox(key="classify_document").options] == [
        "ruling.txt"
    ]


def test_an_upload_has_the_same_effect_from_the_console_and_the_api(app: AppTest, client, runtime) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import select

    from core.db.tables import Document, Job, Prediction

    def stored(filename: str) -> tuple:  # type: ignore[type-arg]
        with session_scope(runtime.engine) as session:
            job = session.exec(select(Job).where(Job.original_filename == filename)).one()
            prediction = session.exec(select(Prediction).where(Prediction.job_id == job.id)).one()
            document = session.get(Document, job.document_id)
            return job.status, job.submitted_by, prediction.label, document.content_type

    # Given the same PDF, uploaded once through the console (by Ada) and once through the API
    sign_in(app, "Ada")
    app.file_uploader[0].upload("console-q3.pdf", pdf_bytes(FINANCE), "application/pdf")
    app.run()
    app.button[0].click()
    app.run()
    sent = client.post(
        "/api/classify_file",
        files={"file": ("api-q3.pdf", pdf_bytes(FINANCE), "application/pdf")},
        headers={"X-Heron-User": "Ada"},
    ).json()
    wait_for_job(client, sent["job_id"])
    # Then both are stored alike: a completed job by Ada, the same answer, the same document type
    expected = ("COMPLETED", "Ada", "finance", "application/pdf")
    assert stored("console-q3.pdf") == stored("api-q3.pdf") == expected


def test_a_document_still_being_read_holds_up_no_later_click(app: AppTest, runtime) -> None:  # type: ignore[no-untyped-def]
    import time

    from core.services.documents import submit_upload

    # Given results on the page, one of them a document no worker has read yet (a long scan)
    app.run()
    app.file_uploader[0].upload("q3.txt", FINANCE.encode(), "text/plain")
    app.run()
    app.button[0].click()
    app.run()
    waiting = submit_upload(
        engine=runtime.engine,
        blobs=runtime.blobs,
        chunks=[LEGAL.encode() + b" Still being read."],
        filename="slow-scan.txt",
        max_bytes=runtime.settings.max_upload_bytes,
    )  # no message sent: it waits (the sweeper sends it only minutes later)
    app.session_state["job_ids"] = [*app.session_state["job_ids"], waiting.id]
    # When the user filters the results
    started = time.monotonic()
    app.multiselect[0].set_value(["finance"]).run(timeout=30)
    # Then the page answers at once with what is finished, and says what is still being read
    assert time.monotonic() - started < 10
    assert not app.exception
    assert list(app.dataframe[0].value["file"]) == ["q3.txt"]
    assert any("still being read" in warning.value for warning in app.warning)
