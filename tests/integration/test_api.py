"""The original contract, end to end through HTTP and the real in-process broker."""

from __future__ import annotations

import threading
import time

import pytest

from core.db import session_scope
from core.services.models import active_version_id
from tests.conftest import wait_for_job
from tests.documents import CLINICAL, FINANCE, LEGAL, docx_bytes, pdf_bytes

JOB_KEYS = {
    "id",
    "status",
    "classification_result",
    "error_message",
    "original_filename",
    "file_content_type",
    "created_at",
    "updated_at",
    "confidence",
    "scores",
    "tier",
    "escalated",
    "needs_review",
    "review_reasons",
    "model_version",
    "corrected_classification",
    "feedback_status",
    "error_code",
}


def test_upload_a_pdf_and_get_back_an_industry(client) -> None:  # type: ignore[no-untyped-def]
    # Given a PDF about a hospital stay
    files = {"file": ("discharge.pdf", pdf_bytes(CLINICAL), "application/pdf")}
    # When it is uploaded
    response = client.post("/api/classify_file/", files=files)
    # Then the job is accepted with the original contract's keys ...
    assert response.status_code == 200
    accepted = response.json()
    assert set(accepted) >= {"job_id", "status", "original_filename", "message"}
    assert accepted["status"] == "PENDING"
    assert accepted["original_filename"] == "discharge.pdf"
    # ... and the worker completes it with a label and scores for every industry
    job = wait_for_job(client, accepted["job_id"])
    assert set(job) >= JOB_KEYS
    assert job["status"] == "COMPLETED", job
    assert job["classification_result"] == "healthcare"
    assert set(job["scores"]) == {
        "healthcare",
        "finance",
        "legal",
        "education",
        "technology",
        "entertainment",
        "other",
    }
    assert abs(sum(job["scores"].values()) - 1.0) < 1e-3
    assert job["tier"] == "fast" and job["model_version"] >= 1
    assert job["document_type"] == "application/pdf" and job["page_count"] == 1


def test_docx_and_text_uploads_classify_too(client) -> None:  # type: ignore[no-untyped-def]
    uploads = {
        "contract.docx": (docx_bytes([LEGAL]), "legal"),
        "results.txt": (FINANCE.encode("utf-16"), "finance"),
    }
    for name, (data, expected) in uploads.items():
        job_id = client.post("/api/classify_file", files={"file": (name, data)}).json()["job_id"]
        job = wait_for_job(client, job_id)
        assert job["classification_result"] == expected, (name, job)


def test_trailing_slashes_are_optional(client) -> None:  # type: ignore[no-untyped-def]
    job_id = client.post("/api/classify_file", files={"file": ("a.txt", FINANCE.encode())}).json()["job_id"]
    assert client.get(f"/api/jobs/{job_id}").status_code == 200
    assert client.get(f"/api/jobs/{job_id}/").status_code == 200
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/health/").status_code == 200


def test_the_same_bytes_are_stored_once_but_each_upload_is_its_own_job(client, runtime) -> None:  # type: ignore[no-untyped-def]
    data = pdf_bytes("Board minutes: the audit committee approved the annual accounts.")
    first = client.post("/api/classify_file", files={"file": ("a.pdf", data)}).json()["job_id"]
    second = client.post("/api/classify_file", files={"file": ("b.pdf", data)}).json()["job_id"]
    assert first != second
    assert wait_for_job(client, first)["status"] == wait_for_job(client, second)["status"] == "COMPLETED"
    stored = [p for p in runtime.blobs.root.rglob("*") if p.is_file() and p.parent.name != "incoming"]
    assert len({p.name for p in stored}) == len(stored)  # no key stored twice


def test_feedback_keeps_the_original_shape_and_shows_on_the_job(client) -> None:  # type: ignore[no-untyped-def]
    job_id = client.post("/api/classify_file", files={"file": ("x.txt", FINANCE.encode())}).json()["job_id"]
    wait_for_job(client, job_id)
    response = client.post("/api/feedback/", json={"job_id": job_id, "corrected_classification": "Legal"})
    assert response.status_code == 200
    body = response.json()
    assert body["job_id"] == job_id and body["corrected_classification"] == "legal"
    assert body["status"] == "pending" and isinstance(body["feedback_id"], int) and body["message"]
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["corrected_classification"] == "legal" and job["feedback_status"] == "pending"


