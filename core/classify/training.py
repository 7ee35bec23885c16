"""Fitting the hybrid model: both tiers, calibrated on out-of-fold predictions of the training data.

The holdout is never touched here. Temperatures come from cross-validation on the training examples
alone, with folds that hold out whole groups (a genre of the starter corpus, one source's files), so
they are fitted on predictions for documents unlike the ones trained on, which is what production
mostly sees. Each example carries a weight: the user's own documents count more than the starter
corpus (see core.services.training), so the more a user labels, the more their documents decide.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

import numpy as np
from scipy import sparse

from core.classify.calibration import COMBINED_CENTRE, fit_temperature, softmax
from core.classify.carving import Carver
from core.classify.model import (
    HASHED_FEATURES,
    Calibration,
    FastTier,
    HeronModel,
    SemanticTier,
    aligned_logits,
)
from core.classify.softmax import SoftmaxRegression

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SERIAL = re.compile(r"[\W\d_]+$")
FAST_C = 30.0
SEMANTIC_C = 1.0
STATIC_SCALE = 2.0
PRIOR_WEIGHT = 10.0
PRIOR_EXAMPLES = 10
REFERENCE_SIZE = 256
YOUNG_CLASS_EXAMPLES = 20
MISSING_LOGIT = -30.0
MIN_DOCUMENTS = 2
MAX_CLASS_WEIGHT = 5.0
# The fast tier answering alone is never made sharper than its own regression. Held-out genres of
# a tidy training set (our starter corpus) say it could be: it is rarely wrong on them. On real
# documents it is: on industry-real-dev, sharpened (T = 0.65) it answered 226 documents with
# ≥ 0.95 and 6 of them wrongly (2.7%). Inside the combination the fitted temperature still weighs
# it (there, sharpening it is what carries a template-text import over to photographs).
MIN_FAST_TEMPERATURE = 1.0
# Below this many of the people's own examples, their out-of-fold confidences set no escalation floor.
MIN_PEOPLE_EXAMPLES = 20


def prototype_sentences(description: str) -> list[str]:
    """A description's sentences, each a prototype of the industry (plus the whole description).

    Several short prototypes ("A court judgment …", "A contract with numbered clauses …") match the
    many genres of one industry better than one averaged paragraph.
    """
    description = " ".join(description.split())
    if not description:
        return []
    sentences = [s for s in _SENTENCE_END.split(description) if len(s.split()) >= 3]
    return list(dict.fromkeys([*sentences, description]))


def description_sentences(description: str) -> list[str]:
    """A description's sentences alone (without the whole, which mentions everything at once)."""
    description = " ".join(description.split())
    return [s for s in _SENTENCE_END.split(description) if len(s.split()) >= 3] or (
        [description] if description else []
    )


def origin_group(origin: str | None, fallback: str) -> str:
    """Which documents come from the same place: files named alike (``clinical-note-03.txt``,
    ``acme_invoice_12.pdf``) share a group — their name without its serial number and extension."""
    if not origin:
        return fallback
    path = PurePosixPath(origin)
    stem = _SERIAL.sub("", path.stem)
    return f"{path.parent}/{stem}" if stem else fallback


@dataclass(frozen=True)
class TrainingSet:
    """Labelled examples, aligned: text, label, weight, group, transformer and static vectors."""

    texts: list[str]
    labels: list[str]
    weights: np.ndarray
    groups: list[str]
    embeddings: np.ndarray
    static: np.ndarray
    # Which examples are the people's own (corrections, imported and example files); None: none.
    people: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, rows: np.ndarray) -> TrainingSet:
        return TrainingSet(
            texts=[self.texts[i] for i in rows],
            labels=[self.labels[i] for i in rows],
            weights=self.weights[rows],
            groups=[self.groups[i] for i in rows],
            embeddings=self.embeddings[rows],
            static=self.static[rows],
            people=None if self.people is None else self.people[rows],
        )


