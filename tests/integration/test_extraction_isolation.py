"""Parser-hostile documents through the real job path: a limit code, and nobody waits behind them."""

from __future__ import annotations

import time

from core.db import session_scope
from core.db.tables import Job
from core.extract import ExtractionLimits
from core.runtime import Runtime
from core.services.documents import submit_upload
from core.services.jobs import Handoff, get_job, process_job, process_slow_job
from tests.conftest import wait_for_job
from tests.documents import (
    CLINICAL,
    EDUCATION,
    FINANCE,
    LEGAL,
    form_drawn_again_pdf_bytes,
    inflating_pdf_bytes,
    pdf_bytes,
    text_operator_pdf_bytes,
)


def _upload(client, name: str, data: bytes) -> str:  # type: ignore[no-untyped-def]
    response = client.post("/api/classify_file/", files={"file": (name, data, "application/pdf")})
    assert response.status_code == 200, response.text
    return response.json()["job_id"]


def test_hostile_pdfs_fail_with_a_limit_and_ordinary_documents_are_not_held_behind_them(client) -> None:  # type: ignore[no-untyped-def]
    # Given two PDFs whose one page holds 1.5 million text operators and one whose content stream
    # inflates to 1.5 GB, uploaded first
    hostile = [
        _upload(client, "operators-1.pdf", text_operator_pdf_bytes(1_500_000)),
        _upload(client, "operators-2.pdf", text_operator_pdf_bytes(1_500_001)),
        _upload(client, "inflating.pdf", inflating_pdf_bytes(1536)),
    ]
    # When ordinary documents are sent right after them
    sent = time.monotonic()
    texts = [FINANCE, LEGAL, CLINICAL, EDUCATION] * 2
    ordinary = [
        _upload(client, f"doc-{i}.pdf", pdf_bytes(f"{text} Reference {i} {time.time_ns()}."))
        for i, text in enumerate(texts)
    ]
    # Then the ordinary ones complete within seconds (the hostile ones hold a worker thread for at
    # most the fast lane's 3 s, not for the extraction limit)
    done = [wait_for_job(client, job_id, timeout=30) for job_id in ordinary]
    waited = time.monotonic() - sent
    assert [job["status"] for job in done] == ["COMPLETED"] * len(ordinary), done
    assert waited < 15, f"ordinary documents took {waited:.1f} s"
    # And every hostile one ends FAILED with limit_exceeded, never corrupt
    ended = [wait_for_job(client, job_id, timeout=60) for job_id in hostile]
    assert [(job["status"], job["error_code"]) for job in ended] == [("FAILED", "limit_exceeded")] * 3, ended


def test_a_document_that_outgrows_the_fast_lane_is_handed_on_and_stopped_at_the_limit(
    runtime: Runtime,
) -> None:
    # Given a job whose PDF takes pypdf minutes, and an extraction limit of five seconds (the fast
    # lane's budget is three)
    job_id = submit_upload(
        engine=runtime.engine,
        blobs=runtime.blobs,
        chunks=[form_drawn_again_pdf_bytes(500_000, 41)],
        filename="slow.pdf",
        max_bytes=runtime.settings.max_upload_bytes,
    ).id
    limits = ExtractionLimits(max_seconds=5)
    handed: dict[str, list[str]] = {"slow": [], "again": []}
    arguments = {
        "engine": runtime.engine,
        "blobs": runtime.blobs,
        "models": runtime.models,
        "job_id": job_id,
        "policy": runtime.policy,
        "limits": limits,
        "extractor": runtime.extractor,
    }
    # When a fast-lane worker takes it
    status = process_job(
        **arguments,
        lease_seconds=60,
        max_attempts=3,
        handoff=Handoff(slow=handed["slow"].append, again=handed["again"].append),
    )
    # Then it is handed to the slow lane, still PROCESSING (its lease renewed), not failed
    assert (status, handed) == ("PROCESSING", {"slow": [job_id], "again": []})
    # And the slow lane kills it at the limit and its grace: limit_exceeded naming the setting
    started = time.monotonic()
    assert process_slow_job(**arguments, max_attempts=3) == "FAILED"
    assert time.monotonic() - started < 5 + 2 + 1
    view = get_job(engine=runtime.engine, job_id=job_id)
    assert view.attempts == 1
    assert view.error_code == "limit_exceeded", view
    assert "HERON_EXTRACTION_TIMEOUT_SECONDS" in view.error_message


def test_a_batch_that_spent_the_fast_budget_puts_the_jobs_it_did_not_reach_back(runtime: Runtime) -> None:
    # Given a slow PDF's job and an ordinary job waiting behind it
    def submit(data: bytes, name: str) -> str:
        return submit_upload(
            engine=runtime.engine,
            blobs=runtime.blobs,
            chunks=[data],
            filename=name,
            max_bytes=runtime.settings.max_upload_bytes,
        ).id

    slow_id = submit(form_drawn_again_pdf_bytes(500_000, 42), "slow.pdf")
    waiting_id = submit(f"{FINANCE} Waiting behind {time.time_ns()}.".encode(), "waiting.txt")
    handed: dict[str, list[str]] = {"slow": [], "again": []}
    # When a fast-lane worker claims both as one batch
    process_job(
        engine=runtime.engine,
        blobs=runtime.blobs,
        models=runtime.models,
        job_id=slow_id,
        policy=runtime.policy,
        lease_seconds=60,
        max_attempts=3,
        limits=runtime.extraction_limits,
        batch_size=2,
        extractor=runtime.extractor,
        handoff=Handoff(slow=handed["slow"].append, again=handed["again"].append),
    )
    # Then the slow one goes to the slow lane and the other back to the queue, its attempt given back
    assert handed == {"slow": [slow_id], "again": [waiting_id]}
    with session_scope(runtime.engine) as session:
        waiting = session.get(Job, waiting_id)
        assert (waiting.status, waiting.attempts) == ("PENDING", 0)
        session.get(Job, slow_id).status = "FAILED"  # not left for the session's workers to pick up
