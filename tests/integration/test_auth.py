"""API keys and roles on every route, checked against the app's own OpenAPI schema."""

from __future__ import annotations

import dataclasses

import pytest
from litestar.testing import TestClient

from api.app import create_app
from core.settings import load_settings

KEYS = {"ann-key": "annotator", "rev-key": "reviewer", "adm-key": "admin"}
NEEDS = {
    ("POST", "/api/classify_file"): "annotator",
    ("POST", "/api/classify_files"): "annotator",
    ("POST", "/api/feedback"): "annotator",
    ("POST", "/api/feedback/approve"): "reviewer",
    ("POST", "/api/feedback/reject"): "reviewer",
    ("POST", "/api/feedback/{feedback_id}/approve"): "reviewer",
    ("POST", "/api/feedback/{feedback_id}/reject"): "reviewer",
    ("POST", "/api/industries"): "reviewer",
    ("PATCH", "/api/industries/{name}"): "reviewer",
    ("DELETE", "/api/industries/{name}"): "reviewer",
    ("POST", "/api/industries/{name}/restore"): "reviewer",
    ("POST", "/api/industries/{name}/examples"): "reviewer",
    ("POST", "/api/models/{version_id}/activate"): "admin",
    ("POST", "/api/retrain_model"): "admin",
    ("POST", "/api/review/next"): "annotator",
    ("POST", "/api/review/{job_id}/claim"): "annotator",
    ("DELETE", "/api/review/{job_id}/claim"): "annotator",
    ("POST", "/api/tasks/{task_id}/cancel"): "reviewer",
    ("POST", "/api/examples/approve"): "reviewer",
    ("POST", "/api/examples/reject"): "reviewer",
    ("POST", "/api/examples/{example_id}/relabel"): "reviewer",
    ("POST", "/api/examples/{example_id}/keep"): "reviewer",
    ("POST", "/api/feedback/batch"): "annotator",
}
RANK = {"annotator": 1, "reviewer": 2, "admin": 3}


@pytest.fixture(scope="module")
def keyed(runtime):  # type: ignore[no-untyped-def]
    settings = load_settings(
        data_dir=runtime.settings.data_dir, api_keys=",".join(f"{k}:{r}" for k, r in KEYS.items())
    )
    with TestClient(create_app(runtime=dataclasses.replace(runtime, settings=settings))) as client:
        yield client


def _routes(client) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    schema = client.get("/docs/openapi.json").json()
    return [
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if path not in ("/health", "/ready")
    ]


def test_every_route_but_health_needs_a_key(keyed) -> None:  # type: ignore[no-untyped-def]
    routes = _routes(keyed)
    assert set(NEEDS) <= set(routes), "a mutating route is missing from the role table"
    for method, path in routes:
        response = keyed.request(
            method,
            path.replace("{job_id}", "x")
            .replace("{name}", "nope")
            .replace("{feedback_id}", "1")
            .replace("{version_id}", "1")
            .replace("{example_id}", "1")
            .replace("{task_id}", "x"),
        )
        assert (response.status_code, response.json()["code"]) == (401, "unauthorized"), (method, path)
        assert response.headers["www-authenticate"] == 'Bearer realm="heron"', (method, path)
    assert keyed.get("/health").status_code == 200
    assert keyed.get("/ready").status_code == 200