def test_several_corrections_are_rejected_in_one_call(client) -> None:  # type: ignore[no-untyped-def]
    # Given three mistaken corrections (a mislabelled batch: there was no way to reject them but
    # one call each)
    ids = []
    for number in range(3):
        sent = client.post(
            "/api/classify_file", files={"file": (f"r{number}.txt", f"{FINANCE} R{number}.".encode())}
        )
        job = wait_for_job(client, sent.json()["job_id"])
        made = client.post("/api/feedback/", json={"job_id": job["id"], "corrected_classification": "legal"})
        ids.append(made.json()["feedback_id"])
    # When a reviewer rejects them in one call
    rejected = client.post("/api/feedback/reject", json={"ids": ids})
    # Then all three are rejected, and no training run was queued for them
    assert rejected.status_code == 200, rejected.text
    body = rejected.json()
    assert sorted(item["id"] for item in body["items"]) == sorted(ids) and body["total"] == 3
    assert {item["status"] for item in body["items"]} == {"rejected"} and body["training_task_id"] is None
    # And deciding them again is refused, all or none
    again = client.post("/api/feedback/reject", json={"ids": ids})
    assert (again.status_code, again.json()["code"]) == (409, "conflict")


def test_feedback_for_unknown_jobs_or_labels_is_refused_with_a_code(client) -> None:  # type: ignore[no-untyped-def]
    missing = client.post("/api/feedback", json={"job_id": "nope", "corrected_classification": "legal"})
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    job_id = client.post("/api/classify_file", files={"file": ("y.txt", LEGAL.encode())}).json()["job_id"]
    wrong = client.post("/api/feedback", json={"job_id": job_id, "corrected_classification": "astrology"})
    assert (wrong.status_code, wrong.json()["code"]) == (422, "invalid")
    assert "astrology" in wrong.json()["message"]
    malformed = client.post("/api/feedback", json={"job": job_id})
    assert (malformed.status_code, malformed.json()["code"]) == (422, "invalid")


def test_adding_an_industry_is_accepted_and_duplicates_conflict(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        "/api/industries/", json={"industry_name": "Real Estate", "num_synthetic_documents": 2}
    )
    assert response.status_code == 202
    assert response.json()["industry_name"] == "real_estate"
    assert response.json()["synthesis"] == "llm_not_configured"
    again = client.post(
        "/api/industries", json={"industry_name": "real estate", "num_synthetic_documents": 0}
    )
    assert (again.status_code, again.json()["code"]) == (409, "conflict")


def test_retraining_produces_a_new_active_version(client, runtime) -> None:  # type: ignore[no-untyped-def]
    with session_scope(runtime.engine) as session:
        before = active_version_id(session)
    # A word or number for a flag, or a misspelt one, is refused rather than guessed at
    for body in (
        {"retrain_on_feedback_only": "yes"},
        {"retrain_on_feedback_only": 1},
        {"feedback_only": True},
    ):
        refused = client.post("/api/retrain_model/", json=body)
        assert (refused.status_code, refused.json()["code"]) == (422, "invalid"), body
    response = client.post("/api/retrain_model/", json={"retrain_on_feedback_only": False})
    assert response.status_code == 202
    deadline = time.monotonic() + 60
    after = before
    while after == before and time.monotonic() < deadline:
        time.sleep(0.2)
        with session_scope(runtime.engine) as session:
            after = active_version_id(session)
    assert after is not None and after > before


def test_bad_uploads_get_a_code_and_a_sentence_never_a_500(client) -> None:  # type: ignore[no-untyped-def]
    cases = {
        "empty": (("empty.pdf", b""), 400),
        "unsupported_type": (("tool.exe", b"MZ\x90\x00\x03" + bytes(range(256)) * 4), 415),
    }
    for code, (file, status) in cases.items():
        response = client.post("/api/classify_file", files={"file": file})
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
        assert response.json()["message"]
    wrong_field = client.post("/api/classify_file", files={"document": ("a.txt", b"hello")})
    assert (wrong_field.status_code, wrong_field.json()["code"]) == (422, "invalid")
    not_multipart = client.post("/api/classify_file", data={"file": "x"})
    assert (not_multipart.status_code, not_multipart.json()["code"]) == (400, "bad_request")
    bad_json = client.post("/api/feedback", content=b"{oops", headers={"content-type": "application/json"})
    assert (bad_json.status_code, bad_json.json()["code"]) == (400, "bad_request")


def test_a_corrupt_pdf_fails_the_job_with_its_code(client) -> None:  # type: ignore[no-untyped-def]
    data = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage \x00\x01 trailer"
    job_id = client.post("/api/classify_file", files={"file": ("broken.pdf", data)}).json()["job_id"]
    job = wait_for_job(client, job_id)
    assert job["status"] == "FAILED"
    assert job["error_code"] in {"corrupt", "no_text"} and job["error_message"]


