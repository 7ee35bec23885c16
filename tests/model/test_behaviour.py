"""Behavioural tests of the starter model: invariance, direction, minimum functionality."""

from __future__ import annotations

import pytest

from core.runtime import Runtime
from tests.conftest import wait_for_job
from tests.documents import FINANCE, OBVIOUS, OTHER


@pytest.fixture(scope="module")
def model(starter_runtime: Runtime):  # type: ignore[no-untyped-def]
    return starter_runtime.models.active(starter_runtime.engine)[1]


@pytest.mark.parametrize(("label", "text"), sorted(OBVIOUS.items()))
def test_obvious_documents_are_right(model, starter_runtime: Runtime, label: str, text: str) -> None:  # type: ignore[no-untyped-def]
    assert model.classify([text], starter_runtime.policy, encoder=starter_runtime.encoder)[0].label == label


def test_adding_strong_finance_text_moves_scores_towards_finance(model, starter_runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    before = model.classify([OTHER], starter_runtime.policy, encoder=starter_runtime.encoder)[0].scores[
        "finance"
    ]
    after = model.classify([OTHER + " " + FINANCE], starter_runtime.policy, encoder=starter_runtime.encoder)[
        0
    ].scores["finance"]
    assert after > before + 0.1


def test_the_file_name_never_changes_the_label(client) -> None:  # type: ignore[no-untyped-def]
    text = OBVIOUS["healthcare"].encode()
    labels = set()
    for name in ("invoice_2024.txt", "court-judgment.txt", "syllabus.txt", "x", "../../finance.pdf"):
        job_id = client.post("/api/classify_file", files={"file": (name, text)}).json()["job_id"]
        labels.add(wait_for_job(client, job_id)["classification_result"])
    assert labels == {"healthcare"}