def test_the_api_document_says_how_to_send_a_key_and_which_role_each_route_needs(keyed) -> None:  # type: ignore[no-untyped-def]
    """Generated clients and the interactive docs ("Authorize") read the schemes; a client author
    reads the role a route needs without trying every key."""
    schema = keyed.get("/docs/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer KEY",
    }
    assert schemes["apiKey"] == {"type": "apiKey", "name": "X-API-Key", "in": "header"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path in ("/health", "/ready"):
                assert "security" not in operation, path
                continue
            assert operation["security"] == [{"bearer": []}, {"apiKey": []}], (method, path)
            needed = NEEDS.get((method.upper(), path), "annotator" if method == "get" else None)
            if path in ("/api/audit", "/api/export"):
                needed = "reviewer"
            assert f"Needs the {needed} role or higher" in operation["description"], (method, path)
    upload = schema["paths"]["/api/classify_file"]["post"]["description"]
    assert upload.startswith("Upload one document"), upload  # the handler's own words are kept


def test_every_mutating_route_enforces_its_role(keyed) -> None:  # type: ignore[no-untyped-def]
    for method, path in _routes(keyed):
        if method == "GET":
            continue
        needed = NEEDS[(method, path)]
        url = (
            path.replace("{feedback_id}", "999999")
            .replace("{version_id}", "999999")
            .replace("{example_id}", "999999")
            .replace("{name}", "nope")
            .replace("{job_id}", "nope")
            .replace("{task_id}", "nope")
        )
        for key, role in KEYS.items():
            # An invalid body: the guard answers first, and nothing is queued when it lets the call in.
            body = {"retrain_on_feedback_only": "maybe", "ids": "none"}
            response = keyed.request(method, url, headers={"Authorization": f"Bearer {key}"}, json=body)
            if RANK[role] < RANK[needed]:
                assert (response.status_code, response.json()["code"]) == (403, "forbidden"), (
                    method,
                    path,
                    role,
                )
            else:
                assert response.status_code not in (401, 403), (method, path, role, response.text)


def test_the_audit_trail_and_the_export_are_for_reviewers(keyed) -> None:  # type: ignore[no-untyped-def]
    for path in ("/api/audit", "/api/export"):
        refused = keyed.get(path, headers={"X-API-Key": "ann-key"})
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden"), path
        assert keyed.get(path, headers={"X-API-Key": "rev-key"}).status_code == 200, path


def test_reads_need_only_an_annotator_key_in_either_header(keyed) -> None:  # type: ignore[no-untyped-def]
    assert keyed.get("/api/jobs", headers={"X-API-Key": "ann-key"}).status_code == 200
    # (a client library sending an empty bearer token beside the key is still let in)
    assert (
        keyed.get("/api/jobs", headers={"Authorization": "Bearer ", "X-API-Key": "ann-key"}).status_code
        == 200
    )
    assert keyed.get("/api/models", headers={"Authorization": "Bearer ann-key"}).status_code == 200
    wrong = keyed.get("/api/jobs", headers={"X-API-Key": "nope"})
    assert (wrong.status_code, wrong.json()["code"]) == (401, "unauthorized")


def test_without_keys_web_pages_of_other_sites_cannot_use_the_local_api(client) -> None:  # type: ignore[no-untyped-def]
    # Given the default install: no keys, so every local caller is an admin
    # When a page of another site has the browser post to it (a form or a text/plain fetch needs
    # no permission from the API), it is refused, whatever the content type
    cross_site = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    industry = client.post(
        "/api/industries",
        content=b'{"industry_name": "pwned", "description": "Written by a web page."}',
        headers={**cross_site, "Content-Type": "text/plain"},
    )
    assert (industry.status_code, industry.json()["code"]) == (403, "forbidden"), industry.text
    retrain = client.post("/api/retrain_model", headers={"Origin": "https://evil.example"})
    assert (retrain.status_code, retrain.json()["code"]) == (403, "forbidden")
    assert "pwned" not in {row["name"] for row in client.get("/api/industries").json()["items"]}
    # And a page that rebinds its own name to 127.0.0.1 cannot read anything either
    # (a name that only starts like a loopback address is a name anyone can point anywhere)
    for name in ("rebind.evil.example:8000", "127.0.0.1.nip.io:8000", "127.evil.example"):
        rebound = client.get("/api/export", params={"format": "jsonl"}, headers={"Host": name})
        assert (rebound.status_code, rebound.json()["code"]) == (403, "forbidden"), name
    # While the console's and a local script's requests, and a local page's, go through
    assert client.get("/api/industries", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    local = client.post(
        "/api/feedback/approve",
        json={"ids": []},
        headers={"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"},  # the API's docs page
    )
    assert local.status_code not in (401, 403), local.text


def test_a_name_with_accents_is_the_same_annotator_over_http_as_in_the_console(client) -> None:  # type: ignore[no-untyped-def]
    from tests.documents import LEGAL

    job_id = client.post("/api/classify_file", files={"file": ("zoe.txt", f"{LEGAL} Zoë".encode())}).json()[
        "job_id"
    ]
    # When Zoë Çelik's client sends her name as UTF-8, as HTTP clients do
    zoe = {"X-Heron-User": "Zoë Çelik".encode()}
    claimed = client.post(f"/api/review/{job_id}/claim", headers=zoe)
    # Then she holds the item under her name (it was "ZoÃ« Ãelik": someone else to the console)
    assert claimed.json()["claimed_by"] == "Zoë Çelik", claimed.text
    released = client.delete(f"/api/review/{job_id}/claim", headers=zoe)
    assert released.json()["released"] is True


def test_refused_files_of_a_batch_are_named_as_cleanly_as_accepted_ones(client) -> None:  # type: ignore[no-untyped-def]
    answer = client.post(
        "/api/classify_files",
        files=[
            ("files", ("../../etc/\x01passwd\x00.txt", b"")),
            ("files", ("ok.txt", b"A tenancy agreement between landlord and tenant.")),
        ],
    )
    # (the client percent-encodes the control characters; the path must go, as for accepted files)
    refused = [item["filename"] for item in answer.json()["skipped"]]
    assert len(refused) == 1 and refused[0].endswith("passwd%00.txt"), answer.text
    assert "/" not in refused[0] and ".." not in refused[0]
