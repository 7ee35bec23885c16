"""A deployable model: the tiers, their labels and the routing between them, as one artifact."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.classify.linear import LinearTextClassifier

MODEL_FORMAT = "heron-model-v1"


@dataclass(frozen=True)
class RoutingPolicy:
    """When to ask a person to look."""

    review_threshold: float = 0.5
    review_margin: float = 0.1


@dataclass(frozen=True)
class Verdict:
    """One document's answer: the label, how sure, who decided, and whether a person should look."""

    label: str
    confidence: float
    scores: dict[str, float]
    tier: str
    escalated: bool = False
    needs_review: bool = False
    review_reasons: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class HeronModel:
    """The fast tier plus the labels it may answer with (retired industries are masked out)."""

    fast: LinearTextClassifier
    temperature: float = 1.0

    @property
    def labels(self) -> list[str]:
        return list(self.fast.classes_)

    def predict_proba(self, texts: Sequence[str], *, allowed: Sequence[str] | None = None) -> np.ndarray:
        """Probabilities over ``self.labels``; labels outside ``allowed`` get zero."""
        logits = self.fast.decision_function(texts) / self.temperature
        if allowed is not None:
            mask = np.array([label not in set(allowed) for label in self.labels])
            if mask.all():
                raise ValueError("None of the model's labels is an active industry.")
            logits[:, mask] = -np.inf
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def classify(
        self,
        texts: Sequence[str],
        policy: RoutingPolicy,
        *,
        allowed: Sequence[str] | None = None,
    ) -> list[Verdict]:
        probabilities = self.predict_proba(texts, allowed=allowed)
        return [self._verdict(row, policy) for row in probabilities]

    def _verdict(self, row: np.ndarray, policy: RoutingPolicy) -> Verdict:
        order = np.argsort(row)[::-1]
        top, runner_up = float(row[order[0]]), float(row[order[1]]) if len(row) > 1 else 0.0
        reasons = []
        if top < policy.review_threshold:
            reasons.append("low_confidence")
        if top - runner_up < policy.review_margin:
            reasons.append("small_margin")
        return Verdict(
            label=self.labels[order[0]],
            confidence=top,
            scores={label: round(float(p), 6) for label, p in zip(self.labels, row, strict=True)},
            tier="fast",
            escalated=False,
            needs_review=bool(reasons),
            review_reasons=tuple(reasons),
        )

    # -- persistence ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(
                "model.json", json.dumps({"format": MODEL_FORMAT, "temperature": self.temperature})
            )
            archive.writestr("fast.npz", self.fast.to_bytes())
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> HeronModel:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            meta = json.loads(archive.read("model.json"))
            if meta.get("format") != MODEL_FORMAT:
                raise ValueError(f"Unknown model format {meta.get('format')!r}.")
            fast = LinearTextClassifier.from_bytes(archive.read("fast.npz"))
        return cls(fast=fast, temperature=float(meta["temperature"]))
