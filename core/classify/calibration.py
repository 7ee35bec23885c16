"""Temperature scaling: one scalar per tier that makes its confidences mean what they say."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax; ``-inf`` marks a label that is not allowed, and a row with no allowed
    label at all gets zeros (no opinion) instead of NaN."""
    logits = np.asarray(logits, dtype=np.float64)
    top = logits.max(axis=1, keepdims=True) if logits.shape[1] else np.zeros((len(logits), 1))
    empty = ~np.isfinite(top)
    exp = np.exp(logits - np.where(empty, 0.0, top))
    total = exp.sum(axis=1, keepdims=True)
    return np.divide(exp, total, out=np.zeros_like(exp), where=total > 0)


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature minimising the log-loss of ``softmax(logits / T)`` on held-out predictions."""
    logits = np.asarray(logits, dtype=np.float64)
    rows = np.arange(len(targets))

    def negative_log_likelihood(log_temperature: float) -> float:
        scaled = logits / np.exp(log_temperature)
        shifted = scaled - scaled.max(axis=1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-log_probabilities[rows, targets].mean())

    result = minimize_scalar(negative_log_likelihood, bounds=(np.log(0.02), np.log(50.0)), method="bounded")
    return float(np.exp(result.x))
