"""Background tasks, review claims and industries created with example files, through the HTTP API."""

from __future__ import annotations

from core.services.tasks import cancel, get_task
from core.services.training import request_training
from tests.conftest import wait_for_job, wait_for_task

AVIATION = [
    "Flight operations bulletin: the A320 fleet completes its C-check at the Toulouse hangar; pilots "
    "must review the revised approach minima, the crosswind limits and the updated fuel policy before "
    "their next rotation. Air traffic control slot delays at the hub averaged twelve minutes.",
    "Airline network plan for the winter season: two new routes from the hub, higher load factors on "
    "transatlantic flights, wet-lease of three narrow-body aircraft, and cabin crew rostering changes "
    "agreed with the pilots' union. Airport landing fees rise by four percent.",
    "Maintenance log: engine borescope inspection found blade erosion on the number two engine; the "
    "aircraft was grounded, the airworthiness directive applied and the flight dispatched after a "
    "ground run. The captain and first officer signed the technical log before pushback.",
]


def test_training_requests_wait_in_one_task_until_a_worker_takes_it(runtime) -> None:  # type: ignore[no-untyped-def]
    # Given a full retrain waiting for a worker (not sent, so it stays PENDING)
    first, joined = request_training(engine=runtime.engine, mode="full", actor="ada")
    assert not joined and first.status == "PENDING"
    # When more requests arrive, full or incremental, before it starts
    again, joined_again = request_training(engine=runtime.engine, mode="full", actor="bob")
    update, joined_update = request_training(engine=runtime.engine, mode="incremental", actor="bob")
    # Then they join the waiting task instead of queueing more runs
    assert (again.id, joined_again) == (first.id, True)
    assert (update.id, joined_update) == (first.id, True)
    # And cancelling the waiting task ends it at once; a new request then makes a new task
    assert cancel(engine=runtime.engine, task_id=first.id, actor="ada").status == "CANCELLED"
    # (it may join a run another test module left waiting for the workers, never the cancelled one)
    fresh, joined_fresh = request_training(engine=runtime.engine, mode="incremental", actor="ada")
    assert fresh.id != first.id and fresh.status == "PENDING"
    if not joined_fresh:
        cancel(engine=runtime.engine, task_id=fresh.id)
        assert get_task(engine=runtime.engine, task_id=fresh.id).status == "CANCELLED"


def test_retrain_answers_with_a_task_that_reports_its_outcome(client) -> None:  # type: ignore[no-untyped-def]
    # Given nothing new to learn, when a feedback-only retrain is requested
    accepted = client.post("/api/retrain_model", json={"retrain_on_feedback_only": True})
    assert accepted.status_code == 202
    body = accepted.json()
    assert {"message", "retrain_on_feedback_only", "task_id", "status"} <= set(body)
    # Then its task ends SUCCEEDED, saying why nothing was trained
    task = wait_for_task(client, body["task_id"])
    assert task["status"] == "SUCCEEDED" and task["progress"] == 1.0, task
    assert task["kind"] == "training" and task["params"] == {"mode": "incremental"}
    assert "skipped" in task["result"] or "version_id" in task["result"]
    listed = client.get("/api/tasks", params={"kind": "training", "limit": 1000}).json()
    assert body["task_id"] in {item["id"] for item in listed["items"]}
    missing = client.get("/api/tasks/nope")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    bad = client.get("/api/tasks", params={"status": "SOMETIME"})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid")