@dataclass
class FitResult:
    """The fitted model and its out-of-fold logits (over the industries with examples, in order)."""

    model: HeronModel
    targets: np.ndarray
    oof_fast: np.ndarray
    oof_semantic: np.ndarray
    learned: list[str] = field(default_factory=list)  # the columns of the out-of-fold logits
    # Rows whose out-of-fold logits mean something: their label was in their fold's training data
    # (none when nothing was cross-validated).
    judged: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def fit_hybrid(
    data: TrainingSet,
    prototypes: Mapping[str, np.ndarray],
    *,
    industries: Sequence[str],
    parent: HeronModel | None = None,
    calibrate: bool = True,
    catch_all: str | None = None,
    descriptions: Mapping[str, str] | None = None,
    folds: int = 5,
    seed: int = 0,
) -> FitResult:
    """Fit the fast and transformer tiers on ``data`` and calibrate them.

    Args:
        data: the training examples.
        prototypes: description-prototype embeddings per industry.
        industries: every active industry, in display order; those without examples are
            predicted from their prototypes alone.
        parent: the active model, whose weights the fit starts from (same optimum, fewer steps).
        catch_all: the industry that holds what no other claims, if any.
        descriptions: each industry's description (how much its prior counts depends on it).
        calibrate: fit the temperatures on grouped out-of-fold predictions (five more fits);
            without it the parent's temperatures are kept (an incremental update, in a second).
    """
    counts = Counter(data.labels)
    learned = [label for label in industries if counts[label]]
    if not learned:
        raise ValueError("No training example belongs to an active industry.")
    data = balanced(data)
    targets = np.array([learned.index(label) for label in data.labels])
    features = FastTier.features(data.texts, data.static, STATIC_SCALE)
    oof_fast = np.zeros((len(data), len(learned)))
    oof_semantic = np.zeros((len(data), len(learned)))
    # Held-out examples whose label the fold's model knew. An example whose fold kept no other of
    # its label (a label with one example, or a handful held out as gold) is out of reach there:
    # it says nothing about how sure the tiers should be, nor about its label. Counted, one such
    # example took an import's transformer temperature to 19 and every answer to about 0.25.
    judged = np.ones(len(data), dtype=bool)
    splits = _splits(targets, data.groups, folds, seed) if calibrate or parent is None else []
    for train, test in splits:
        judged[test] &= np.isin(targets[test], targets[train])
        fold = data.subset(train)
        fast = _fit_fast(features[train], fold)
        oof_fast[test] = aligned_logits(
            fast.logits(features[test]), fast.labels, learned, missing=MISSING_LOGIT
        )
        semantic = _fit_semantic(fold, learned, prototypes, descriptions=descriptions)
        oof_semantic[test] = aligned_logits(
            semantic.logits(data.embeddings[test]), semantic.labels, learned, missing=MISSING_LOGIT
        )
    fast = _fit_fast(features, data, parent.fast.regression if parent else None)
    semantic = _fit_semantic(
        data, learned, prototypes, parent.semantic.regression if parent else None, descriptions
    )
    calibration = parent.calibration if parent is not None and not calibrate else Calibration()
    if splits and judged.any():  # too few examples to cross-validate: leave the temperatures at 1
        fast_t = fit_temperature(oof_fast[judged], targets[judged], data.weights[judged])
        semantic_t = fit_temperature(oof_semantic[judged], targets[judged], data.weights[judged])
        combined_t = fit_temperature(
            oof_fast[judged] / fast_t + oof_semantic[judged] / semantic_t,
            targets[judged],
            data.weights[judged],
            centre=COMBINED_CENTRE,
        )
        fast_alone = max(MIN_FAST_TEMPERATURE, fast_t)
        calibration = Calibration(
            fast=fast_t,
            semantic=semantic_t,
            combined=combined_t,
            fast_alone=fast_alone,
            people=people_confidence(
                oof_fast[judged] / fast_alone, None if data.people is None else data.people[judged]
            ),
        )
    model = HeronModel(
        fast=fast,
        semantic=semantic,
        calibration=calibration,
        young_labels=young_labels(counts),
        catch_all=catch_all,
    )
    unseen = {label: prototypes[label] for label in industries if not counts[label] and label in prototypes}
    model = model.with_prototypes(unseen)
    return FitResult(
        model=model,
        targets=targets,
        oof_fast=oof_fast,
        oof_semantic=oof_semantic,
        learned=learned,
        judged=judged if splits else np.zeros(len(data), dtype=bool),
    )


