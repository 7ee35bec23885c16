"""The hybrid model's routing, combination and persistence, on small made-up vectors (pure, no MiniLM)."""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations

import numpy as np

from core.classify.calibration import fit_temperature, softmax
from core.classify.model import MAX_RAISED_THRESHOLD, Calibration, HeronModel, RoutingPolicy
from core.classify.training import TrainingSet, fit_hybrid, fit_settled, newcomers

KEYWORDS = {
    "finance": ("bank", "loan", "rate", "mortgage", "interest", "account"),
    "healthcare": ("patient", "doctor", "ward", "dose", "nurse", "clinic"),
    "property": ("house", "tenant", "landlord", "property"),
}
# Twenty examples of each industry (every three of its six keywords): established, not young.
TEXTS = [" ".join(words) for label in ("finance", "healthcare") for words in combinations(KEYWORDS[label], 3)]
LABELS = [label for label in ("finance", "healthcare") for _ in combinations(KEYWORDS[label], 3)]


class KeywordEncoder:
    """A stand-in for MiniLM: 3-d unit vectors counting keywords (finance, healthcare, property),
    used both as the digest embedding and as the static vector."""

    def embed(self, texts):  # type: ignore[no-untyped-def]
        rows = []
        for text in texts:
            v = np.array([sum(w in text for w in words) for words in KEYWORDS.values()], dtype=float) + 0.05
            rows.append(v / np.linalg.norm(v))
        return np.array(rows)

    def static(self, texts):  # type: ignore[no-untyped-def]
        return self.embed(texts)


PROTOTYPES = {
    "finance": np.array([[1.0, 0, 0]]),
    "healthcare": np.array([[0, 1.0, 0]]),
    "property": np.array([[0, 0, 1.0]]),
}


def training_set(texts=TEXTS, labels=LABELS, people=None) -> TrainingSet:  # type: ignore[no-untyped-def]
    """The examples as a training run passes them: one group each, equal weights."""
    encoder = KeywordEncoder()
    return TrainingSet(
        texts=list(texts),
        labels=list(labels),
        weights=np.ones(len(texts)),
        groups=[str(i) for i in range(len(texts))],
        embeddings=encoder.embed(texts),
        static=encoder.static(texts),
        people=people,
    )


def fitted(texts=TEXTS, labels=LABELS, industries=("finance", "healthcare")) -> HeronModel:  # type: ignore[no-untyped-def]
    return fit_hybrid(training_set(texts, labels), PROTOTYPES, industries=list(industries)).model


def test_confident_fast_answers_are_not_escalated_and_unsure_ones_are() -> None:
    m = fitted()
    sure = m.classify(["bank loan rate"], RoutingPolicy(escalation_threshold=0.0), encoder=KeywordEncoder())[
        0
    ]
    assert (sure.tier, sure.escalated, sure.label) == ("fast", False, "finance")
    always = m.classify(
        ["bank loan rate"], RoutingPolicy(escalation_threshold=1.01), encoder=KeywordEncoder()
    )[0]
    assert (always.tier, always.escalated, always.label) == ("transformer", True, "finance")


def test_a_described_industry_without_examples_is_predicted_through_the_transformer_tier() -> None:
    # Given a model that knows "property" only from its description
    m = fitted(industries=("finance", "healthcare", "property"))
    assert "property" not in m.fast.labels and "property" in m.labels
    # When a document about it arrives, even with routing that never escalates
    verdict = m.classify(
        ["tenant landlord house"], RoutingPolicy(escalation_threshold=0.0), encoder=KeywordEncoder()
    )[0]
    # Then it is predicted, by the transformer tier
    assert verdict.label == "property" and verdict.escalated
    assert set(verdict.scores) == {"finance", "healthcare", "property"}


