"""Annotation at the speed of thought: evidence, "more like this", label issues and agreement,
through the API on a Heron of its own (real SQLite, real in-process queue, real MiniLM)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.runtime import Runtime, open_runtime
from tests.conftest import copy_prepared, make_settings, own_workers, wait_for_job, wait_for_task
from tests.documents import pdf_bytes

FINANCE = [
    "The quarterly report shows revenue of 4.2 million dollars, up eight percent, with operating margin "
    "at 14 percent. The board declared a dividend of 12 cents per share payable to shareholders of record.",
    "Your account statement for March: opening balance 2,310.55, card payments 412.90, direct debit to "
    "the mortgage lender 950.00, interest credited 3.12. Closing balance 954.77. Overdraft limit unchanged.",
    "The fund invests in government bonds and investment-grade corporate debt. Past performance is not "
    "a guide to future returns; the value of units may fall. Annual management charge 0.45 percent.",
    "Loan agreement summary: principal 25,000, fixed annual interest rate 6.9 percent, 60 monthly "
    "repayments of 494.12. Early repayment fee of one month's interest. Credit check completed by the bank.",
]
HEALTHCARE = [
    "Discharge summary: the patient was admitted with community-acquired pneumonia, treated with "
    "intravenous antibiotics and oxygen, and discharged on oral amoxicillin. "
    "Follow-up with the GP in one week.",
    "Clinic letter: blood pressure 152/94 on three readings. Started amlodipine 5 mg once daily. Repeat "
    "renal function and electrolytes in two weeks; advised to reduce salt intake and continue exercise.",
    "Radiology report: chest X-ray shows no focal consolidation, effusion or pneumothorax. Heart size "
    "normal. Impression: no acute cardiopulmonary abnormality. Reported by the consultant radiologist.",
    "Vaccination record: influenza vaccine given in the left deltoid, batch FL2291. The nurse observed the "
    "patient for fifteen minutes with no adverse reaction. Next dose of the hepatitis B course due in May.",
]


@pytest.fixture(scope="module")
def heron(starter_runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The API on a Heron of this module's own (a copy of the prepared starter database)."""
    from litestar.testing import TestClient

    from api.app import create_app

    data_dir = copy_prepared(starter_runtime, tmp_path_factory.mktemp("annotation") / "heron")
    runtime = open_runtime(make_settings(data_dir))
    with own_workers(), TestClient(create_app(runtime=runtime), timeout=30) as client:
        yield client
    runtime.close()