def people_confidence(logits: np.ndarray, people: np.ndarray | None) -> tuple[float, ...]:
    """Percentiles 0..100 of the top probability of ``logits`` over the people's examples (see
    Calibration.people); empty when they are fewer than MIN_PEOPLE_EXAMPLES."""
    if people is None or int(people.sum()) < MIN_PEOPLE_EXAMPLES:
        return ()
    confidence = softmax(logits[people]).max(axis=1)
    return tuple(round(float(q), 6) for q in np.percentile(confidence, np.arange(101)))


def balanced(data: TrainingSet) -> TrainingSet:
    """The same examples, weighted so that every industry weighs the same in the fit however many
    examples it has (scikit-learn's ``class_weight="balanced"``, on top of the examples' own
    weights; no example is lifted more than MAX_CLASS_WEIGHT times): a young industry with a handful
    of examples is not drowned by the seventy of each established one. The starter corpus is
    balanced already, so this changes nothing until an industry is young or a user's data uneven."""
    labels = np.array(data.labels)
    totals = {label: data.weights[labels == label].sum() for label in set(data.labels)}
    mean = data.weights.sum() / len(totals)
    factor = np.array([min(mean / totals[label], MAX_CLASS_WEIGHT) for label in data.labels])
    weights = data.weights * factor
    return replace(data, weights=weights * len(weights) / weights.sum())


def prior_weights(counts: Mapping[str, int], descriptions: Mapping[str, str]) -> dict[str, float]:
    """How much each industry's description counts once it has examples.

    A description is worth as many examples as it has words, between 2 and PRIOR_EXAMPLES:
    a paragraph about an industry is a strong guess, a label name ("bank statement", what an
    import knows) a weak one. Its weight is PRIOR_WEIGHT with no example and fades as examples
    arrive, to half when they are as many as it is worth (what a Bayesian prior does).
    """
    weights = {}
    for label, n in counts.items():
        worth = float(np.clip(len(descriptions.get(label, "").split()), 2, PRIOR_EXAMPLES))
        weights[label] = PRIOR_WEIGHT * worth / (worth + n)
    return weights


def newcomers(labels: Sequence[str], industries: Sequence[str]) -> list[str]:
    """Industries still being learned: fewer than YOUNG_CLASS_EXAMPLES examples (none at all for
    one known only by its description)."""
    counts = Counter(labels)
    return [industry for industry in industries if counts[industry] < YOUNG_CLASS_EXAMPLES]