def test_a_young_industry_changes_no_answer_but_the_ones_it_takes() -> None:
    # Given the same model before and after a described industry was added
    before = fitted()
    after = fitted(industries=("finance", "healthcare", "property"))
    texts = ["bank loan rate", "patient doctor ward", "tenant landlord house"]
    policy = RoutingPolicy(escalation_threshold=0.0)
    old = before.classify(texts, policy, encoder=KeywordEncoder())
    new = after.classify(texts, policy, encoder=KeywordEncoder())
    # Then documents of the old industries keep their answers and confidences exactly
    for a, b in zip(old[:2], new[:2], strict=True):
        assert (a.label, a.tier) == (b.label, b.tier)
        assert abs(a.confidence - b.confidence) < 1e-9
    assert new[2].label == "property"


def test_a_young_industry_changes_no_answer_but_the_ones_it_takes_even_escalated_ones() -> None:
    # Given the model before "property" existed, and the model after two property examples arrived
    texts = [*TEXTS, "tenant landlord", "house property"]
    labels = [*LABELS, "property", "property"]
    industries = ("finance", "healthcare", "property")
    before = fitted()
    after = fitted(texts, labels, industries)
    encoder = KeywordEncoder()
    data = training_set(texts, labels)
    after.settled = fit_settled(
        data, PROTOTYPES, industries=industries, learning=newcomers(labels, industries)
    )
    # When every document goes through both tiers (borderline ones included)
    policy = RoutingPolicy(escalation_threshold=1.01)
    documents = ["bank loan rate", "patient doctor ward", "bank patient", "loan dose", "tenant landlord"]
    old = before.classify(documents, policy, encoder=encoder)
    new = HeronModel.from_bytes(after.to_bytes()).classify(documents, policy, encoder=encoder)
    plain = replace(after, settled=None).classify(documents, policy, encoder=encoder)
    # Then the newcomer takes its document and every other answer is the one given before it came
    assert new[-1].label == "property"
    for a, b in zip(old[:-1], new[:-1], strict=True):
        assert a.label == b.label and abs(a.confidence - b.confidence) < 1e-6
    # ... which the retrained model alone does not promise
    assert [a.label for a in old[:-1]] != [c.label for c in plain[:-1]]


def test_a_newcomer_takes_only_documents_it_is_sure_enough_of_the_rest_keep_their_answer_for_review() -> None:
    # Given a model that knows "property" from its description only, beside the model without it
    before = fitted()
    after = replace(fitted(industries=("finance", "healthcare", "property")), settled=before)
    documents = ["house loan rate", "bank loan rate"]  # the first: property at 0.98, finance next
    encoder = KeywordEncoder()
    # When property is the likeliest answer with more than the review threshold's confidence
    sure = after.classify(documents, RoutingPolicy(review_threshold=0.5), encoder=encoder)
    # Then it takes the document
    assert sure[0].label == "property" and 0.5 <= sure[0].confidence < 0.99
    assert "new_industry_unsure" not in sure[0].review_reasons
    # When the same answer falls short of a stricter review threshold
    policy = RoutingPolicy(review_threshold=0.99)
    unsure = after.classify(documents, policy, encoder=encoder)
    old = before.classify(documents, policy, encoder=encoder)
    # Then the document keeps the answer it had before property existed, and a person is asked
    assert unsure[0].label == old[0].label != "property"
    assert unsure[0].needs_review and "new_industry_unsure" in unsure[0].review_reasons
    # ... and a document property never claimed is untouched by the rule
    assert "new_industry_unsure" not in unsure[1].review_reasons and unsure[1].label == "finance"


def test_the_fast_tier_has_no_opinion_on_an_industry_it_does_not_know() -> None:
    # Given calibrated fast logits that are sure of finance and know nothing of property
    m = fitted(industries=("finance", "healthcare", "property"))
    fast = np.array([[5.0, 0.0, -np.inf]])
    # When the transformer tier cannot tell finance from property, the fast tier's finance wins
    assert m.combine(fast, np.array([[1.0, 0.0, 1.0]]), m.labels)[0].argmax() == 0
    # When the transformer tier is sure of property, property wins: the fast tier did not rule it out
    assert m.combine(fast, np.array([[0.0, 0.0, 4.0]]), m.labels)[0].argmax() == 2