def _classified(client, name: str, data: bytes, user: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    headers = {"X-Heron-User": user} if user else {}
    accepted = client.post("/api/classify_file", files={"file": (name, data)}, headers=headers).json()
    job = wait_for_job(client, accepted["job_id"])
    assert job["status"] == "COMPLETED", job
    return job


def test_every_answer_carries_evidence_that_is_a_real_span_of_its_text(heron) -> None:  # type: ignore[no-untyped-def]
    # Given a two-page PDF: a clinic letter, then a page of administrative boilerplate
    boilerplate = (
        "Please keep this letter for your records. Page two of two. Contact the office with questions."
    )
    letter = (
        "Dear Dr Patel, I reviewed your patient in the cardiology clinic today. Her blood pressure "
        "remains high at 158/96 despite lifestyle changes. I have started amlodipine 5 mg once daily "
        "and requested an echocardiogram and renal function tests. Please repeat her blood pressure in "
        "two weeks."
    )
    job = _classified(heron, "letter.pdf", pdf_bytes(letter, boilerplate))
    # When its text is read back
    text = heron.get(f"/api/jobs/{job['id']}/text").json()
    # Then the pages are located in the text ...
    assert [page["number"] for page in text["pages"]] == [1, 2]
    first, second = text["pages"]
    assert "amlodipine" in text["text"][first["start"] : first["end"]]
    assert "boilerplate" not in text["text"] and "Page two" in text["text"][second["start"] : second["end"]]
    # ... and the job's evidence is passages of that very text supporting the answer, the clinical
    # page's words first
    assert job["classification_result"] == "healthcare", job
    assert job["evidence"] == text["evidence"] and 1 <= len(job["evidence"]) <= 3
    for passage in job["evidence"]:
        assert passage["text"] == text["text"][passage["start"] : passage["end"]]
        assert passage["label"] == "healthcare" and 0 <= passage["score"] <= 1
    top = job["evidence"][0]
    assert first["start"] <= top["start"] < first["end"], job["evidence"]
    assert [p["score"] for p in job["evidence"]] == sorted(
        (p["score"] for p in job["evidence"]), reverse=True
    )


def test_the_text_of_unknown_or_unread_jobs_is_a_clear_answer(heron) -> None:  # type: ignore[no-untyped-def]
    assert heron.get("/api/jobs/nope/text").json()["code"] == "not_found"
    assert heron.get("/api/jobs/nope/similar").status_code == 404
    broken = heron.post("/api/classify_file", files={"file": ("broken.pdf", b"%PDF-1.7 garbage")}).json()
    assert wait_for_job(heron, broken["job_id"])["status"] == "FAILED"
    failed = heron.get(f"/api/jobs/{broken['job_id']}/similar")  # not "not classified yet": it never will be
    assert failed.status_code == 409 and "failed (corrupt)" in failed.json()["message"], failed.json()


def test_more_like_this_finds_the_same_kind_of_document_and_labels_a_selection_in_one_action(heron) -> None:  # type: ignore[no-untyped-def]
    # Given four finance and four clinical documents, none labelled
    finance = [_classified(heron, f"f{i}.txt", text.encode()) for i, text in enumerate(FINANCE)]
    clinical = [_classified(heron, f"h{i}.txt", text.encode()) for i, text in enumerate(HEALTHCARE)]
    # When an annotator asks for more like the first finance document
    response = heron.get(f"/api/jobs/{finance[0]['id']}/similar", params={"limit": 3})
    assert response.status_code == 200, response.text
    similar = response.json()["items"]
    # Then the three other finance documents come first, each with the model's answer, never itself
    assert {item["job_id"] for item in similar} == {job["id"] for job in finance[1:]}, similar
    assert all(item["job"]["classification_result"] for item in similar)
    assert [item["similarity"] for item in similar] == sorted(
        (i["similarity"] for i in similar), reverse=True
    )
    # When they give the selection the label in one action
    created = heron.post(
        "/api/feedback/batch",
        json={"job_ids": [item["job_id"] for item in similar], "corrected_classification": "finance"},
        headers={"X-Heron-User": "ana"},
    )
    assert created.status_code == 200, created.text
    rows = created.json()["items"]
    # Then each is its own correction by that annotator, waiting for approval
    assert len(rows) == 3 and {row["status"] for row in rows} == {"pending"}
    assert {row["author"] for row in rows} == {"ana"}
    # ... and labelled documents are no longer offered as more like anything
    again = heron.get(f"/api/jobs/{clinical[0]['id']}/similar", params={"limit": 20}).json()["items"]
    offered = {item["job_id"] for item in again}
    assert not offered & {row["job_id"] for row in rows}
    assert {job["id"] for job in clinical[1:]} <= offered
    assert {item["job"]["classification_result"] for item in again[:3]} == {"healthcare"}, again


def test_a_document_classified_after_a_search_is_found_by_the_next_one(heron) -> None:  # type: ignore[no-untyped-def]
    # Given a clinic letter someone already asked "more like this" for (the process keeps an index)
    letter = _classified(heron, "letter.txt", f"{HEALTHCARE[1]} Patient ref 5521.".encode())
    first = heron.get(f"/api/jobs/{letter['id']}/similar", params={"limit": 100}).json()["items"]
    # When a near-copy of it is uploaded and classified
    copy = _classified(heron, "letter-copy.txt", f"{HEALTHCARE[1]} Patient ref 5522.".encode())
    # Then the next search finds it, first, and only once
    again = heron.get(f"/api/jobs/{letter['id']}/similar", params={"limit": 100}).json()["items"]
    assert copy["id"] not in {item["job_id"] for item in first}
    assert again[0]["job_id"] == copy["id"], again[:3]
    assert [item["job_id"] for item in again].count(copy["id"]) == 1
    # ... and once it is labelled, it is gone from the search at once
    labelled = heron.post(
        "/api/feedback/", json={"job_id": copy["id"], "corrected_classification": "healthcare"}
    )
    assert labelled.status_code in (200, 201), labelled.text
    after = heron.get(f"/api/jobs/{letter['id']}/similar", params={"limit": 100}).json()["items"]
    assert copy["id"] not in {item["job_id"] for item in after}


def test_a_batch_label_is_all_or_none(heron) -> None:  # type: ignore[no-untyped-def]
    job = _classified(heron, "lone.txt", FINANCE[0].replace("4.2", "5.1").encode())
    unknown_job = heron.post(
        "/api/feedback/batch", json={"job_ids": [job["id"], "missing"], "corrected_classification": "finance"}
    )
    assert unknown_job.status_code == 404 and unknown_job.json()["code"] == "not_found"
    unknown_label = heron.post(
        "/api/feedback/batch", json={"job_ids": [job["id"]], "corrected_classification": "astrology"}
    )
    assert unknown_label.status_code == 422 and unknown_label.json()["code"] == "invalid"
    empty = heron.post("/api/feedback/batch", json={"job_ids": [], "corrected_classification": "finance"})
    assert empty.status_code in (400, 422) and empty.json()["code"]
    assert heron.get(f"/api/jobs/{job['id']}").json()["corrected_classification"] is None


def test_the_same_label_from_the_same_person_twice_is_one_correction(heron) -> None:  # type: ignore[no-untyped-def]
    job = _classified(heron, "twice.txt", FINANCE[0].replace("4.2", "6.3").encode())
    body = {"job_id": job["id"], "corrected_classification": "finance"}
    # When Ada files the same label twice (a retry, a double click), and Bob files it too
    first = heron.post("/api/feedback", json=body, headers={"X-Heron-User": "Ada"}).json()
    again = heron.post("/api/feedback", json=body, headers={"X-Heron-User": "Ada"}).json()
    bobs = heron.post("/api/feedback", json=body, headers={"X-Heron-User": "Bob"}).json()
    # Then Ada has one correction waiting (each copy waited in the approval queue), Bob his own
    assert again["feedback_id"] == first["feedback_id"] != bobs["feedback_id"]
    pending = heron.get("/api/feedback", params={"status": "pending", "limit": 1000}).json()["items"]
    assert sorted(item["author"] for item in pending if item["job_id"] == job["id"]) == ["Ada", "Bob"]
    # And after another label, the first one again is her latest word: a new correction
    changed = heron.post(
        "/api/feedback", json={**body, "corrected_classification": "legal"}, headers={"X-Heron-User": "Ada"}
    )
    back = heron.post("/api/feedback", json=body, headers={"X-Heron-User": "Ada"}).json()
    assert back["feedback_id"] not in (first["feedback_id"], changed.json()["feedback_id"])
    assert heron.get(f"/api/jobs/{job['id']}").json()["corrected_classification"] == "finance"
    for feedback_id in (changed.json()["feedback_id"], back["feedback_id"]):
        assert heron.post(f"/api/feedback/{feedback_id}/reject").status_code == 200
    # And once hers is decided, the same label again is a new correction
    assert heron.post(f"/api/feedback/{first['feedback_id']}/reject").status_code == 200
    later = heron.post("/api/feedback", json=body, headers={"X-Heron-User": "Ada"}).json()
    assert later["feedback_id"] not in (first["feedback_id"], bobs["feedback_id"])


def test_annotators_agreement_and_accuracy_on_gold(heron) -> None:  # type: ignore[no-untyped-def]
    # Given two annotators who labelled the same four documents, agreeing on three
    jobs = [
        _classified(heron, f"k{i}.txt", f"{text} Kappa copy.".encode())
        for i, text in enumerate(FINANCE[:2] + HEALTHCARE[:2])
    ]
    truth = ["finance", "finance", "healthcare", "healthcare"]
    bea = ["finance", "finance", "healthcare", "legal"]
    for job, label in zip(jobs, truth, strict=True):
        heron.post(
            "/api/feedback/",
            json={"job_id": job["id"], "corrected_classification": label},
            headers={"X-Heron-User": "cy"},
        )
    for job, label in zip(jobs, bea, strict=True):
        heron.post(
            "/api/feedback/",
            json={"job_id": job["id"], "corrected_classification": label},
            headers={"X-Heron-User": "bea"},
        )
    # When the agreement is read
    report = heron.get("/api/annotators").json()
    # Then the pair's kappa is Cohen's: observed 3/4; chance (2·2 + 2·1 + 0·1)/16 = 6/16 -> 0.6
    pair = next(p for p in report["agreement"] if {p["annotator_a"], p["annotator_b"]} == {"bea", "cy"})
    assert pair["documents"] == 4 and pair["agreement"] == 0.75
    assert pair["kappa"] == pytest.approx(0.6, abs=1e-4)
    names = {a["name"]: a for a in report["annotators"]}
    assert names["bea"]["documents"] == 4 and names["cy"]["labels"] == 4


def test_label_issues_surface_flipped_labels_and_a_correction_retrains(heron) -> None:  # type: ignore[no-untyped-def]
    # Given approved corrections for eight documents, two of them deliberately wrong
    texts = [f"{text} Issue copy {i}." for i, text in enumerate(FINANCE + HEALTHCARE)]
    truth = ["finance"] * 4 + ["healthcare"] * 4
    given = list(truth)
    given[1], given[6] = "healthcare", "finance"
    ids = []
    for i, (text, label) in enumerate(zip(texts, given, strict=True)):
        job = _classified(heron, f"issue{i}.txt", text.encode())
        ids.append(
            heron.post(
                "/api/feedback/", json={"job_id": job["id"], "corrected_classification": label}
            ).json()["feedback_id"]
        )
    heron.post("/api/feedback/approve", json={"ids": ids})
    # When a full training run cross-validates them
    task = heron.post("/api/retrain_model", json={}).json()
    assert wait_for_task(heron, task["task_id"], timeout=300)["status"] == "SUCCEEDED"
    queue = heron.get("/api/review", params={"strategy": "label_issues"}).json()
    # Then the two flipped examples are at the top of the label-issue queue, with the right suggestion
    flipped = {texts[1]: "finance", texts[6]: "healthcare"}
    items = queue["items"]
    assert queue["total"] >= 2, queue
    top = items[:2]
    examples = {e["id"]: e for e in heron.get("/api/examples", params={"limit": 1000}).json()["items"]}
    assert {examples[i["example_id"]]["text"] for i in top} <= set(flipped) | set(texts)
    found = {
        examples[i["example_id"]]["text"]: i for i in items if examples[i["example_id"]]["text"] in flipped
    }
    assert set(found) == set(flipped), items
    assert all(found[text]["suggested"] == label for text, label in flipped.items())
    assert {i["example_id"] for i in top} == {i["example_id"] for i in found.values()}, items
    # When a reviewer corrects one
    issue = found[texts[1]]
    relabelled = heron.post(f"/api/examples/{issue['example_id']}/relabel", json={"label": "finance"})
    assert relabelled.status_code == 200 and relabelled.json()["label"] == "finance"
    # Then it leaves the queue and a training run is queued like any approval's
    remaining = heron.get("/api/review", params={"strategy": "label_issues"}).json()["items"]
    assert issue["example_id"] not in {i["example_id"] for i in remaining}
    training = heron.get("/api/tasks", params={"kind": "training", "limit": 1}).json()["items"][0]
    assert wait_for_task(heron, training["id"])["status"] == "SUCCEEDED"
    # When a reviewer looks at the other and keeps its label
    other = found[texts[6]]
    kept = heron.post(f"/api/examples/{other['example_id']}/keep")
    # Then it leaves the queue for good, with its label as it was
    assert kept.status_code == 200 and kept.json()["label"] == "finance"
    remaining = heron.get("/api/review", params={"strategy": "label_issues"}).json()["items"]
    assert other["example_id"] not in {i["example_id"] for i in remaining}
    assert heron.post("/api/examples/999999/keep").json()["code"] == "not_found"
    again = heron.post(f"/api/examples/{issue['example_id']}/relabel", json={"label": "finance"})
    assert again.status_code == 422 and again.json()["code"] == "invalid"


def test_the_index_is_read_at_start_and_reread_in_the_background_without_losing_a_document(heron) -> None:  # type: ignore[no-untyped-def]
    import threading

    from core.services import similar

    engine = heron.app.state.runtime.engine
    letter = _classified(heron, "reread.txt", f"{HEALTHCARE[2]} Ref 7731.".encode())
    before = [
        i["job_id"]
        for i in heron.get(f"/api/jobs/{letter['id']}/similar", params={"limit": 100}).json()["items"]
    ]
    # Given a process that has just started (no index yet): its index is read before anyone asks
    with similar._INDEXES_LOCK:
        del similar._INDEXES[engine]
    similar.warm_up(engine).join(timeout=60)
    with similar._INDEXES_LOCK:
        warmed = similar._INDEXES[engine]
    assert len(warmed.jobs) >= len(before) + 1
    # When the index is due for its periodic reread
    index = similar._index(engine)
    index.loaded_at -= similar.RELOAD_SECONDS + 1
    # Then the request that notices it is answered at once from the index it has, with the same documents
    during = heron.get(f"/api/jobs/{letter['id']}/similar", params={"limit": 100}).json()["items"]
    assert [i["job_id"] for i in during] == before
    for thread in threading.enumerate():
        if thread.name == "heron-similar-load":
            thread.join(timeout=60)
    # ... and once the reread is done, a new index serves the same answers
    assert similar._index(engine) is not index
    after = heron.get(f"/api/jobs/{letter['id']}/similar", params={"limit": 100}).json()["items"]
    assert [i["job_id"] for i in after] == before


def test_a_document_uploaded_twice_is_one_review_item_and_one_question_to_annotators(heron) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import select

    from core.db import session_scope
    from core.db.tables import Prediction

    text = "Minutes: the partners discussed the office lease renewal and the bank's overdraft terms. Copy 2."
    twice = [_classified(heron, name, text.encode()) for name in ("minutes.txt", "minutes-again.txt")]
    with session_scope(heron.app.state.runtime.engine) as session:  # both are unsure answers
        for prediction in session.exec(
            select(Prediction).where(Prediction.job_id.in_([j["id"] for j in twice]))
        ):
            prediction.needs_review = True
            session.add(prediction)
    ids = {job["id"] for job in twice}

    def queued() -> set[str]:
        return {item["id"] for item in heron.get("/api/review", params={"limit": 1000}).json()["items"]} & ids

    # The same document, uploaded twice, is one item in the queue (two people labelled it twice)
    assert len(queued()) == 1
    # ... and skipping it skips the document, not only that upload (the other upload came next)
    shown = queued().pop()
    after_skip = heron.get("/api/review", params={"limit": 1000, "exclude": [shown]}).json()["items"]
    assert not {item["id"] for item in after_skip} & ids, after_skip
    # ... and a filter shows the upload that fits it: answered finance, then legal by a newer model
    with session_scope(heron.app.state.runtime.engine) as session:
        for job, label in zip(twice, ("finance", "legal"), strict=True):
            prediction = session.exec(select(Prediction).where(Prediction.job_id == job["id"])).one()
            prediction.label = label
            session.add(prediction)
    legal = heron.get("/api/review", params={"label": "legal", "limit": 1000}).json()["items"]
    assert {item["id"] for item in legal} & ids == {twice[1]["id"]}
    # Once Ali labels it through one upload, neither upload is asked about again
    first, second = twice
    ali, bo = {"X-Heron-User": "ali"}, {"X-Heron-User": "bo"}
    heron.post(
        "/api/feedback", json={"job_id": first["id"], "corrected_classification": "legal"}, headers=ali
    )
    assert queued() == set()
    # And when Bo labels it otherwise through the other upload, both corrections say they disagree
    # (the flag was per upload, and approving both was then refused for that very disagreement)
    heron.post(
        "/api/feedback", json={"job_id": second["id"], "corrected_classification": "finance"}, headers=bo
    )
    pending = heron.get("/api/feedback", params={"status": "pending", "limit": 1000}).json()["items"]
    mine = [item for item in pending if item["job_id"] in ids]
    assert len(mine) == 2 and all(item["disagreement"] for item in mine), mine
    # While one person changing their mind is no disagreement
    heron.post(
        "/api/feedback", json={"job_id": first["id"], "corrected_classification": "finance"}, headers=ali
    )
    pending = heron.get("/api/feedback", params={"status": "pending", "limit": 1000}).json()["items"]
    assert not any(item["disagreement"] for item in pending if item["job_id"] in ids), pending


def test_every_version_names_the_change_that_made_it_even_a_label_given_back_or_relabelled(heron) -> None:  # type: ignore[no-untyped-def]
    import hashlib
    import time

    from sqlmodel import select

    from core.corpus import is_holdout
    from core.db import session_scope
    from core.db.tables import Job, ModelVersion, TrainingExample

    engine = heron.app.state.runtime.engine

    def trains(candidate: str) -> bool:  # its document lands in the training split, not the gold set
        return not is_holdout(f"document:{hashlib.sha256(candidate.encode()).hexdigest()}")

    text = next(candidate for i in range(100) if trains(candidate := f"{FINANCE[1]} Ref {i}."))
    job = _classified(heron, "statement.txt", text.encode())

    def learned_by_a_new_version(before: set[int]) -> list[dict]:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with session_scope(engine) as session:
                new = [v for v in session.exec(select(ModelVersion)) if v.id not in before]
                learned = [item for v in new for item in (v.trained_on or {}).get("learned", [])]
            if learned:
                return learned
            time.sleep(0.5)
        raise AssertionError("no version learned anything")

    def versions() -> set[int]:
        with session_scope(engine) as session:
            return set(session.exec(select(ModelVersion.id)).all())

    def approve(label: str) -> int:
        before = versions()
        sent = heron.post("/api/feedback", json={"job_id": job["id"], "corrected_classification": label})
        feedback_id = sent.json()["feedback_id"]
        assert heron.post(f"/api/feedback/{feedback_id}/approve").status_code == 200
        learned = learned_by_a_new_version(before)
        assert {(item["feedback_id"], item["label"]) for item in learned} >= {(feedback_id, label)}, learned
        return feedback_id

    # A correction, another, and the first label given back: each version names the approval that
    # made it (the third named the first approval, and the one that triggered it appeared nowhere)
    approve("legal")
    approve("finance")
    approve("legal")
    # And a reviewer's relabelling of the example is what the next version learned (it said nothing)
    with session_scope(engine) as session:
        document_id = session.get(Job, job["id"]).document_id
        example_id = session.exec(
            select(TrainingExample.id).where(
                TrainingExample.document_id == document_id, TrainingExample.status == "approved"
            )
        ).one()
    before = versions()
    assert heron.post(f"/api/examples/{example_id}/relabel", json={"label": "education"}).status_code == 200
    learned = learned_by_a_new_version(before)
    assert {(item["example_id"], item["label"]) for item in learned} >= {(example_id, "education")}, learned


def test_an_annotator_is_never_scored_on_the_gold_label_they_gave(heron) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    from core.corpus import is_holdout

    def gold(candidate: str) -> bool:  # its approved label goes to the gold set
        return is_holdout(f"document:{hashlib.sha256(candidate.encode()).hexdigest()}")

    text = next(candidate for i in range(200) if gold(candidate := f"{HEALTHCARE[2]} Gold {i}."))
    job = _classified(heron, "xray.txt", text.encode())
    dee, eli = {"X-Heron-User": "dee"}, {"X-Heron-User": "eli"}
    # Given Dee's correction, approved into the gold set, and Eli's label of the same document
    made = heron.post(
        "/api/feedback", json={"job_id": job["id"], "corrected_classification": "healthcare"}, headers=dee
    )
    assert heron.post(f"/api/feedback/{made.json()['feedback_id']}/approve").status_code == 200
    heron.post(
        "/api/feedback", json={"job_id": job["id"], "corrected_classification": "healthcare"}, headers=eli
    )
    # When Dee says the same again
    heron.post(
        "/api/feedback", json={"job_id": job["id"], "corrected_classification": "healthcare"}, headers=dee
    )
    # Then Eli is scored on the gold document, and Dee is not (her own label made it gold)
    people = {a["name"]: a for a in heron.get("/api/annotators").json()["annotators"]}
    assert (people["eli"]["gold_n"], people["eli"]["gold_accuracy"]) == (1, 1.0), people["eli"]
    assert people["dee"]["gold_n"] == 0, people["dee"]