def fit_settled(
    data: TrainingSet,
    prototypes: Mapping[str, np.ndarray],
    *,
    industries: Sequence[str],
    learning: Sequence[str],
    parent: HeronModel | None = None,
    calibrate: bool = True,
    catch_all: str | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> HeronModel | None:
    """The model as it would be without the industries being learned (``learning``), for
    :attr:`HeronModel.settled`: the same examples minus theirs, with the labels they had before any
    carving, and the catch-all's whole description. None when there is nothing to settle (no
    industry is being learned, or every one is).

    ``parent`` is the active model; its own settled model, if it has one, is the warm start (and,
    without ``calibrate``, gives the temperatures), so that while a newcomer is young its
    established neighbours keep answering as they did before it came.
    """
    established = [label for label in industries if label not in set(learning)]
    keep = set(established)
    rows = np.array([i for i, label in enumerate(data.labels) if label in keep], dtype=int)
    if not learning or not established or not len(rows):
        return None
    base = parent.settled if parent is not None and parent.settled is not None else parent
    return fit_hybrid(
        data.subset(rows),
        {label: vectors for label, vectors in prototypes.items() if label in keep},
        industries=established,
        parent=base,
        calibrate=calibrate,
        catch_all=catch_all,
        descriptions=descriptions,
    ).model


def young_labels(counts: Mapping[str, int]) -> tuple[str, ...]:
    """Labels with fewer than YOUNG_CLASS_EXAMPLES training examples."""
    return tuple(sorted(label for label, n in counts.items() if n < YOUNG_CLASS_EXAMPLES))


def carve_out(
    labels: Sequence[str],
    carvable: Sequence[bool],
    documents: tuple[np.ndarray, np.ndarray],
    carver: Carver | None,
) -> list[str]:
    """Labels after new industries take back what the catch-all held for them.

    When "sports" is added, the starter's match reports filed under "other" would keep teaching
    the model that sport is "other". So an example that may be carved (``carvable``: our own starter
    documents, never a person's label) and is filed under the catch-all moves to the newcomer that
    claims it by carving's rule (:class:`core.classify.carving.Carver`).

    Args:
        documents: each example's transformer digest and static vector.
    """
    if carver is None:
        return list(labels)
    rows = [
        i
        for i, (label, ok) in enumerate(zip(labels, carvable, strict=True))
        if ok and label == carver.catch_all
    ]
    carved = list(labels)
    if not rows:
        return carved
    for row, claim in zip(rows, carver.claims((documents[0][rows], documents[1][rows])), strict=True):
        if claim is not None:
            carved[row] = claim
    return carved


def _fit_fast(features, data: TrainingSet, parent: SoftmaxRegression | None = None) -> FastTier:  # type: ignore[no-untyped-def]
    regression = _regression(FAST_C, parent)
    regression.fit(_frequent_words(features), data.labels, sample_weight=data.weights)
    return FastTier(regression=regression, static_scale=STATIC_SCALE)


def _frequent_words(features: sparse.csr_matrix) -> sparse.csr_matrix:
    """The features with words seen in fewer than MIN_DOCUMENTS training documents zeroed: a word
    one document used says nothing about the next (and half the vocabulary is such words, so the fit
    has half the weights to find). Static vectors are kept."""
    counts = np.bincount(features.indices, minlength=features.shape[1])
    keep = (counts >= MIN_DOCUMENTS) | (np.arange(features.shape[1]) >= HASHED_FEATURES)
    return features @ sparse.diags(keep.astype(np.float64))


def _fit_semantic(
    data: TrainingSet,
    learned: list[str],
    prototypes: Mapping[str, np.ndarray],
    parent: SoftmaxRegression | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> SemanticTier:
    present = [label for label in learned if label in set(data.labels)]
    sample = np.random.default_rng(0).permutation(len(data))[:REFERENCE_SIZE]
    tier = SemanticTier(
        regression=_regression(SEMANTIC_C, parent),
        prototypes={label: prototypes[label] for label in present if label in prototypes},
        reference=np.asarray(data.embeddings[np.sort(sample)], dtype=np.float32),
        prior_weight=PRIOR_WEIGHT,
        prior_weights=prior_weights(Counter(data.labels), descriptions or {}),
    )
    tier.regression.fit(
        data.embeddings,
        data.labels,
        classes=present,
        offsets=tier.prior(data.embeddings, present),
        sample_weight=data.weights,
    )
    return tier


def _regression(C: float, parent: SoftmaxRegression | None) -> SoftmaxRegression:
    regression = SoftmaxRegression(C=C, warm_start=parent is not None)
    if parent is not None:
        regression.classes_, regression.coef_, regression.intercept_ = (
            list(parent.classes_),
            parent.coef_,
            parent.intercept_,
        )
    return regression


def _splits(
    targets: np.ndarray, groups: Sequence[str], folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds that hold out whole groups wherever a label has enough of them.

    A label whose examples come from fewer than ``folds`` groups (one template, one source) could
    not be held out by group without leaving some fold with no example of it: its examples are
    split one by one instead.
    """
    if len(targets) < 2 * folds:
        return []
    by_label: dict[int, set[str]] = {}
    for target, group in zip(targets.tolist(), groups, strict=True):
        by_label.setdefault(target, set()).add(group)
    keys = [
        f"{target}:{group}" if len(by_label[target]) >= folds else f"{target}:#{i}"
        for i, (target, group) in enumerate(zip(targets.tolist(), groups, strict=True))
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has fewer members"
        from sklearn.model_selection import StratifiedGroupKFold  # see core.evaluation

        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(targets)), targets, keys))