def test_retired_industries_are_never_answered() -> None:
    verdict = fitted().classify(
        ["bank loan"], RoutingPolicy(), encoder=KeywordEncoder(), allowed=["healthcare"]
    )[0]
    assert verdict.label == "healthcare" and set(verdict.scores) == {"healthcare"}


def test_the_artifact_round_trips_to_identical_answers() -> None:
    m = fitted(industries=("finance", "healthcare", "property"))
    restored = HeronModel.from_bytes(m.to_bytes())
    assert HeronModel.format_of(m.to_bytes()) == "heron-model-v3"
    texts = ["bank loan", "patient dose", "tenant house"]
    for threshold in (0.0, 1.01):
        policy = RoutingPolicy(escalation_threshold=threshold)
        a = m.classify(texts, policy, encoder=KeywordEncoder())
        b = restored.classify(texts, policy, encoder=KeywordEncoder())
        assert [v.label for v in a] == [v.label for v in b]
        assert np.allclose([v.confidence for v in a], [v.confidence for v in b], atol=1e-4)


def test_the_fast_tier_alone_is_never_sharper_than_its_regression() -> None:
    # Given a model whose held-out folds asked for a sharper fast tier (T = 0.5)
    m = fitted()
    sharpened = replace(m, calibration=Calibration(fast=0.5, semantic=1.0, combined=1.0))
    guarded = replace(m, calibration=Calibration(fast=0.5, semantic=1.0, combined=1.0, fast_alone=1.0))
    alone, escalated = RoutingPolicy(escalation_threshold=0.0), RoutingPolicy(escalation_threshold=1.01)
    text = ["bank loan patient"]
    # When the fast tier answers alone, the guarded model is less sure than the sharpened one
    sure = sharpened.classify(text, alone, encoder=KeywordEncoder())[0]
    tempered = guarded.classify(text, alone, encoder=KeywordEncoder())[0]
    assert tempered.tier == "fast" and tempered.confidence < sure.confidence
    # ... while inside the combination both weigh the fast tier alike
    a = sharpened.classify(text, escalated, encoder=KeywordEncoder())[0]
    b = guarded.classify(text, escalated, encoder=KeywordEncoder())[0]
    assert a.scores == b.scores
    # And training never sets a standalone temperature below 1, and it survives the round trip
    calibration = HeronModel.from_bytes(m.to_bytes()).calibration
    assert calibration.alone >= 1.0 and calibration.alone >= calibration.fast


def test_an_unreadable_artifact_has_no_format() -> None:
    assert HeronModel.format_of(b"not a zip") is None


def test_temperature_scaling_softens_overconfident_logits() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, 500)
    logits = rng.normal(size=(500, 3))
    logits[np.arange(500), targets] += 1.0
    overconfident = logits * 10
    temperature = fit_temperature(overconfident, targets)
    assert temperature > 3
    assert softmax(overconfident / temperature).max(axis=1).mean() < softmax(overconfident).max(axis=1).mean()


def test_the_prior_decides_only_when_the_held_out_predictions_cannot() -> None:
    rng = np.random.default_rng(1)
    # Given a few held-out predictions, all right (a small single-template import)
    flawless = np.tile([[10.0, 0.0, 0.0]], (30, 1))
    right = np.zeros(30, dtype=int)
    # Then the temperature stays near where its prior is centred, instead of racing to certainty
    assert 1.1 < fit_temperature(flawless, right, centre=1.5) < 1.5
    assert fit_temperature(flawless, right, centre=1.0) < fit_temperature(flawless, right, centre=1.5)
    # Given hundreds of held-out predictions with mistakes among them, the centre hardly matters
    targets = rng.integers(0, 3, 600)
    logits = rng.normal(size=(600, 3))
    logits[np.arange(600), targets] += 2.0
    spread = fit_temperature(logits, targets, centre=1.5) - fit_temperature(logits, targets, centre=1.0)
    assert abs(spread) < 0.05