def test_the_api_serves_its_own_openapi_docs(client) -> None:  # type: ignore[no-untyped-def]
    schema = client.get("/docs/openapi.json").json()
    assert "/api/classify_file" in schema["paths"]
    assert client.get("/docs/swagger").status_code == 200


def test_the_openapi_document_describes_errors_as_they_are_answered(client) -> None:  # type: ignore[no-untyped-def]
    # Given the OpenAPI document a client generates its code from
    schema = client.get("/docs/openapi.json").json()
    error = schema["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["code", "message"]
    # Then every error of every /api operation is documented as answered: {code, message}, not
    # Litestar's default {status_code, detail}
    for path, operations in schema["paths"].items():
        if not path.startswith("/api"):
            continue
        for method, operation in operations.items():
            errors = {status: r for status, r in operation["responses"].items() if int(status) >= 400}
            assert {"404", "409", "422"} <= set(errors), (method, path)
            for status, response in errors.items():
                documented = response["content"]["application/json"]["schema"]
                assert documented == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    # And an error answered carries what is documented
    missing = client.get("/api/jobs/nope")
    assert "404" in schema["paths"]["/api/jobs/{job_id}"]["get"]["responses"]
    assert set(error["required"]) <= set(missing.json()) <= set(error["properties"])


def test_a_body_of_the_wrong_kind_is_told_what_the_endpoint_reads(client) -> None:  # type: ignore[no-untyped-def]
    # JSON sent as plain text or a form: 415, naming what to send
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = client.post("/api/feedback/", content=b"job_id=1", headers={"content-type": content_type})
        assert (response.status_code, response.json()["code"]) == (415, "unsupported_media_type"), (
            response.text
        )
        assert "application/json" in response.json()["message"]
    # Two files where one is taken: the form's shape, not "a JSON body", is what is wrong
    two = client.post("/api/classify_file", files=[("file", ("a.txt", b"one")), ("file", ("b.txt", b"two"))])
    assert (two.status_code, two.json()["code"]) == (422, "invalid"), two.text
    assert "'file'" in two.json()["message"] and "JSON" not in two.json()["message"]


def test_a_filter_with_an_unknown_value_is_refused_not_answered_empty(client) -> None:  # type: ignore[no-untyped-def]
    for path, params in (
        ("/api/jobs", {"status": "DONE"}),
        ("/api/review", {"reason": "bogus"}),
        ("/api/export", {"source": "bogus"}),
    ):
        response = client.get(path, params=params)
        assert (response.status_code, response.json()["code"]) == (422, "invalid"), (path, response.text)
        assert "use one of" in response.json()["message"]
    # The known values still filter
    assert client.get("/api/jobs", params={"status": "COMPLETED"}).status_code == 200
    assert client.get("/api/review", params={"reason": "new_industry_taken"}).status_code == 200
    # An industry is named in the review filter as anywhere else ("Legal" listed nothing), and an
    # unknown one is refused like an unknown reason (it listed nothing, with 200)
    exact = client.get("/api/review", params={"label": "legal", "limit": 1000}).json()
    assert client.get("/api/review", params={"label": " Legal ", "limit": 1000}).json() == exact
    unknown = client.get("/api/review", params={"label": "astrology"})
    assert (unknown.status_code, unknown.json()["code"]) == (422, "invalid")
    # ... and so is the export's: an unknown industry is refused, a name as people write it exports
    unknown = client.get("/api/export", params={"label": "astrology"})
    assert (unknown.status_code, unknown.json()["code"]) == (422, "invalid")
    exported = client.get("/api/export", params={"label": "legal"}).text
    assert exported and client.get("/api/export", params={"label": " Legal "}).text == exported


def test_wait_returns_the_finished_job_inline(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        "/api/classify_file?wait=30", files={"file": ("w.txt", FINANCE.encode() + b" Q4.")}
    )
    body = response.json()
    assert body["status"] == "COMPLETED" and body["job"]["classification_result"] == "finance"
    too_long = client.post("/api/classify_file?wait=600", files={"file": ("w.txt", b"text")})
    assert (too_long.status_code, too_long.json()["code"]) == (422, "invalid")


def test_a_job_read_can_wait_for_the_end_instead_of_polling(client) -> None:  # type: ignore[no-untyped-def]
    job_id = client.post("/api/classify_file", files={"file": ("w.txt", LEGAL.encode() + b" Wait.")}).json()[
        "job_id"
    ]
    # One request, answered once the job has ended (the worker's commit wakes it)
    job = client.get(f"/api/jobs/{job_id}", params={"wait": 30}).json()
    assert job["status"] == "COMPLETED" and job["classification_result"] == "legal"
    # An ended job is answered at once, and the wait is bounded like the upload's
    assert client.get(f"/api/jobs/{job_id}", params={"wait": 30}).json() == job
    too_long = client.get(f"/api/jobs/{job_id}", params={"wait": 61})
    assert (too_long.status_code, too_long.json()["code"]) == (422, "invalid")
    missing = client.get("/api/jobs/nope", params={"wait": 1})
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


def test_several_files_become_one_batch(client) -> None:  # type: ignore[no-untyped-def]
    files = [
        ("files", ("a.txt", LEGAL.encode() + b" Batch A.")),
        ("files", ("b.pdf", pdf_bytes(CLINICAL + " Batch B."))),
        ("files", ("empty.txt", b"")),
    ]
    body = client.post("/api/classify_files", files=files).json()
    assert body["batch_id"] and len(body["job_ids"]) == 2
    assert [item["code"] for item in body["skipped"]] == ["empty"]
    jobs = [wait_for_job(client, job_id) for job_id in body["job_ids"]]
    assert {job["batch_id"] for job in jobs} == {body["batch_id"]}
    assert [job["classification_result"] for job in jobs] == ["legal", "healthcare"]
    # And following the batch later says what the upload's answer said, the refused file included
    batch = client.get(f"/api/batches/{body['batch_id']}").json()
    assert batch["job_ids"] == body["job_ids"]
    assert [(item["filename"], item["code"]) for item in batch["skipped"]] == [("empty.txt", "empty")]


def test_a_batch_takes_every_file_of_the_form_whatever_its_field(client) -> None:  # type: ignore[no-untyped-def]
    # Given a form with a file under 'files' and another under 'file' (and a text field)
    files = [("files", ("a.txt", LEGAL.encode() + b" Field A.")), ("file", ("b.txt", FINANCE.encode()))]
    body = client.post("/api/classify_files", files=files, data={"note": "two"}).json()
    # Then both are queued: none is dropped without a word
    assert len(body["job_ids"]) == 2 and body["skipped"] == [], body
    names = [wait_for_job(client, job_id)["original_filename"] for job_id in body["job_ids"]]
    assert sorted(names) == ["a.txt", "b.txt"]


def test_health_answers_probes_that_send_head(client) -> None:  # type: ignore[no-untyped-def]
    # (some load balancers probe with HEAD; it was 405)
    response = client.head("/health")
    assert response.status_code == 200 and response.content == b""
    assert client.get("/health").json() == {"status": "ok"}


def test_ready_reports_database_broker_and_model(client) -> None:  # type: ignore[no-untyped-def]
    body = client.get("/ready").json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"] == "in-process"
    assert body["checks"]["model"].startswith("version")


def test_metrics_report_jobs_latency_and_the_active_model(client) -> None:  # type: ignore[no-untyped-def]
    import re

    # Given at least one finished upload
    upload = client.post("/api/classify_file", files={"file": ("m.txt", FINANCE.encode())})
    job_id = upload.json()["job_id"]
    assert wait_for_job(client, job_id)["status"] == "COMPLETED"
    # When Prometheus scrapes the API
    response = client.get("/metrics")
    # Then it gets the text format with jobs by status, latency quantiles and the model version
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    # (a valid media type: Prometheus 3 refuses a scrape whose parameters repeat)
    parameters = [part.split("=")[0].strip() for part in response.headers["content-type"].split(";")[1:]]
    assert sorted(parameters) == ["charset", "version"], response.headers["content-type"]
    values = dict(re.findall(r"^(heron_\S+) (\S+)$", response.text, flags=re.MULTILINE))
    assert float(values['heron_jobs{status="COMPLETED"}']) >= 1
    assert float(values["heron_job_latency_seconds_count"]) >= 1
    assert 0 < float(values['heron_job_latency_seconds{quantile="0.95"}']) < 60
    assert float(values["heron_active_model_version"]) >= 1
    assert 0 <= float(values["heron_escalation_ratio"]) <= 1
    assert "# TYPE heron_job_latency_seconds summary" in response.text
    # And Prometheus' own parser reads every family
    from prometheus_client.parser import text_string_to_metric_families

    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"heron_jobs", "heron_job_latency_seconds", "heron_active_model_version"} <= families


