"""Label issues: training examples whose label the model, cross-validated, confidently doubts.

Confident learning (Northcutt et al., 2021; cleanlab's ``filter_by="confident_learning"``): each
class j gets a threshold t_j, the mean out-of-fold probability of j over the examples labelled j
(how sure the model usually is of a true j). An example labelled i is an issue when some other class
j reaches its threshold (p_j ≥ t_j) and, among the classes that do, j is the likeliest: the model
is as sure it is a j as it usually is of real j's. Issues are ranked by self-confidence, the
probability of the given label, lowest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelIssue:
    index: int
    given: int
    suggested: int
    self_confidence: float
    suggested_confidence: float


def find_label_issues(probabilities: np.ndarray, given: np.ndarray) -> list[LabelIssue]:
    """Issues among rows of out-of-fold ``probabilities`` whose labels are ``given`` (class indices)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    given = np.asarray(given)
    if not len(given):
        return []
    classes = probabilities.shape[1]
    thresholds = np.array(
        [probabilities[given == j, j].mean() if (given == j).any() else 1.0 for j in range(classes)]
    )
    reached = probabilities >= thresholds[None, :] - 1e-12
    masked = np.where(reached, probabilities, -1.0)
    confident = masked.argmax(axis=1)
    issues = [
        LabelIssue(
            index=int(i),
            given=int(given[i]),
            suggested=int(confident[i]),
            self_confidence=float(probabilities[i, given[i]]),
            suggested_confidence=float(probabilities[i, confident[i]]),
        )
        for i in np.flatnonzero(reached.any(axis=1) & (confident != given))
    ]
    return sorted(issues, key=lambda issue: (issue.self_confidence, issue.index))
