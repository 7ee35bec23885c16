"""The fast tier: hashed word n-grams and a multinomial logistic regression trained by SGD.

scikit-learn's ``SGDClassifier.partial_fit`` fixes its class list on the first call, so a new
industry could never be learned incrementally. This estimator owns its weight matrix instead:
an unseen label appends a zero row (a class the model knows nothing about yet) and training
continues from the current weights. The softmax over all rows keeps probabilities comparable
whatever the number of classes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer

from core.errors import NotFittedError

ARTIFACT_FORMAT = "heron-linear-v1"


class LinearTextClassifier:
    """Multinomial logistic regression over hashed n-grams, learnable one batch at a time."""

    def __init__(
        self,
        *,
        n_features: int = 2**18,
        ngram_range: tuple[int, int] = (1, 1),
        alpha: float = 1e-5,
        learning_rate: float = 5.0,
        epochs: int = 60,
        batch_size: int = 16,
        random_state: int = 0,
    ) -> None:
        self.n_features = n_features
        self.ngram_range = ngram_range
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state

    # -- features -------------------------------------------------------------------------
    def _vectorizer(self) -> HashingVectorizer:
        return HashingVectorizer(
            n_features=self.n_features,
            ngram_range=self.ngram_range,
            alternate_sign=False,
            norm="l2",
            lowercase=True,
            dtype=np.float32,
        )

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        return self._vectorizer().transform(texts)

    # -- learning -------------------------------------------------------------------------
    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> LinearTextClassifier:
        """Learn from scratch: forget any previous state, then ``epochs`` passes of SGD."""
        for attribute in ("classes_", "coef_", "intercept_", "steps_"):
            self.__dict__.pop(attribute, None)
        return self.partial_fit(texts, labels, epochs=self.epochs)

    def partial_fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        classes: Sequence[str] = (),
        epochs: int = 1,
    ) -> LinearTextClassifier:
        """Continue learning from the current weights; unseen labels become new classes."""
        if len(texts) != len(labels):
            raise ValueError(f"Got {len(texts)} texts but {len(labels)} labels.")
        self._grow_classes([*classes, *labels])
        if not texts:
            return self
        features = self.transform(texts)
        index = {label: i for i, label in enumerate(self.classes_)}
        targets = np.fromiter((index[label] for label in labels), dtype=np.int64, count=len(labels))
        rng = np.random.default_rng(self.random_state + self.steps_)
        for _ in range(epochs):
            order = rng.permutation(len(targets))
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                self._sgd_step(features[batch], targets[batch])
        return self

    def _grow_classes(self, labels: Sequence[str]) -> None:
        if not hasattr(self, "classes_"):
            self.classes_: list[str] = []
            self.coef_ = np.zeros((0, self.n_features), dtype=np.float32)
            self.intercept_ = np.zeros(0, dtype=np.float32)
            self.steps_ = 0
        new = [label for label in dict.fromkeys(labels) if label not in self.classes_]
        if new:
            self.classes_ = [*self.classes_, *new]
            self.coef_ = np.vstack([self.coef_, np.zeros((len(new), self.n_features), np.float32)])
            self.intercept_ = np.concatenate([self.intercept_, np.zeros(len(new), np.float32)])

    def _sgd_step(self, features: sparse.csr_matrix, targets: np.ndarray) -> None:
        # Only the columns (features) present in the batch have a non-zero gradient, so the
        # update and the L2 shrinkage touch those columns alone: cost grows with the batch,
        # not with n_features.
        columns = np.unique(features.indices)
        local = features[:, columns]
        probabilities = _softmax(local @ self.coef_[:, columns].T + self.intercept_)
        probabilities[np.arange(len(targets)), targets] -= 1.0
        scale = self.learning_rate / (1.0 + 0.01 * self.steps_) ** 0.5
        gradient = (local.T @ probabilities).T / len(targets)
        self.coef_[:, columns] -= scale * (gradient + self.alpha * self.coef_[:, columns])
        self.intercept_ -= scale * probabilities.mean(axis=0)
        self.steps_ += 1

    # -- prediction -----------------------------------------------------------------------
    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        return np.asarray(self.transform(texts) @ self.coef_.T + self.intercept_)

    def predict_proba(self, texts: Sequence[str], *, temperature: float = 1.0) -> np.ndarray:
        return _softmax(self.decision_function(texts) / temperature)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.classes_[i] for i in self.decision_function(texts).argmax(axis=1)]

    def _check_fitted(self) -> None:
        if not getattr(self, "classes_", None):
            raise NotFittedError(
                "This LinearTextClassifier has not learned any class yet; call fit or partial_fit first."
            )

    # -- persistence ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        self._check_fitted()
        meta = {
            "format": ARTIFACT_FORMAT,
            "params": {**self.get_params(), "ngram_range": list(self.ngram_range)},
            "classes": self.classes_,
            "steps": self.steps_,
        }
        # Storing only the non-zero columns keeps the artifact small: most hash buckets are
        # never seen by a corpus of a few thousand documents.
        used = np.flatnonzero(np.any(self.coef_ != 0, axis=0)).astype(np.int32)
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            columns=used,
            coef=self.coef_[:, used],
            intercept=self.intercept_,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> LinearTextClassifier:
        with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
            meta = json.loads(arrays["meta"].tobytes())
            if meta.get("format") != ARTIFACT_FORMAT:
                raise ValueError(f"Unknown artifact format {meta.get('format')!r}.")
            params = meta["params"]
            params["ngram_range"] = tuple(params["ngram_range"])
            model = cls(**params)
            model.classes_ = list(meta["classes"])
            model.steps_ = int(meta["steps"])
            model.coef_ = np.zeros((len(model.classes_), model.n_features), dtype=np.float32)
            model.coef_[:, arrays["columns"]] = arrays["coef"]
            model.intercept_ = arrays["intercept"].astype(np.float32)
        return model

    def get_params(self) -> dict[str, object]:
        return {
            "n_features": self.n_features,
            "ngram_range": self.ngram_range,
            "alpha": self.alpha,
            "learning_rate": self.learning_rate,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "random_state": self.random_state,
        }


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