def test_a_page_of_jobs_costs_the_same_queries_whatever_its_size(client, runtime) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import event

    # Given a dozen classified jobs (one corrected)
    ids = [
        client.post("/api/classify_file", files={"file": (f"n{i}.txt", f"{FINANCE} ({i})".encode())}).json()[
            "job_id"
        ]
        for i in range(12)
    ]
    for job_id in ids:
        wait_for_job(client, job_id)
    client.post("/api/feedback/", json={"job_id": ids[0], "corrected_classification": "legal"})
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        # Only the request's own queries: the sweeper, the index read ("heron-*" threads) and the
        # worker threads query the same engine whenever they like.
        thread = threading.current_thread()
        if not thread.name.startswith("heron-") and not type(thread).__module__.startswith("dramatiq"):
            statements.append(statement)

    def queries_for(limit: int) -> tuple[int, list[dict]]:
        statements.clear()
        event.listen(runtime.engine, "before_cursor_execute", count)
        try:
            items = client.get("/api/jobs", params={"limit": limit}).json()["items"]
        finally:
            event.remove(runtime.engine, "before_cursor_execute", count)
        return len(statements), items

    # When one job is listed, then twelve
    one, _ = queries_for(1)
    twelve, items = queries_for(12)
    # Then the page of twelve took no more queries than the page of one, and is complete
    assert twelve == one, statements
    assert len(items) == 12 and all(item["classification_result"] for item in items)
    assert {item["id"] for item in items} == set(ids)  # the newest twelve are ours
    corrected = next(item for item in items if item["id"] == ids[0])
    assert corrected["corrected_classification"] == "legal"


