"""Evaluation metrics: true and predicted labels (and confidences) in, plain numbers out.

scikit-learn is imported inside the functions that use it, here and in the rest of ``core``: with the
pandas it pulls in it costs ~130 MB, and the API and console processes, which import these modules
but never train or score, would carry it for nothing (tests/unit/test_layering.py checks this).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

COVERAGE_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def evaluation_report(
    truth: Sequence[str],
    predicted: Sequence[str],
    confidences: Sequence[float],
    *,
    labels: Sequence[str],
    escalated: Sequence[bool] = (),
    needs_review: Sequence[bool] = (),
    bins: int = 10,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class P/R/F1, confusion matrix, calibration and coverage.

    Macro-F1 averages over the labels that occur in ``truth`` (a label the model offers but the
    set never contains does not drag the average down); truth labels the model does not know
    count as errors.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    if not truth:
        return {"n": 0}
    present = [label for label in labels if label in set(truth)] + sorted(set(truth) - set(labels))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=present, zero_division=0
    )
    matrix_labels = list(dict.fromkeys([*labels, *truth, *predicted]))
    correct = np.array([t == p for t, p in zip(truth, predicted, strict=True)])
    confidence = np.asarray(confidences, dtype=float)
    return {
        "n": len(truth),
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, labels=present, average="macro", zero_division=0)),
        "per_class": {
            label: {
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "support": int(s),
            }
            for label, p, r, f, s in zip(present, precision, recall, f1, support, strict=True)
        },
        "confusion": {
            "labels": matrix_labels,
            "matrix": confusion_matrix(truth, predicted, labels=matrix_labels).tolist(),
        },
        **calibration(correct, confidence, bins=bins),
        "accuracy_at_coverage": accuracy_at_coverage(correct, confidence),
        "escalation_rate": float(np.mean(escalated)) if len(escalated) else 0.0,
        "review_rate": float(np.mean(needs_review)) if len(needs_review) else 0.0,
    }


def calibration(correct: np.ndarray, confidence: np.ndarray, *, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error and the reliability curve (equal-width confidence bins)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    curve = []
    ece = 0.0
    for b in range(bins):
        members = which == b
        if not members.any():
            continue
        mean_confidence = float(confidence[members].mean())
        accuracy = float(correct[members].mean())
        ece += members.mean() * abs(mean_confidence - accuracy)
        curve.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "confidence": mean_confidence,
                "accuracy": accuracy,
                "count": int(members.sum()),
            }
        )
    return {"ece": float(ece), "reliability": curve}


def accuracy_at_coverage(correct: np.ndarray, confidence: np.ndarray) -> list[dict[str, float]]:
    """Accuracy on the most confident fraction of documents, for each coverage level."""
    order = np.argsort(-confidence, kind="stable")
    points = []
    for coverage in COVERAGE_LEVELS:
        keep = max(1, round(coverage * len(order)))
        points.append(
            {
                "coverage": coverage,
                "accuracy": float(correct[order[:keep]].mean()),
                "threshold": float(confidence[order[keep - 1]]),
            }
        )
    return points


def routing_curve(
    fast_probabilities: np.ndarray,
    transformer_probabilities: np.ndarray,
    targets: np.ndarray,
    thresholds: Sequence[float] = (0.0, 0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 1.01),
) -> list[dict[str, float]]:
    """Accuracy, macro-F1 and escalation rate of the two-tier routing at each escalation threshold.

    Computed on out-of-fold predictions of the training data, this is what the default
    ``escalation_threshold`` is chosen from (never from the holdout).
    """
    from sklearn.metrics import f1_score

    fast_top = fast_probabilities.max(axis=1)
    points = []
    for threshold in thresholds:
        escalate = fast_top < threshold
        final = np.where(
            escalate, transformer_probabilities.argmax(axis=1), fast_probabilities.argmax(axis=1)
        )
        points.append(
            {
                "threshold": float(threshold),
                "escalation_rate": float(escalate.mean()),
                "accuracy": float((final == targets).mean()),
                "macro_f1": float(f1_score(targets, final, average="macro")),
            }
        )
    return points
