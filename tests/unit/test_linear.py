from __future__ import annotations

import numpy as np
import pytest

from core.classify.linear import LinearTextClassifier
from core.errors import NotFittedError

TEXTS = [
    "invoice payment bank interest loan",
    "bank loan mortgage interest rate",
    "patient doctor hospital medication",
    "nurse patient ward surgery",
]
LABELS = ["finance", "finance", "healthcare", "healthcare"]


def test_predicting_before_fitting_says_what_to_do() -> None:
    with pytest.raises(NotFittedError, match="call fit or partial_fit"):
        LinearTextClassifier().predict(["anything"])


def test_fit_learns_and_probabilities_sum_to_one() -> None:
    model = LinearTextClassifier(epochs=20).fit(TEXTS, LABELS)
    assert model.predict(["the patient needs medication", "a loan at a low interest rate"]) == [
        "healthcare",
        "finance",
    ]
    assert np.allclose(model.predict_proba(TEXTS).sum(axis=1), 1.0)


def test_partial_fit_adds_a_class_without_forgetting_the_others() -> None:
    # Given a model that knows two classes
    model = LinearTextClassifier(epochs=20).fit(TEXTS, LABELS)
    # When examples of a new class arrive incrementally
    legal = ["court judgment contract breach", "the court ruled the contract void", "plaintiff sued"]
    for _ in range(10):
        model.partial_fit(legal + TEXTS, ["legal"] * 3 + LABELS)
    # Then the new class is predicted and the old ones still are
    assert model.classes_ == ["finance", "healthcare", "legal"]
    assert model.predict(["the court found a breach of contract"]) == ["legal"]
    assert model.predict(["patient given medication on a ward"]) == ["healthcare"]


def test_artifact_round_trip_gives_identical_scores_and_stays_small() -> None:
    model = LinearTextClassifier(epochs=5).fit(TEXTS, LABELS)
    blob = model.to_bytes()
    restored = LinearTextClassifier.from_bytes(blob)
    assert np.allclose(restored.predict_proba(TEXTS), model.predict_proba(TEXTS))
    assert len(blob) < 1_000_000