@pytest.mark.parametrize("ids", [[True], ["1"], [1.0]])
def test_bulk_decisions_take_ids_only_as_numbers(client, ids) -> None:  # type: ignore[no-untyped-def]
    # {"ids": [true]} reached correction #1: a client bug must not approve a row it never named
    for path in (
        "/api/feedback/approve",
        "/api/feedback/reject",
        "/api/examples/approve",
        "/api/examples/reject",
    ):
        answer = client.post(path, json={"ids": ids})
        assert (answer.status_code, answer.json()["code"]) == (422, "invalid"), (path, answer.text)


def test_the_audit_trail_says_who_did_what_over_http(client) -> None:  # type: ignore[no-untyped-def]
    # Given an upload and a correction by a named person
    sent = client.post(
        "/api/classify_file",
        files={"file": ("audit.txt", LEGAL.encode() + b" Audit.")},
        headers={"X-Heron-User": "audrey"},
    ).json()
    wait_for_job(client, sent["job_id"])
    client.post(
        "/api/feedback",
        json={"job_id": sent["job_id"], "corrected_classification": "legal"},
        headers={"X-Heron-User": "audrey"},
    )
    # When a reviewer reads the trail, filtered by person (it was only on the console's Activity page)
    trail = client.get("/api/audit", params={"actor": "audrey", "limit": 100}).json()
    # Then both actions are there, newest first, under her name
    actions = [event["action"] for event in trail["items"]]
    assert actions[:2] == ["feedback.created", "document.uploaded"], actions
    assert trail["total"] >= 2 and {event["actor"] for event in trail["items"]} == {"audrey"}
    only = client.get("/api/audit", params={"action": "feedback.created", "actor": "audrey"}).json()
    assert [event["action"] for event in only["items"]] == ["feedback.created"]


def test_a_form_over_the_parsers_limits_is_refused_saying_so(client) -> None:  # type: ignore[no-untyped-def]
    # Given forms the multipart parser stops reading: 1,001 parts, and a 70,000-character file name
    many = [("files", (f"f{i}.txt", b"x")) for i in range(1001)]
    long_name = [("files", ("a" * 70_000 + ".txt", LEGAL.encode()))]
    for files in (many, long_name):
        response = client.post("/api/classify_files", files=files)
        # Then the answer says what is wrong with the form (it was a 400 saying "Request Entity
        # Too Large", though nothing was near the upload size limit)
        assert (response.status_code, response.json()["code"]) == (422, "invalid"), response.text
        assert "1,000 parts" in response.json()["message"]


def test_a_body_nested_too_deeply_is_refused_in_one_log_line(client, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    # Given a JSON body nested thousands deep (cheap to send, it exhausts the decoder's recursion)
    body = '{"ids": ' + "[" * 5000 + "]" * 5000 + "}"
    with caplog.at_level(logging.INFO, logger="api.errors"):
        response = client.post(
            "/api/feedback/approve", content=body, headers={"Content-Type": "application/json"}
        )
    # Then it is refused with a code, and logged in one line without a traceback
    assert (response.status_code, response.json()["code"]) == (422, "invalid")
    mine = [record for record in caplog.records if record.name == "api.errors"]
    assert mine and not any(record.exc_info for record in mine), mine
