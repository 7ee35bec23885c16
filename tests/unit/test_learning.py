"""How Heron learns, in pure functions: the estimator, weights, folds, carving and promotion."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from core.classify.carving import Carver, sentences_not_about
from core.classify.model import NEW_INDUSTRY_CARVED, Verdict, _carve
from core.classify.softmax import SoftmaxRegression
from core.classify.training import (
    TrainingSet,
    _splits,
    balanced,
    carve_out,
    description_sentences,
    origin_group,
)
from core.errors import NotFittedError
from core.services.training import example_weights, expand_ranges, id_ranges, promotion_decision


def blobs(seed: int = 0, n: int = 60) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = {"a": [2.0, 0, 0], "b": [0, 2.0, 0], "c": [0, 0, 2.0]}
    x = np.vstack([rng.normal(centre, 1.0, size=(n, 3)) for centre in centres.values()])
    return x, [label for label in centres for _ in range(n)]


def test_predicting_before_fitting_says_what_to_do() -> None:
    with pytest.raises(NotFittedError, match="call fit first"):
        SoftmaxRegression().decision_function(np.zeros((1, 3)))


def test_the_regression_matches_scikit_learn_on_the_same_objective() -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = blobs()
    ours = SoftmaxRegression(C=0.5, tol=1e-8).fit(x, y)
    theirs = LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(x, y)
    assert np.allclose(ours.coef_, theirs.coef_, atol=1e-3)


def test_sparse_and_dense_features_give_the_same_model() -> None:
    x, y = blobs()
    dense = SoftmaxRegression(tol=1e-8).fit(x, y)
    hashed = sparse.hstack([sparse.csr_matrix((len(y), 1000)), sparse.csr_matrix(x)]).tocsr()
    sparse_fit = SoftmaxRegression(tol=1e-8).fit(hashed, y)
    assert np.allclose(sparse_fit.coef_[:, 1000:], dense.coef_, atol=1e-4)
    assert not sparse_fit.coef_[:, :1000].any()  # columns no example uses stay at zero


def test_weighting_examples_moves_the_boundary_towards_the_lighter_class() -> None:
    x, y = blobs()
    probe = np.array([[1.0, 1.0, 0.0]])  # halfway between a and b
    plain = SoftmaxRegression().fit(x, y).decision_function(probe)[0]
    weights = np.where(np.array(y) == "a", 5.0, 1.0)
    heavy = SoftmaxRegression().fit(x, y, sample_weight=weights).decision_function(probe)[0]
    assert heavy[0] - heavy[1] > plain[0] - plain[1]


def test_a_warm_start_reaches_the_same_model_in_fewer_steps_and_drops_retired_classes() -> None:
    x, y = blobs()
    cold = SoftmaxRegression(tol=1e-7).fit(x, y)
    more_x, more_y = blobs(seed=1, n=5)
    full_x, full_y = np.vstack([x, more_x]), y + more_y
    again = SoftmaxRegression(tol=1e-7).fit(full_x, full_y)
    warm = SoftmaxRegression(tol=1e-7, warm_start=True)
    warm.classes_, warm.coef_, warm.intercept_ = cold.classes_, cold.coef_, cold.intercept_
    warm.fit(full_x, full_y)
    assert np.allclose(warm.coef_, again.coef_, atol=1e-3)
    assert warm.n_iter_ < again.n_iter_
    # a class that is gone is gone, a new one starts from zero
    keep = [i for i, label in enumerate(full_y) if label != "c"]
    warm.fit(full_x[keep], [full_y[i] for i in keep], classes=["a", "b", "d"])
    assert warm.classes_ == ["a", "b", "d"] and np.abs(warm.coef_[2]).max() < 1e-3


def test_offsets_carry_a_prior_for_a_class_without_examples() -> None:
    x, y = blobs()
    model = SoftmaxRegression().fit(x, y)
    model.add_classes(["d"], 3)
    prior = np.zeros((1, 4))
    prior[0, 3] = 20.0
    assert model.decision_function(np.zeros((1, 3)), offsets=prior).argmax() == 3


def test_the_users_documents_weigh_more_than_the_starter_corpus() -> None:
    weights = example_weights(["starter"] * 8 + ["feedback", "import"])
    assert weights.mean() == pytest.approx(1.0)
    assert weights[-1] / weights[0] == pytest.approx(5.0)


def test_balancing_lifts_a_young_industry_but_no_more_than_five_times() -> None:
    data = TrainingSet(
        texts=["t"] * 23,
        labels=["a"] * 10 + ["b"] * 10 + ["new"] * 2 + ["tiny"],
        weights=np.ones(23),
        groups=[str(i) for i in range(23)],
        embeddings=np.zeros((23, 3)),
        static=np.zeros((23, 3)),
    )
    weights = balanced(data).weights
    # Then two examples weigh as much as ten, one example is lifted at most five times
    assert weights[20:22].sum() == pytest.approx(weights[:10].sum())
    assert weights[22] == pytest.approx(5.0 * weights[20] / (23 / 4 / 2))
    assert weights.mean() == pytest.approx(1.0)


def test_files_named_alike_share_a_group() -> None:
    assert origin_group("other/sports-match-report-03.txt", "x") == "other/sports-match-report"
    assert origin_group("doctypes/invoice/acme_invoice_12.pdf", "x") == "doctypes/invoice/acme_invoice"
    assert origin_group(None, "feedback:7") == "feedback:7"


def test_folds_hold_out_whole_groups_when_a_label_has_enough_of_them() -> None:
    # Given a label written in ten genres of three documents, and a label from one source only
    targets = np.array([0] * 30 + [1] * 30)
    groups = [f"genre{i // 3}" for i in range(30)] + ["one-source"] * 30
    splits = _splits(targets, groups, folds=5, seed=0)
    for train, test in splits:
        # Then no genre is on both sides, yet every fold still trains on the one-source label
        assert not {groups[i] for i in train if i < 30} & {groups[i] for i in test if i < 30}
        assert any(targets[i] == 1 for i in train)


def test_a_catch_all_sentence_about_a_newcomer_is_set_aside() -> None:
    own = np.array([[1.0, 0, 0], [0, 1.0, 0], [0.6, 0.8, 0]])  # the third sits between the first two
    theirs = np.array([[0, 0.3, 0.954]])  # close to nothing of ours
    assert sentences_not_about(own, theirs).all()
    theirs = np.array([[0.99, 0.14, 0]])  # almost our first sentence
    assert sentences_not_about(own, theirs).tolist() == [False, True, True]


def test_carving_moves_only_starter_catch_all_examples_that_the_newcomer_describes() -> None:
    # 2-d toy vectors: x = sport, y = hobbies. The catch-all describes both; "sports" describes sport.
    sport, hobby = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    documents = np.array([sport, hobby, sport, sport])
    catch_all = np.array([[0.98, 0.2], [0.0, 1.0]])
    catch_all /= np.linalg.norm(catch_all, axis=1, keepdims=True)
    sentences = {"other": (catch_all, catch_all), "sports": (np.array([sport]), np.array([sport]))}
    labels = ["other", "other", "other", "finance"]
    carvable = [True, True, False, True]  # the third is a person's label
    carver = Carver.measured(sentences, (documents, documents), catch_all="other", newcomers=["sports"])
    carved = carve_out(labels, carvable, (documents, documents), carver)
    assert carved == ["sports", "other", "other", "finance"]
    # Without a catch-all nothing is carved
    without = Carver.measured(sentences, (documents, documents), catch_all=None, newcomers=["sports"])
    assert carve_out(labels, carvable, (documents, documents), without) == labels
    assert carve_out(labels, carvable, (documents, documents), None) == labels


def test_a_generic_catch_all_sentence_does_not_outbid_the_newcomer() -> None:
    # 3-d toy vectors: x = sport, y = hobbies, z = what every document has in common. The catch-all's
    # first sentence is generic ("Documents that belong to none of the other industries …"): raw, it
    # is the closest sentence to every document, the sports report included.
    def unit(rows: list[list[float]]) -> np.ndarray:
        vectors = np.array(rows)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    documents = unit([[0.6, 0, 0.8], [0, 0.6, 0.8], [0.05, 0.5, 0.8], [0.1, 0.1, 0.9]])
    catch_all = unit([[0.1, 0.1, 0.99], [0, 1, 0.3]])
    sports = unit([[1, 0, 0.3]])
    assert (documents[0] @ catch_all.T).max() > (documents[0] @ sports.T).max()
    sentences = {"other": (catch_all, catch_all), "sports": (sports, sports)}
    labels = ["other", "other", "other", "other"]
    carver = Carver.measured(sentences, (documents, documents), catch_all="other", newcomers=["sports"])
    carved = carve_out(labels, [True] * 4, (documents, documents), carver)
    # Counted above each sentence's usual similarity, the sports report moves and nothing else does
    assert carved == ["sports", "other", "other", "other"]


def _sports_and_cooking_rule() -> Carver:
    """The rule measured when "sports" and "cooking" were carved out of "other" (3-d toy vectors:
    x = sport, y = cooking, z = hobbies)."""
    eye = np.eye(3)
    sentences = {"other": (eye, eye), "sports": (eye[:1], eye[:1]), "cooking": (eye[1:2], eye[1:2])}
    reference = np.array([[0.6, 0.6, 0.5], [0.5, 0.6, 0.6], [0.6, 0.5, 0.6]])
    carver = Carver.measured(
        sentences, (reference, reference), catch_all="other", newcomers=["sports", "cooking"]
    )
    assert carver is not None
    return carver


def test_a_saved_model_keeps_carvings_rule_for_incoming_documents() -> None:
    # Given the rule measured when "sports" and "cooking" were carved out of "other" (3-d toy
    # vectors: x = sport, y = cooking, z = hobbies)
    carver = _sports_and_cooking_rule()
    incoming = np.array([[0.9, 0.1, 0.4], [0.1, 0.9, 0.4], [0.1, 0.1, 1.0]])
    # Then, saved and read back, it gives each incoming document the same claim: the sports
    # report to sports, the recipe to cooking, the hobby post to no newcomer
    again = Carver.from_bytes(carver.to_bytes())
    assert (
        again.claims((incoming, incoming))
        == carver.claims((incoming, incoming))
        == [
            "sports",
            "cooking",
            None,
        ]
    )
    # And only the newcomers still being learned may claim
    assert again.claims((incoming, incoming), among=["cooking"]) == [None, "cooking", None]


def test_a_newcomer_takes_from_an_established_industry_only_what_reads_like_its_description() -> None:
    # 3-d toy vectors: x = central banking, y = company filings, z = stock markets. "finance"
    # describes all three; "monetary policy", added since, describes central banking.
    eye = np.eye(3)
    sentences = {"finance": (eye, eye), "monetary_policy": (eye[:1], eye[:1])}
    reference = np.array([[0.5, 0.6, 0.6], [0.6, 0.5, 0.6], [0.6, 0.6, 0.5]])
    carver = Carver.measured(
        sentences, (reference, reference), catch_all="other", newcomers=["monetary_policy"]
    )
    assert carver is not None
    speech, filing = np.array([0.95, 0.2, 0.24]), np.array([0.45, 0.85, 0.3])
    documents = np.array([speech, filing, filing])
    # When the model would give all three to the newcomer: the central banker's speech, and a
    # company filing that mentions interest rates, first from finance, then from an industry with
    # no description (nothing to weigh the newcomer against)
    holds = carver.holds((documents, documents), "monetary_policy", ["finance", "finance", "invoices"])
    # Then the newcomer takes the speech, not the filing finance had
    assert holds.tolist() == [True, False, True]
    # And a newcomer known by its name alone (imported, or given only examples) is never held back:
    # a word is too little to overrule what its examples taught
    named = Carver.measured(
        sentences,
        (reference, reference),
        catch_all="other",
        newcomers=["monetary_policy"],
        named_only=["monetary_policy"],
    )
    assert named is not None
    assert named.holds((documents, documents), "monetary_policy", ["finance"] * 3).all()
    # And the rule saved with a model says the same
    again = Carver.from_bytes(carver.to_bytes())
    assert again is not None
    assert again.holds(
        (documents, documents), "monetary_policy", ["finance", "finance", "invoices"]
    ).tolist() == [
        True,
        False,
        True,
    ]


def test_a_newcomer_carves_what_reads_like_it_out_of_an_industry_that_described_its_kind() -> None:
    # 4-d toy vectors: x = music, y = film, z = games, w = money. "entertainment" describes music,
    # film and games; "finance" describes money; "music", added since, describes music.
    eye = np.eye(4)
    sentences = {
        "other": (eye[3:] * 0 + 0.5, eye[3:] * 0 + 0.5),
        "entertainment": (eye[:3], eye[:3]),
        "finance": (eye[3:], eye[3:]),
        "music": (eye[:1], eye[:1]),
    }
    reference = np.full((4, 4), 0.5)
    carver = Carver.measured(sentences, (reference, reference), catch_all="other", newcomers=["music"])
    assert carver is not None
    # Then entertainment, whose description named music reviews, is music's parent; finance is not
    assert carver.parents("music") == ("entertainment",)
    # And another newcomer is never a parent, even one whose description names music
    both = Carver.measured(
        {**sentences, "film": (eye[:2], eye[:2])},
        (reference, reference),
        catch_all="other",
        newcomers=["music", "film"],
    )
    assert both is not None and both.parents("music") == ("entertainment",)
    review = np.array([0.9, 0.3, 0.1, 0.3])
    film = np.array([0.3, 0.9, 0.1, 0.3])
    documents = np.array([review, film, review])
    verdicts = [
        Verdict(label=label, confidence=0.8, scores={label: 0.8, "music": 0.0}, tier="transformer")
        for label in ("entertainment", "entertainment", "finance")
    ]

    class Vectors:
        def embed(self, texts: list[str]) -> np.ndarray:
            return documents[[int(text) for text in texts]]

        static = embed

    # When the documents a model filed under entertainment and finance are served while music is
    # being learned
    served = _carve(carver, ["0", "1", "2"], list(verdicts), Vectors(), {"music"})
    # Then the album review filed under entertainment goes to music, with entertainment's
    # confidence, for a person to confirm; the film review stays; nothing is taken from finance,
    # whose description never named music (the same review filed there stays)
    assert [v.label for v in served] == ["music", "entertainment", "finance"]
    assert served[0].confidence == 0.8 and served[0].scores["music"] == 0.8
    assert served[0].needs_review and served[0].review_reasons == (NEW_INDUSTRY_CARVED,)
    assert not served[1].needs_review and not served[2].needs_review
    # And a music known by its name alone has no parents: it carves the catch-all only
    named = Carver.measured(
        sentences, (reference, reference), catch_all="other", newcomers=["music"], named_only=["music"]
    )
    assert named is not None and named.parents("music") == ()
    # And the rule saved with a model says the same
    again = Carver.from_bytes(carver.to_bytes())
    assert again.parents("music") == ("entertainment",)
    assert again.takes((documents, documents), ["entertainment"] * 2 + ["finance"]) == ["music", None, None]


def test_a_newcomers_first_examples_let_it_take_documents_that_read_like_them() -> None:
    # 4-d toy vectors: x = clinical notes, y = lab reports, z = case reports, w = what documents share.
    # The newcomer's description ("clinical case reports") reads like healthcare in general; its
    # first example is a case report.
    def unit(rows: list[list[float]]) -> np.ndarray:
        vectors = np.array(rows)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    healthcare = unit([[1, 0.4, 0, 0.5], [0.4, 1, 0, 0.5]])
    cases = unit([[0.6, 0.5, 0, 0.6]])
    sentences = {"healthcare": (healthcare, healthcare), "clinical_cases": (cases, cases)}
    reference = unit([[0.5, 0.5, 0.1, 1], [0.6, 0.3, 0.1, 1], [0.3, 0.6, 0.1, 1]])
    example = unit([[0.3, 0, 1, 0.3]])
    documents = unit([[0.35, 0.05, 0.95, 0.3], [1, 0.3, 0.05, 0.4]])  # a case report, a clinical note

    def rule(**examples: tuple[np.ndarray, np.ndarray]) -> Carver:
        carver = Carver.measured(
            sentences,
            (reference, reference),
            catch_all="other",
            newcomers=["clinical_cases"],
            examples=examples,
        )
        assert carver is not None
        return carver

    # Known by its description alone, it may take neither from healthcare
    assert rule().holds((documents, documents), "clinical_cases", ["healthcare"] * 2).tolist() == [
        False,
        False,
    ]
    # Given a first example, it takes the case report that reads like it, not the clinical note
    given = rule(clinical_cases=(example, example))
    assert given.holds((documents, documents), "clinical_cases", ["healthcare"] * 2).tolist() == [True, False]
    # And the rule saved with a model keeps its examples
    again = Carver.from_bytes(given.to_bytes())
    assert again.holds((documents, documents), "clinical_cases", ["healthcare"] * 2).tolist() == [True, False]


def test_a_rule_saved_as_an_earlier_heron_saved_it_still_claims_the_same() -> None:
    # Given the rule for "sports" and "cooking" carved out of "other", saved, and the same bytes as
    # an earlier Heron wrote them: only the catch-all's sentences, one subset per newcomer
    carver = _sports_and_cooking_rule()
    blob = carver.to_bytes()
    size = int.from_bytes(blob[:4], "big")
    meta = json.loads(blob[4 : 4 + size])
    with np.load(io.BytesIO(blob[4 + size :])) as stored:
        legacy = {key: stored[key] for key in stored.files if key[0].isdigit()}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **legacy)
    encoded = json.dumps({"catch_all": meta["catch_all"], "newcomers": meta["newcomers"]}).encode()
    earlier = len(encoded).to_bytes(4, "big") + encoded + buffer.getvalue()
    # When either is read back, then incoming documents get the same claims (so a worker not yet
    # upgraded, which reads only the earlier keys, answers as this one does, and a model trained by
    # an earlier Heron keeps its rule)
    incoming = np.array([[0.9, 0.1, 0.4], [0.1, 0.9, 0.4], [0.1, 0.1, 1.0]])
    expected = ["sports", "cooking", None]
    assert Carver.from_bytes(blob).claims((incoming, incoming)) == expected
    assert Carver.from_bytes(earlier).claims((incoming, incoming)) == expected
    # And the same rule as the earlier Heron itself wrote it (Carver.to_bytes at bb89b96) reads the same
    written = (Path(__file__).parent / "data" / "carver-bb89b96.bin").read_bytes()
    assert Carver.from_bytes(written).claims((incoming, incoming)) == expected


def test_description_sentences_leave_out_the_whole() -> None:
    assert description_sentences("Match reports and results. News about clubs and players.") == [
        "Match reports and results.",
        "News about clubs and players.",
    ]
    assert description_sentences("real estate") == ["real estate"]


def test_example_ids_are_stored_as_runs() -> None:
    ids = [1, 2, 3, 7, 8, 10]
    assert id_ranges(ids) == [[1, 3], [7, 8], [10, 10]]
    assert expand_ranges(id_ranges(ids)) == ids


def report(n: int, accuracy: float, macro_f1: float, classes: int = 3) -> dict:
    return {
        "n": n,
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "per_class": {str(i): {} for i in range(classes)},
    }


def test_gold_decides_once_there_is_enough_of_it() -> None:
    # Given 40 gold documents: the candidate gets 3 more right, and is 4 points worse on the starter holdout
    decision = promotion_decision(
        candidate={"gold": report(40, 0.95, 0.95), "starter_holdout": report(104, 0.93, 0.93)},
        active={"gold": report(40, 0.875, 0.87), "starter_holdout": report(104, 0.97, 0.97)},
    )
    # Then it is promoted (the starter holdout only guards against a collapse) and the report says why
    assert decision["activated"], decision
    assert (
        decision["rule"].startswith("gold decides")
        and "gold: 2 of 40 wrong vs active 5" in decision["reason"]
    )


def test_a_collapse_on_the_starter_holdout_is_refused_whatever_gold_says() -> None:
    decision = promotion_decision(
        candidate={"gold": report(40, 0.95, 0.95), "starter_holdout": report(104, 0.80, 0.80)},
        active={"gold": report(40, 0.90, 0.90), "starter_holdout": report(104, 0.97, 0.97)},
    )
    assert not decision["activated"] and "worse than active" in decision["reason"]


def test_a_candidate_that_gets_more_gold_documents_wrong_is_refused() -> None:
    decision = promotion_decision(
        candidate={"gold": report(30, 0.8, 0.8), "starter_holdout": report(104, 0.97, 0.97)},
        active={"gold": report(30, 0.9, 0.9), "starter_holdout": report(104, 0.97, 0.97)},
    )
    assert not decision["activated"] and "gold: 6 of 30 wrong vs active 3" in decision["reason"]


def test_one_gold_document_cannot_block_learning() -> None:
    decision = promotion_decision(
        candidate={"gold": report(6, 5 / 6, 0.8), "starter_holdout": report(104, 0.96, 0.96)},
        active={"gold": report(6, 1.0, 1.0), "starter_holdout": report(104, 0.97, 0.97)},
    )
    assert decision["activated"], decision
    assert decision["rule"].startswith("starter holdout and gold")


def test_a_document_carving_moves_is_not_also_said_to_keep_its_earlier_answer() -> None:
    from types import SimpleNamespace

    import numpy as np

    from core.classify.model import Verdict, _carve

    # Given a document "sports" leaned towards but was unsure of, so it kept "other" (its answer
    # before sports came) and was queued as new_industry_unsure ...
    kept = Verdict(
        label="other",
        confidence=0.92,
        scores={"other": 0.92, "sports": 0.05, "finance": 0.03},
        tier="transformer",
        escalated=True,
        needs_review=True,
        review_reasons=("new_industry_unsure",),
    )
    # ... and carving's rule, which says sports claims it
    carver = SimpleNamespace(
        newcomers=["sports"],
        catch_all="other",
        parents=lambda label: [],
        takes=lambda vectors, answers, among: ["sports"],
    )
    encoder = SimpleNamespace(
        embed=lambda texts: np.zeros((len(texts), 2)), static=lambda texts: np.zeros((len(texts), 2))
    )
    # When carving moves it
    [moved] = _carve(carver, ["A match report."], [kept], encoder, {"sports"})
    # Then it is sports, queued to be confirmed as carved, and no reason says it kept "other"
    assert moved.label == "sports" and moved.review_reasons == ("new_industry_carved",), moved
