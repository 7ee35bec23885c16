"""Ingestion through the HTTP API: upload-time refusals, ZIP batches, and what jobs record."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.db import session_scope
from core.db.tables import Document, Job
from core.runtime import Runtime
from core.services.documents import submit_upload
from core.services.jobs import get_job, process_job
from tests.conftest import make_settings, wait_for_job
from tests.documents import (
    CLINICAL,
    EDUCATION,
    FINANCE,
    LEGAL,
    OCR_LINES,
    docx_bytes,
    encrypted_pdf_bytes,
    lone_surrogate_pdf_bytes,
    nested_zip_bytes,
    ole_bytes,
    pdf_bytes,
    scanned_pdf_bytes,
    utf7_eml_bytes,
    utf7_html_bytes,
    xlsx_bytes,
    zip_bomb_bytes,
    zip_bytes,
)

needs_ocr = pytest.mark.skipif(
    shutil.which("tesseract") is None or shutil.which("pdftoppm") is None,
    reason="Tesseract and poppler-utils are not installed (scripts/system-deps.sh installs them)",
)


def _upload(client, name: str, data: bytes, mime: str = "application/octet-stream"):  # type: ignore[no-untyped-def]
    return client.post("/api/classify_file/", files={"file": (name, data, mime)})


# --- Cheap checks answer at upload time with 4xx and {"code", "message"}. ---


@pytest.mark.parametrize(
    ("name", "data", "status", "code", "says"),
    [
        ("empty.pdf", b"", 400, "empty", "empty"),
        ("invoice.pdf", os.urandom(3000), 415, "unsupported_type", "not a format Heron recognises"),
        ("setup.exe", b"MZ\x90\x00" + bytes(3000), 415, "unsupported_type", "Windows executable"),
        ("minutes.doc", ole_bytes("WordDocument"), 415, "unsupported_type", "save it as .docx"),
        ("song.mp3", b"ID3\x04\x00" + bytes(3000), 415, "unsupported_type", "audio"),
    ],
    # Named, not by their bytes: random bytes in a test's id differ between the test processes,
    # which then refuse to start (pytest-xdist compares what each collected)
    ids=["empty", "random-bytes", "executable", "old-word", "audio"],
)
def test_cheap_refusals_answer_at_upload_time(client, name, data, status, code, says) -> None:  # type: ignore[no-untyped-def]
    # When a file that is empty or of an unsupported type is uploaded
    response = _upload(client, name, data, "application/pdf")
    # Then the API answers at once with the stable code and a sentence naming the problem
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and says in body["message"]


@pytest.fixture()
def small_upload_client(runtime: Runtime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator:
    """The real API with HERON_MAX_UPLOAD_MB=1, on the shared database and store."""
    from litestar.testing import TestClient

    from api.app import create_app

    monkeypatch.setenv("HERON_MAX_UPLOAD_MB", "1")
    limited = dataclasses.replace(runtime, settings=make_settings(runtime.settings.data_dir))
    assert limited.settings.max_upload_mb == 1
    with TestClient(create_app(runtime=limited), timeout=30) as test_client:
        yield test_client


@pytest.mark.parametrize("size", [3 * 1024 * 1024, 1024 * 1024 + 10_000])
def test_an_upload_over_the_limit_gets_413_too_large(small_upload_client, size: int) -> None:  # type: ignore[no-untyped-def]
    # Given HERON_MAX_UPLOAD_MB=1, and a file well over it or just over it (inside the multipart slack)
    data = b"%PDF-1.7\n" + b"0" * size
    # When it is uploaded
    response = _upload(small_upload_client, "big.pdf", data, "application/pdf")
    # Then it is refused with 413 too_large, whichever check caught it
    assert response.status_code == 413
    assert response.json()["code"] == "too_large" and "1 MB" in response.json()["message"]


@contextlib.contextmanager
def _served(runtime: Runtime) -> Iterator[int]:
    """The real API server on a loopback socket (its port), as clients meet it."""
    import uvicorn

    from api.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime=runtime), host="127.0.0.1", port=0, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _upload_head(boundary: str, length: int) -> bytes:
    return (
        f"POST /api/classify_file/ HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\n\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n\r\n'
    ).encode()


def test_413_comes_before_the_body_is_read(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the real server on a socket, with HERON_MAX_UPLOAD_MB=1
    monkeypatch.setenv("HERON_MAX_UPLOAD_MB", "1")
    limited = dataclasses.replace(runtime, settings=make_settings(runtime.settings.data_dir))
    # When a client announces a 50 MB upload but sends only the headers and the first bytes
    with _served(limited) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(_upload_head("heronboundary", 50 * 1024 * 1024) + b"%PDF-1.7\n")
        # Then the 413 arrives without the server waiting for (or holding) the other 50 MB
        reply = ""
        while '"}' not in reply and (chunk := connection.recv(65536)):
            reply += chunk.decode("latin-1")
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert '"code":"too_large"' in reply.replace(" ", "")


def test_a_client_that_goes_away_mid_upload_is_not_a_server_error(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the real server on a socket
    with _served(runtime) as port, caplog.at_level(logging.INFO, logger="api.errors"):
        # When clients announce an upload, send part of it and hang up
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
                connection.sendall(_upload_head("heronboundary", 100_000) + b"Lease clause one.\n")
        deadline = time.monotonic() + 10
        while "client disconnected" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    # Then the server notes it, and logs no HTTP 500 (which error alerts would count)
    assert "client disconnected" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# --- ZIP batches. ---


def _unpacked(client, batch_id: str, timeout: float = 30.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        batch = client.get(f"/api/batches/{batch_id}").json()
        if batch["status"] != "UNPACKING" or time.monotonic() > deadline:
            return batch
        time.sleep(0.05)


def test_a_zip_becomes_a_batch_of_jobs_one_per_readable_member(client, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    # Given a ZIP with three documents, an executable, an empty file and macOS litter
    archive = zip_bytes(
        {
            "reports/q3-results.pdf": pdf_bytes(FINANCE),
            "reports/judgment.docx": docx_bytes([LEGAL]),
            "discharge.txt": CLINICAL.encode(),
            "tools/setup.exe": b"MZ\x90\x00" + bytes(500),
            "empty.txt": b"",
            "__MACOSX/reports/._q3-results.pdf": b"\x00\x05\x16\x07junk",
        }
    )
    # When it is uploaded
    response = _upload(client, "batch.zip", archive, "application/zip")
    # Then the upload answers at once with the batch to follow (a worker unpacks the ZIP)
    assert response.status_code == 200, response.text
    accepted = response.json()
    assert accepted["job_id"] is None and accepted["batch_id"] and accepted["status"] == "PENDING"
    assert accepted["original_filename"] == "batch.zip"
    assert f"/api/batches/{accepted['batch_id']}" in accepted["message"]
    # And the batch lists one job per readable member, in the ZIP's order, and what was skipped
    batch = _unpacked(client, accepted["batch_id"])
    assert batch["status"] == "READY" and len(batch["job_ids"]) == 3, batch
    assert {item["filename"]: item["code"] for item in batch["skipped"]} == {
        "tools/setup.exe": "unsupported_type",
        "empty.txt": "empty",
    }
    # And every member is read and classified on its own, in the same batch
    jobs = [wait_for_job(client, job_id) for job_id in batch["job_ids"]]
    assert [job["status"] for job in jobs] == ["COMPLETED"] * 3, jobs
    assert all(job["classification_result"] for job in jobs)
    assert [job["document_type"] for job in jobs] == [
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "text/plain",
    ]
    assert {job["batch_id"] for job in jobs} == {accepted["batch_id"]}
    # (named by their path in the ZIP: folders are how people tell apart files of the same name)
    assert [job["original_filename"] for job in jobs] == [
        "reports/q3-results.pdf",
        "reports/judgment.docx",
        "discharge.txt",
    ]
    # And the ZIP itself is kept as an original
    with session_scope(runtime.engine) as session:
        from sqlmodel import select

        kept = session.exec(select(Document).where(Document.original_name == "batch.zip")).first()
    assert kept is not None and runtime.blobs.path(kept.storage_key).exists()


@pytest.mark.parametrize(
    ("name", "archive", "code", "says"),
    [
        ("bomb.zip", zip_bomb_bytes(8), "limit_exceeded", "zip bomb"),
        ("nested.zip", nested_zip_bytes(3, {"a.txt": FINANCE.encode()}), "limit_exceeded", "nested"),
        (
            "slip.zip",
            zip_bytes({"ok.txt": FINANCE.encode(), "../../../tmp/heron-owned.txt": b"gotcha"}),
            "corrupt",
            "outside the archive",
        ),
        (
            "junk.zip",
            zip_bytes({"a.exe": b"MZ" + bytes(100), "b.mp3": b"ID3" + bytes(100)}),
            "unsupported_type",
            "no document",
        ),
        ("broken.zip", zip_bytes({"a.txt": FINANCE.encode() * 20})[:300], "corrupt", "cannot be read"),
    ],
)
def test_hostile_zips_are_refused_whole(client, runtime: Runtime, name, archive, code, says) -> None:  # type: ignore[no-untyped-def]
    # When a hostile or useless ZIP is uploaded
    response = _upload(client, name, archive, "application/zip")
    # Then the upload is accepted (unpacking is the worker's), and the batch refuses the ZIP
    # as a whole with the stable code, creating no job
    assert response.status_code == 200, response.text
    batch = _unpacked(client, response.json()["batch_id"])
    assert batch["status"] == "READY" and batch["job_ids"] == [], batch
    assert [(item["filename"], item["code"]) for item in batch["skipped"]] == [(name, code)]
    assert says in batch["skipped"][0]["message"]
    assert batch["archives"][0]["status"] == "FAILED"
    # And nothing was written outside the store, and no unpacking directory is left behind
    assert not Path("/tmp/heron-owned.txt").exists()
    assert not list((runtime.blobs.root / "incoming").glob("zip-*"))


def test_a_zip_in_a_multi_file_upload_joins_the_batch(client) -> None:  # type: ignore[no-untyped-def]
    # Given a text file and a ZIP of two documents, uploaded together
    files = [
        ("files", ("note.txt", LEGAL.encode() + b" Multi-file note.")),
        ("files", ("pair.zip", zip_bytes({"a.txt": EDUCATION.encode(), "b.txt": CLINICAL.encode()}))),
    ]
    body = client.post("/api/classify_files/", files=files).json()
    # Then the batch has the text file's job at once and the ZIP's members once unpacked
    assert len(body["job_ids"]) == 1 and body["unpacking"] == 1
    batch = _unpacked(client, body["batch_id"])
    assert len(batch["job_ids"]) == 3 and body["job_ids"][0] in batch["job_ids"]
    jobs = [wait_for_job(client, job_id) for job_id in batch["job_ids"]]
    assert [job["status"] for job in jobs] == ["COMPLETED"] * 3


def test_zip_members_with_odd_names_are_harmless(client) -> None:  # type: ignore[no-untyped-def]
    # Given members whose names are very long, full of odd Unicode and control characters
    long_name = "ß" * 300 + ".txt"
    archive = zip_bytes({long_name: EDUCATION.encode(), "dir/\u202etxt.exe\x07.txt": FINANCE.encode()})
    # When the ZIP is uploaded
    accepted = _upload(client, "odd.zip", archive).json()
    # Then both become jobs with bounded, printable display names
    batch = _unpacked(client, accepted["batch_id"])
    jobs = [wait_for_job(client, job_id) for job_id in batch["job_ids"]]
    assert [job["status"] for job in jobs] == ["COMPLETED", "COMPLETED"]
    for job in jobs:
        assert len(job["original_filename"]) <= 255
        assert all(ch.isprintable() for ch in job["original_filename"])


def test_members_of_the_same_name_in_different_folders_stay_apart(client) -> None:  # type: ignore[no-untyped-def]
    # Given a client's ZIP with an invoice.txt per customer folder, one inside a nested ZIP
    inner = zip_bytes({"invoice.txt": FINANCE.encode() + b" Bolt."})
    archive = zip_bytes(
        {"acme/invoice.txt": FINANCE.encode(), "bolt\\invoice.txt": LEGAL.encode(), "old.zip": inner}
    )
    # When it is uploaded
    batch = _unpacked(client, _upload(client, "clients.zip", archive).json()["batch_id"])
    # Then each job is named by its path in the archive, so the results tell them apart
    names = [wait_for_job(client, job_id)["original_filename"] for job_id in batch["job_ids"]]
    assert names == ["acme/invoice.txt", "bolt/invoice.txt", "old.zip/invoice.txt"]


def test_documents_whose_text_holds_a_lone_surrogate_are_classified_and_so_are_their_batch_mates(
    client,
) -> None:  # type: ignore[no-untyped-def]
    # Given documents whose decoders hand over a lone surrogate, uploaded among ordinary ones
    files = [("files", (f"note-{i}.txt", f"{[LEGAL, CLINICAL][i % 2]} Note {i}.".encode())) for i in range(4)]
    files[1:1] = [
        ("files", ("payment.eml", utf7_eml_bytes("The bank loan payment and mortgage interest are due"))),
        ("files", ("ward.html", utf7_html_bytes("The patient was discharged from the hospital ward"))),
        ("files", ("lease.pdf", lone_surrogate_pdf_bytes("The tenant signed the lease before the court"))),
    ]
    body = client.post("/api/classify_files/", files=files).json()
    # Then every one of them is classified: none fails, and none takes its batch-mates down
    jobs = [wait_for_job(client, job_id) for job_id in body["job_ids"]]
    assert [job["status"] for job in jobs] == ["COMPLETED"] * 7, [
        (j["status"], j["error_message"]) for j in jobs
    ]
    # And such a file is taken as an industry's example (it answered 500 there)
    added = client.post("/api/industries/finance/examples", files=[files[1]])
    assert added.status_code == 202 and added.json()["examples_added"] == 1, added.json()


def test_a_batch_nobody_created_is_404(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/api/batches/nope")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


# --- What a job records about its extraction. ---


@needs_ocr
def test_the_job_view_shows_type_pages_method_and_ocrd_pages(client) -> None:  # type: ignore[no-untyped-def]
    # Given a PDF whose second page is a scan
    data = scanned_pdf_bytes("Cover letter for the attached invoice, with a text layer.", OCR_LINES)
    # When it is uploaded and classified
    job = wait_for_job(client, _upload(client, "scan.pdf", data, "application/pdf").json()["job_id"], 60)
    # Then the job says what it was and how it was read
    assert job["status"] == "COMPLETED", job
    assert job["document_type"] == "application/pdf" and job["page_count"] == 2
    assert job["extraction_method"] == "ocr+text_layer" and job["ocr_pages"] == [2]
    assert "1 of 2 pages OCR'd" in job["extraction_warnings"]


def test_every_format_fills_the_job_view(client) -> None:  # type: ignore[no-untyped-def]
    uploads = {
        "hours.xlsx": (
            xlsx_bytes({"Jan": [["Client", "Hours"], ["Northwind", 3]], "Feb": [["Contoso", 4]]}),
            2,
            "xlsx",
        ),
        "export.csv": (b"client,amount\nNorthwind,100\n", 1, "csv"),
        "page.html": (b"<html><body><p>" + FINANCE.encode() + b"</p></body></html>", 1, "html"),
    }
    for name, (data, pages, method) in uploads.items():
        job = wait_for_job(client, _upload(client, name, data).json()["job_id"])
        assert job["status"] == "COMPLETED", job
        assert job["page_count"] == pages and job["extraction_method"] == method, job
        assert job["document_type"] and job["ocr_pages"] == []


def test_a_password_protected_pdf_fails_its_job_and_keeps_the_original(client, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    # Given a PDF that needs a password
    data = encrypted_pdf_bytes(FINANCE, user_password="s3cret")
    # When it is uploaded: accepted (the cheap checks pass), then the job fails with `encrypted`
    job = wait_for_job(client, _upload(client, "locked.pdf", data).json()["job_id"])
    assert job["status"] == "FAILED" and job["error_code"] == "encrypted"
    assert "password" in job["error_message"]
    # And the original bytes are still stored
    with session_scope(runtime.engine) as session:
        document = session.get(Document, session.get(Job, job["id"]).document_id)
    assert runtime.blobs.path(document.storage_key).read_bytes() == data


def test_extraction_limits_come_from_heron_settings(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given HERON_MAX_PAGES=2 and the other limits from the environment
    monkeypatch.setenv("HERON_MAX_PAGES", "2")
    monkeypatch.setenv("HERON_ZIP_MAX_TOTAL_MB", "3")
    monkeypatch.setenv("HERON_OCR_PROCESSES", "1")
    limited = dataclasses.replace(runtime, settings=make_settings(runtime.settings.data_dir))
    limits = limited.extraction_limits
    assert (limits.max_pages, limits.zip_max_total_bytes, limits.ocr_processes) == (2, 3 * 1024 * 1024, 1)
    # When a three-page PDF is classified with them
    job = submit_upload(
        engine=runtime.engine,
        blobs=runtime.blobs,
        chunks=[pdf_bytes("one " + LEGAL, "two", "three")],
        filename="three-pages.pdf",
        max_bytes=limited.settings.max_upload_bytes,
    )
    status = process_job(
        engine=runtime.engine,
        blobs=runtime.blobs,
        models=runtime.models,
        job_id=job.id,
        policy=runtime.policy,
        lease_seconds=60,
        max_attempts=1,
        limits=limits,
    )
    # Then the job fails with limit_exceeded, naming the count and the limit
    assert status == "FAILED"
    view = get_job(engine=runtime.engine, job_id=job.id)
    assert view.error_code == "limit_exceeded" and "3 pages; the limit is 2" in view.error_message


def test_default_settings_give_the_default_extraction_limits(runtime: Runtime) -> None:
    # The defaults live in two places (Settings for operators, ExtractionLimits for core callers
    # such as the CLI); they must not drift apart.
    from core.extract import ExtractionLimits

    defaults = dataclasses.replace(runtime, settings=make_settings(runtime.settings.data_dir))
    assert defaults.extraction_limits == ExtractionLimits()


def test_an_invalid_limit_stops_start_up_with_a_sentence_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from core.errors import ConfigurationError

    monkeypatch.setenv("HERON_OCR_LANGUAGE", "eng; rm -rf /")
    monkeypatch.setenv("HERON_MAX_PAGES", "0")
    with pytest.raises(ConfigurationError) as caught:
        make_settings(tmp_path)
    assert "HERON_OCR_LANGUAGE" in caught.value.message and "HERON_MAX_PAGES" in caught.value.message
