"""The hybrid model's routing and persistence, on small made-up embeddings (pure, no MiniLM)."""

from __future__ import annotations

import numpy as np

from core.classify.calibration import fit_temperature, softmax
from core.classify.linear import LinearTextClassifier
from core.classify.model import HeronModel, RoutingPolicy, SemanticTier
from core.classify.softmax import SoftmaxRegression

TEXTS = ["loan interest bank", "bank mortgage rate", "patient ward nurse", "doctor patient dose"]
LABELS = ["finance", "finance", "healthcare", "healthcare"]


class KeywordEncoder:
    """A stand-in encoder: 3-d unit vectors from keywords (finance, healthcare, property)."""

    def embed(self, texts):  # type: ignore[no-untyped-def]
        rows = []
        for text in texts:
            v = (
                np.array(
                    [
                        sum(w in text for w in ("bank", "loan", "rate", "mortgage")),
                        sum(w in text for w in ("patient", "doctor", "ward", "dose", "nurse")),
                        sum(w in text for w in ("house", "tenant", "landlord", "property")),
                    ],
                    dtype=float,
                )
                + 0.05
            )
            rows.append(v / np.linalg.norm(v))
        return np.array(rows)


def model() -> HeronModel:
    encoder = KeywordEncoder()
    embeddings = encoder.embed(TEXTS)
    prototypes = {"finance": np.array([[1.0, 0, 0]]), "healthcare": np.array([[0, 1.0, 0]])}
    tier = SemanticTier(regression=SoftmaxRegression(), prototypes=prototypes, reference=embeddings)
    tier.regression.fit(embeddings, LABELS, offsets=tier.prior(embeddings, ["finance", "healthcare"]))
    return HeronModel(fast=LinearTextClassifier(epochs=30).fit(TEXTS, LABELS), semantic=tier)


def test_confident_fast_answers_are_not_escalated_and_unsure_ones_are() -> None:
    m = model()
    sure = m.classify(["bank loan rate"], RoutingPolicy(escalation_threshold=0.0), encoder=KeywordEncoder())[
        0
    ]
    assert (sure.tier, sure.escalated, sure.label) == ("fast", False, "finance")
    always = m.classify(
        ["bank loan rate"], RoutingPolicy(escalation_threshold=1.01), encoder=KeywordEncoder()
    )[0]
    assert (always.tier, always.escalated, always.label) == ("transformer", True, "finance")


def test_a_described_industry_without_examples_is_predicted_and_forces_escalation() -> None:
    m = model().with_prototypes({"property": np.array([[0, 0, 1.0]])})
    verdict = m.classify(
        ["tenant landlord house"], RoutingPolicy(escalation_threshold=0.0), encoder=KeywordEncoder()
    )[0]
    assert verdict.label == "property" and verdict.escalated
    assert set(verdict.scores) == {"finance", "healthcare", "property"}


def test_retired_industries_are_never_answered() -> None:
    verdict = model().classify(
        ["bank loan"], RoutingPolicy(), encoder=KeywordEncoder(), allowed=["healthcare"]
    )[0]
    assert verdict.label == "healthcare" and set(verdict.scores) == {"healthcare"}


def test_the_artifact_round_trips_to_identical_answers() -> None:
    m = model().with_prototypes({"property": np.array([[0, 0, 1.0]])})
    restored = HeronModel.from_bytes(m.to_bytes())
    texts = ["bank loan", "patient dose", "tenant house"]
    policy = RoutingPolicy(escalation_threshold=1.01)
    a = m.classify(texts, policy, encoder=KeywordEncoder())
    b = restored.classify(texts, policy, encoder=KeywordEncoder())
    assert [v.label for v in a] == [v.label for v in b]
    assert np.allclose([v.confidence for v in a], [v.confidence for v in b], atol=1e-3)


def test_temperature_scaling_softens_overconfident_logits() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, 500)
    logits = rng.normal(size=(500, 3))
    logits[np.arange(500), targets] += 1.0
    overconfident = logits * 10
    temperature = fit_temperature(overconfident, targets)
    assert temperature > 3
    assert softmax(overconfident / temperature).max(axis=1).mean() < softmax(overconfident).max(axis=1).mean()


def test_a_row_with_no_allowed_label_has_no_opinion_instead_of_nan() -> None:
    probabilities = softmax(np.array([[-np.inf, -np.inf]]))
    assert probabilities.tolist() == [[0.0, 0.0]]