def test_an_industry_created_with_example_files_trains_on_them(client) -> None:  # type: ignore[no-untyped-def]
    # Given three example documents of a new industry, sent as a multipart form
    files = [("files", (f"aviation{i}.txt", text.encode(), "text/plain")) for i, text in enumerate(AVIATION)]
    files.append(("files", ("blank.txt", b"", "text/plain")))
    files.append(("files", ("aviation0-copy.txt", AVIATION[0].encode(), "text/plain")))
    created = client.post(
        "/api/industries",
        data={
            "industry_name": "Aviation",
            "description": "Airlines, airports, aircraft and flight operations.",
        },
        files=files,
    )
    # Then the industry is created with the readable files as examples; the blank one and the copy
    # are reported, each with why it was not used
    assert created.status_code == 202, created.text
    body = created.json()
    assert body["industry_name"] == "aviation" and body["examples_added"] == 3
    assert [(error["filename"], error["code"]) for error in body["example_errors"]] == [
        ("blank.txt", "empty"),
        ("aviation0-copy.txt", "duplicate"),
    ]
    assert body["synthesis"] == "not_requested" and body["training_task_id"]
    # And a training task learns them: a new version that knows the industry
    task = wait_for_task(client, body["training_task_id"])
    assert task["status"] == "SUCCEEDED", task
    assert "aviation" in client.get(f"/api/models/{task['result']['version_id']}/report").text
    listed = {i["name"]: i for i in client.get("/api/industries").json()["items"]}
    assert listed["aviation"]["examples"] == {"import": 3}
    # And the same name again, in any spelling, is a conflict
    again = client.post("/api/industries", json={"industry_name": "  AVIATION "})
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    # (Retired again: test_synthesis, which may share this process's Heron, adds aviation industries
    # of its own, and two young industries about the same thing split its documents between them.)
    assert client.delete("/api/industries/aviation").status_code in (200, 202, 204)


def test_an_industry_whose_example_files_are_all_unreadable_is_not_created(client) -> None:  # type: ignore[no-untyped-def]
    # Given a new industry sent with example files of which none can be read (empty, corrupt PDF)
    files = [
        ("files", ("blank.txt", b"", "text/plain")),
        ("files", ("broken.pdf", b"%PDF-1.4 garbage", "application/pdf")),
    ]
    refused = client.post(
        "/api/industries",
        data={"industry_name": "Glassblowing", "description": "Furnaces, glass art and studio glassware."},
        files=files,
    )
    # Then it is refused with each file's reason, and nothing is created: the same request can be
    # sent again with readable files
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid"), refused.text
    assert "blank.txt: empty" in refused.json()["message"] and "broken.pdf" in refused.json()["message"]
    assert "glassblowing" not in {i["name"] for i in client.get("/api/industries").json()["items"]}
    # And a name that exists is a conflict before any file is read
    taken = client.post("/api/industries", data={"industry_name": "Finance"}, files=files)
    assert (taken.status_code, taken.json()["code"]) == (409, "conflict")


def test_industry_creation_validates_its_fields_in_json_and_forms(client) -> None:  # type: ignore[no-untyped-def]
    for response in (
        client.post("/api/industries", json={"description": "no name"}),
        client.post("/api/industries", data={"description": "no name"}, files=[("files", ("a.txt", b"x"))]),
        client.post("/api/industries", json={"industry_name": "x" * 101}),
        client.post("/api/industries", json={"industry_name": "ok_name", "num_synthetic_documents": -1}),
        client.post("/api/industries", content=b"{not json", headers={"content-type": "application/json"}),
        client.post("/api/industries", json={"industry_name": "!!"}),
    ):
        assert (response.status_code, response.json()["code"]) == (422, "invalid"), response.text


def test_synthesis_without_an_llm_is_accepted_and_says_so(client) -> None:  # type: ignore[no-untyped-def]
    # Given no LLM configured, when an industry is added with synthetic documents requested
    created = client.post(
        "/api/industries",
        json={
            "industry_name": "beekeeping",
            "description": "Hives, honey harvests and colony health.",
            "num_synthetic_documents": 5,
        },
    )
    # Then it is accepted, the synthesis task ends with llm_not_configured, and the industry exists
    assert created.status_code == 202
    body = created.json()
    assert body["synthesis"] == "llm_not_configured"
    task = client.get(f"/api/tasks/{body['synthesis_task_id']}").json()
    assert (task["status"], task["error_code"]) == ("FAILED", "llm_not_configured")
    assert "HERON_LLM_BASE_URL" in task["error_message"]
    assert "beekeeping" in {i["name"] for i in client.get("/api/industries").json()["items"]}


