"""The console's first page, driven by Streamlit's AppTest against the real database and queue."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.settings import get_settings
from tests.documents import FINANCE, pdf_bytes

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")


@pytest.fixture
def app(runtime, client, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # The console reads its settings from the environment, like `heron ui` does; point it at the
    # database the session's worker threads serve.
    monkeypatch.setenv("HERON_DATA_DIR", str(runtime.settings.data_dir))
    get_settings.cache_clear()
    yield AppTest.from_file(APP, default_timeout=60)
    get_settings.cache_clear()


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
