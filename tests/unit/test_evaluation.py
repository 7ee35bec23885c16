from __future__ import annotations

import numpy as np
import pytest

from core.evaluation import calibration, evaluation_report


def test_report_counts_unknown_truth_labels_as_errors() -> None:
    report = evaluation_report(
        ["a", "a", "b", "c"], ["a", "b", "b", "a"], [0.9, 0.6, 0.8, 0.7], labels=["a", "b"]
    )
    assert report["n"] == 4
    assert report["accuracy"] == pytest.approx(0.5)
    assert report["per_class"]["c"]["recall"] == 0.0
    assert report["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["confusion"]["labels"][:3] == ["a", "b", "c"]


def test_perfectly_calibrated_confidences_have_zero_ece() -> None:
    correct = np.array([True] * 8 + [False] * 2)
    confidence = np.full(10, 0.8)
    assert calibration(correct, confidence)["ece"] == pytest.approx(0.0)
    overconfident = calibration(correct, np.full(10, 1.0))
    assert overconfident["ece"] == pytest.approx(0.2)
