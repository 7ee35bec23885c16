"""Fitting the hybrid model: both tiers, calibrated on out-of-fold predictions of the training data.

The holdout is never touched here: temperatures (and the out-of-fold scores used to choose routing
thresholds) come from cross-validation on the training examples alone.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from core.classify.calibration import fit_temperature
from core.classify.linear import LinearTextClassifier
from core.classify.model import HeronModel, SemanticTier, aligned_logits
from core.classify.softmax import SoftmaxRegression

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
SEMANTIC_L2 = 1e-2
PRIOR_WEIGHT = 10.0
REFERENCE_SIZE = 256
YOUNG_CLASS_EXAMPLES = 20


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


@dataclass
class FitResult:
    model: HeronModel
    labels: list[str]
    targets: np.ndarray
    oof_fast: np.ndarray
    oof_semantic: np.ndarray


def fit_hybrid(
    texts: Sequence[str],
    labels: Sequence[str],
    embeddings: np.ndarray,
    prototypes: Mapping[str, np.ndarray],
    *,
    industries: Sequence[str],
    folds: int = 5,
    seed: int = 0,
) -> FitResult:
    """Fit the fast and transformer tiers on labelled texts (and their embeddings).

    Args:
        texts, labels, embeddings: the training examples, aligned.
        prototypes: description-prototype embeddings per industry.
        industries: every active industry, in display order; those without examples are
            predicted from their prototypes alone.
    """
    counts = Counter(labels)
    learned = [label for label in industries if counts[label]]
    if not learned:
        raise ValueError("No training example belongs to an active industry.")
    targets = np.array([learned.index(label) for label in labels])
    oof_fast = np.zeros((len(texts), len(learned)))
    oof_semantic = np.zeros((len(texts), len(learned)))
    splits = _splits(targets, folds, seed)
    for train, test in splits:
        fold_labels = [labels[i] for i in train]
        fast = LinearTextClassifier().fit([texts[i] for i in train], fold_labels)
        oof_fast[test] = aligned_logits(
            fast.decision_function([texts[i] for i in test]), fast.classes_, learned, missing=-30.0
        )
        semantic = _semantic(embeddings[train], fold_labels, learned, prototypes)
        oof_semantic[test] = aligned_logits(
            semantic.logits(embeddings[test]), semantic.labels, learned, missing=-30.0
        )
    fast = LinearTextClassifier().fit(list(texts), list(labels))
    semantic = _semantic(embeddings, list(labels), learned, prototypes)
    model = HeronModel(fast=fast, semantic=semantic, young_labels=young_labels(counts))
    if splits:  # too few examples to cross-validate: leave the temperatures at 1
        semantic.temperature = fit_temperature(oof_semantic, targets)
        model.fast_temperature = fit_temperature(oof_fast, targets)
    unseen = {label: prototypes[label] for label in industries if not counts[label] and label in prototypes}
    model = model.with_prototypes(unseen)
    return FitResult(
        model=model, labels=learned, targets=targets, oof_fast=oof_fast, oof_semantic=oof_semantic
    )


def young_labels(counts: Mapping[str, int]) -> tuple[str, ...]:
    """Labels with fewer than YOUNG_CLASS_EXAMPLES training examples."""
    return tuple(sorted(label for label, n in counts.items() if n < YOUNG_CLASS_EXAMPLES))


def _semantic(
    embeddings: np.ndarray, labels: list[str], learned: list[str], prototypes: Mapping[str, np.ndarray]
) -> SemanticTier:
    present = [label for label in learned if label in set(labels)]
    sample = np.random.default_rng(0).permutation(len(embeddings))[:REFERENCE_SIZE]
    tier = SemanticTier(
        regression=SoftmaxRegression(l2=SEMANTIC_L2),
        prototypes={label: prototypes[label] for label in present if label in prototypes},
        reference=np.asarray(embeddings[np.sort(sample)], dtype=np.float32),
        prior_weight=PRIOR_WEIGHT,
    )
    tier.regression.fit(embeddings, labels, classes=present, offsets=tier.prior(embeddings, present))
    return tier


def _splits(targets: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    smallest = min(Counter(targets.tolist()).values())
    if len(targets) < 2 * folds:
        return []
    if smallest >= folds:
        return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(targets, targets))
    return list(KFold(folds, shuffle=True, random_state=seed).split(targets))
