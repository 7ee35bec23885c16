"""Annotation on PostgreSQL: evidence, more like this, a batch label and kappa through the API."""

from __future__ import annotations

import uuid

from sqlalchemy import text as sql

from core.db import make_engine
from core.runtime import open_runtime
from core.settings import load_settings
from tests.conftest import POSTGRES, drop_schema, needs_services, own_workers
from tests.integration.test_annotation import FINANCE, HEALTHCARE, _classified


@needs_services("PostgreSQL")
def test_evidence_similar_and_agreement_work_on_postgresql(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from litestar.testing import TestClient

    from api.app import create_app

    schema = f"heron_annotation_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(sql(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    runtime = open_runtime(load_settings(data_dir=tmp_path, database_url=url, broker_url=""))
    try:
        with own_workers(), TestClient(create_app(runtime=runtime), timeout=30) as client:
            finance = [_classified(client, f"pf{i}.txt", text.encode()) for i, text in enumerate(FINANCE)]
            clinical = [_classified(client, f"ph{i}.txt", text.encode()) for i, text in enumerate(HEALTHCARE)]
            body = client.get(f"/api/jobs/{finance[0]['id']}/text").json()
            assert finance[0]["evidence"] and all(
                p["text"] == body["text"][p["start"] : p["end"]] for p in finance[0]["evidence"]
            )
            similar = client.get(f"/api/jobs/{clinical[0]['id']}/similar", params={"limit": 3}).json()[
                "items"
            ]
            assert {item["job_id"] for item in similar} == {job["id"] for job in clinical[1:]}, similar
            made = client.post(
                "/api/feedback/batch",
                json={"job_ids": [job["id"] for job in finance], "corrected_classification": "finance"},
                headers={"X-Heron-User": "dee"},
            )
            assert made.status_code == 200 and len(made.json()["items"]) == 4
            client.post(
                "/api/feedback/",
                json={"job_id": finance[0]["id"], "corrected_classification": "legal"},
                headers={"X-Heron-User": "eve"},
            )
            pair = client.get("/api/annotators").json()["agreement"]
            assert pair == [
                {"annotator_a": "dee", "annotator_b": "eve", "documents": 1, "agreement": 0.0, "kappa": 0.0}
            ]
    finally:
        runtime.close()
        drop_schema(schema)
