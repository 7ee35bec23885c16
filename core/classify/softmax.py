"""Multinomial logistic regression on dense features, with per-class offsets and growable classes.

The transformer tier uses it on document embeddings. ``offsets`` carry a prior score per class
(the similarity of the document to the class's description prototype): the regression learns
the residual on top of that prior, so a class with a description but no examples yet still gets
its prior, and examples sharpen it as they arrive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize

from core.errors import NotFittedError


class SoftmaxRegression:
    def __init__(self, *, l2: float = 1e-3, max_iter: int = 500, learning_rate: float = 0.5) -> None:
        self.l2 = l2
        self.max_iter = max_iter
        self.learning_rate = learning_rate

    def _ensure_classes(self, labels: Sequence[str], n_features: int) -> None:
        if not hasattr(self, "classes_"):
            self.classes_: list[str] = []
            self.coef_ = np.zeros((0, n_features))
            self.intercept_ = np.zeros(0)
        new = [label for label in dict.fromkeys(labels) if label not in self.classes_]
        if new:
            self.classes_ = [*self.classes_, *new]
            self.coef_ = np.vstack([self.coef_, np.zeros((len(new), n_features))])
            # A class nobody has seen yet starts at the average bias, not at an arbitrary zero.
            start = float(self.intercept_.mean()) if len(self.intercept_) else 0.0
            self.intercept_ = np.concatenate([self.intercept_, np.full(len(new), start)])

    def _targets(self, labels: Sequence[str]) -> np.ndarray:
        index = {label: i for i, label in enumerate(self.classes_)}
        return np.fromiter((index[label] for label in labels), dtype=np.int64, count=len(labels))

    def fit(
        self,
        features: np.ndarray,
        labels: Sequence[str],
        *,
        classes: Sequence[str] = (),
        offsets: np.ndarray | None = None,
    ) -> SoftmaxRegression:
        """Learn from scratch (L-BFGS on the regularised log-loss)."""
        for attribute in ("classes_", "coef_", "intercept_"):
            self.__dict__.pop(attribute, None)
        features = np.asarray(features, dtype=np.float64)
        self._ensure_classes([*classes, *labels], features.shape[1])
        targets = self._targets(labels)
        k, d = self.coef_.shape
        offsets = self._offsets(offsets, len(features))

        def loss_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
            coef, intercept = flat[: k * d].reshape(k, d), flat[k * d :]
            probabilities, log_likelihood = _log_softmax_at(features @ coef.T + intercept + offsets, targets)
            residual = probabilities
            residual[np.arange(len(targets)), targets] -= 1.0
            n = len(targets)
            loss = -log_likelihood / n + 0.5 * self.l2 * np.sum(coef * coef)
            gradient_coef = residual.T @ features / n + self.l2 * coef
            gradient_intercept = residual.mean(axis=0)
            return loss, np.concatenate([gradient_coef.ravel(), gradient_intercept])

        start = np.concatenate([self.coef_.ravel(), self.intercept_])
        result = minimize(
            loss_and_gradient, start, jac=True, method="L-BFGS-B", options={"maxiter": self.max_iter}
        )
        self.coef_ = result.x[: k * d].reshape(k, d)
        self.intercept_ = result.x[k * d :]
        return self

    def partial_fit(
        self,
        features: np.ndarray,
        labels: Sequence[str],
        *,
        classes: Sequence[str] = (),
        offsets: np.ndarray | None = None,
        epochs: int = 10,
    ) -> SoftmaxRegression:
        """Continue from the current weights with a few gradient steps; new labels become classes."""
        features = np.asarray(features, dtype=np.float64)
        self._ensure_classes([*classes, *labels], features.shape[1] if features.ndim == 2 else 0)
        if not len(labels):
            return self
        targets = self._targets(labels)
        offsets = self._offsets(offsets, len(features))
        for _ in range(epochs):
            probabilities, _ = _log_softmax_at(features @ self.coef_.T + self.intercept_ + offsets, targets)
            probabilities[np.arange(len(targets)), targets] -= 1.0
            self.coef_ -= self.learning_rate * (
                probabilities.T @ features / len(targets) + self.l2 * self.coef_
            )
            self.intercept_ -= self.learning_rate * probabilities.mean(axis=0)
        return self

    def add_classes(self, labels: Sequence[str], n_features: int) -> SoftmaxRegression:
        self._ensure_classes(labels, n_features)
        return self

    def decision_function(self, features: np.ndarray, *, offsets: np.ndarray | None = None) -> np.ndarray:
        if not getattr(self, "classes_", None):
            raise NotFittedError("This SoftmaxRegression has no classes yet; call fit or partial_fit first.")
        features = np.asarray(features, dtype=np.float64)
        return features @ self.coef_.T + self.intercept_ + self._offsets(offsets, len(features))

    def _offsets(self, offsets: np.ndarray | None, n: int) -> np.ndarray:
        k = len(self.classes_)
        if offsets is None:
            return np.zeros((n, k))
        offsets = np.asarray(offsets, dtype=np.float64)
        if offsets.shape != (n, k):
            raise ValueError(f"offsets must have shape {(n, k)}, got {offsets.shape}")
        return offsets


def _log_softmax_at(logits: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float]:
    """Softmax probabilities and the summed log-likelihood of ``targets``."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_normaliser = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_probabilities = shifted - log_normaliser
    return np.exp(log_probabilities), float(log_probabilities[np.arange(len(targets)), targets].sum())