def test_weighted_temperature_follows_the_examples_that_weigh_more() -> None:
    # Given sharp logits that are right on one half and wrong on the other
    targets = np.zeros(200, dtype=int)
    logits = np.tile([[4.0, 0.0]], (200, 1))
    logits[100:] = [0.0, 4.0]
    heavy_right = np.r_[np.full(100, 10.0), np.ones(100)]
    heavy_wrong = heavy_right[::-1]
    # Then weighting the wrong half more asks for a softer temperature
    assert fit_temperature(logits, targets, heavy_wrong) > fit_temperature(logits, targets, heavy_right)


def test_a_row_with_no_allowed_label_has_no_opinion_instead_of_nan() -> None:
    probabilities = softmax(np.array([[-np.inf, -np.inf]]))
    assert probabilities.tolist() == [[0.0, 0.0]]


def test_the_fast_tier_growing_sure_of_the_peoples_documents_does_not_stop_their_escalation() -> None:
    # Given a model fitted on examples that are all the people's own (corrections, imports)
    encoder = KeywordEncoder()
    data = training_set(people=np.ones(len(TEXTS), dtype=bool))
    fit = fit_hybrid(data, PROTOTYPES, industries=["finance", "healthcare"])
    model = HeronModel.from_bytes(fit.model.to_bytes())
    # ... its out-of-fold confidences on them, as the fast tier answering alone gives them, set how
    # sure it must be to answer alone
    alone_oof = softmax(fit.oof_fast / model.calibration.alone).max(axis=1)
    assert np.allclose(model.calibration.people, np.percentile(alone_oof, np.arange(101)), atol=1e-6)
    # (one template's documents held out one by one are near-certain: the raise stops at its ceiling)
    assert model.calibration.escalate_below(0.18) > MAX_RAISED_THRESHOLD
    assert model.escalation_threshold(RoutingPolicy(escalation_threshold=0.0)) == MAX_RAISED_THRESHOLD
    documents = ["bank loan rate", "bank loan patient", "bank patient"]
    # When the fast tier is less sure of a document than the floor the people's documents set
    alone = model.classify(
        documents, RoutingPolicy(escalation_threshold=0.0, escalation_share=0.0), encoder=encoder
    )
    assert alone[0].confidence > alone[1].confidence > MAX_RAISED_THRESHOLD > alone[2].confidence
    assert not any(v.escalated for v in alone)
    # Then it goes to the transformer tier too, where the threshold alone would have let it through;
    # those above the ceiling are answered alone
    routed = model.classify(documents, RoutingPolicy(escalation_threshold=0.0), encoder=encoder)
    assert [v.escalated for v in routed] == [False, False, True]
    # ... and a model that has none of the people's examples keeps the configured threshold alone
    assert fitted().calibration.people == ()
    assert fitted().escalation_threshold(RoutingPolicy(escalation_threshold=0.3)) == 0.3


def test_a_label_with_a_single_example_does_not_flatten_every_answer() -> None:
    # Given the keyword set plus one lone "property" example (the rest of its kind held out as
    # gold, as an import can leave it): no fold that holds it out has seen the label
    texts = [*TEXTS, "house tenant landlord"]
    labels = [*LABELS, "property"]
    industries = ["finance", "healthcare", "property"]
    with_lone = fit_hybrid(training_set(texts, labels), PROTOTYPES, industries=industries)
    without = fit_hybrid(training_set(), PROTOTYPES, industries=industries)
    # Then the temperatures are fitted on the examples their folds could judge: the same as without it
    assert not with_lone.judged[-1] and with_lone.judged[:-1].all()
    for tier in ("fast", "semantic", "combined"):
        assert getattr(with_lone.model.calibration, tier) < 2 * getattr(without.model.calibration, tier)
    # And a plain finance document is still answered with confidence, not near a third
    verdict = with_lone.model.classify(
        ["bank loan mortgage rate"], RoutingPolicy(escalation_threshold=1.01), encoder=KeywordEncoder()
    )[0]
    assert verdict.label == "finance" and verdict.confidence > 0.8, verdict
