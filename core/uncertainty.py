"""How unsure a prediction is, three ways: the review queue is ordered by one of them."""

from __future__ import annotations

import math
from collections.abc import Mapping

from core.errors import Invalid

STRATEGIES = ("least_confidence", "margin", "entropy")


def uncertainty(scores: Mapping[str, float], strategy: str) -> float:
    """Higher means less sure. least_confidence: 1 − top; margin: 1 − (top − second); entropy."""
    ranked = sorted(scores.values(), reverse=True) or [0.0]
    if strategy == "least_confidence":
        return 1.0 - ranked[0]
    if strategy == "margin":
        return 1.0 - (ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0))
    if strategy == "entropy":
        return -sum(p * math.log(p) for p in ranked if p > 0)
    raise Invalid(f"Unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}.")