def test_a_claimed_item_is_hidden_from_other_annotators(client) -> None:  # type: ignore[no-untyped-def]
    # Given two documents that need review
    for i in range(2):
        job_id = client.post(
            "/api/classify_file",
            files={"file": (f"memo{i}.txt", f"Memo {i}: the items discussed were noted and filed.".encode())},
        ).json()["job_id"]
        wait_for_job(client, job_id)
    ada, bob = {"X-Heron-User": "ada"}, {"X-Heron-User": "bob"}
    # When Ada takes the next item
    taken = client.post("/api/review/next", headers=ada).json()
    assert taken["job"] is not None and taken["claimed_by"] == "ada"
    held = taken["job"]["id"]
    # Then Bob's queue no longer shows it, Bob cannot claim it, and his next item is another one
    assert held not in {
        item["id"] for item in client.get("/api/review?limit=1000", headers=bob).json()["items"]
    }
    refused = client.post(f"/api/review/{held}/claim", headers=bob)
    assert (refused.status_code, refused.json()["code"]) == (409, "conflict")
    assert "ada" in refused.json()["message"]
    other = client.post("/api/review/next", headers=bob).json()["job"]
    assert other is None or other["id"] != held
    # Ada still sees her own claim, and can extend it
    assert held in {item["id"] for item in client.get("/api/review?limit=1000", headers=ada).json()["items"]}
    assert client.post(f"/api/review/{held}/claim", headers=ada).status_code == 200
    # And Bob cannot give Ada's claim back for her: he is told who holds it, and it stays hers
    theirs = client.delete(f"/api/review/{held}/claim", headers=bob)
    assert (theirs.status_code, theirs.json()["code"]) == (409, "conflict") and "ada" in theirs.json()[
        "message"
    ]
    assert client.post(f"/api/review/{held}/claim", headers=bob).status_code == 409
    # When Ada skips it (releases the claim), Bob can take it
    released = client.delete(f"/api/review/{held}/claim", headers=ada)
    assert released.status_code == 200 and released.json()["released"] is True
    again = client.delete(f"/api/review/{held}/claim", headers=ada)  # nothing held any more
    assert again.status_code == 200 and again.json()["released"] is False
    assert client.post(f"/api/review/{held}/claim", headers=bob).json()["claimed_by"] == "bob"
    client.delete(f"/api/review/{held}/claim", headers=bob)
    if other:
        client.delete(f"/api/review/{other['id']}/claim", headers=bob)
    # A client skips an item by giving it back and leaving it out of its next call
    first = client.post("/api/review/next", headers=ada).json()["job"]
    client.delete(f"/api/review/{first['id']}/claim", headers=ada)
    after_skip = client.post("/api/review/next", headers=ada, params={"exclude": [first["id"]]}).json()["job"]
    assert after_skip is None or after_skip["id"] != first["id"]
    listed = client.get("/api/review", headers=ada, params={"exclude": [first["id"]], "limit": 1000}).json()
    assert first["id"] not in {item["id"] for item in listed["items"]}
    if after_skip:
        client.delete(f"/api/review/{after_skip['id']}/claim", headers=ada)
    missing = client.post("/api/review/nope/claim", headers=ada)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    gone = client.delete("/api/review/nope/claim", headers=ada)
    assert (gone.status_code, gone.json()["code"]) == (404, "not_found")


def test_a_document_that_failed_is_no_review_item_to_claim(client) -> None:  # type: ignore[no-untyped-def]
    # Given an upload that cannot be read
    failed = client.post("/api/classify_file", files={"file": ("broken.pdf", b"%PDF-1.7\n garbage")}).json()
    assert wait_for_job(client, failed["job_id"])["status"] == "FAILED"
    # Then claiming it for review is refused, saying why (it was claimed, with nothing to label)
    refused = client.post(f"/api/review/{failed['job_id']}/claim", headers={"X-Heron-User": "ada"})
    assert (refused.status_code, refused.json()["code"]) == (409, "conflict"), refused.text
    assert "FAILED" in refused.json()["message"]
