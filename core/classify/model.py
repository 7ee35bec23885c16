"""A deployable model: the two tiers, their calibration and the routing between them, as one artifact.

Routing, per document:
1. The fast tier (hashed words + linear model, well under a millisecond) scores every industry it knows.
2. If its calibrated confidence is below ``escalation_threshold`` — or an active industry exists that
   only the transformer tier knows (added from a description, no examples yet) — the document is
   escalated: MiniLM embeds it (all of it, in windows) and the transformer tier decides.
3. The answer needs a person's review when it is still unsure (``low_confidence``), when the top two
   industries are close (``small_margin``), or when the tiers disagreed (``tiers_disagree``).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from core.classify.calibration import softmax
from core.classify.linear import LinearTextClassifier
from core.classify.softmax import SoftmaxRegression

MODEL_FORMAT = "heron-model-v2"


class Encoder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class RoutingPolicy:
    """When to escalate to the transformer tier and when to ask a person."""

    escalation_threshold: float = 0.7
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
class SemanticTier:
    """A softmax regression on document embeddings, on top of a prior from description prototypes.

    The prior for industry k is ``prior_weight × (max cosine(document, prototypes of k) − b_k)``,
    where the baseline b_k is the mean of that similarity over a reference sample of training
    documents; the regression learns the residual. An industry with prototypes but no examples is
    still predicted (its prior alone), which is how a new industry is classifiable the moment it is
    described. Centring on b_k matters for such newcomers: a two-word description ("real estate")
    is similar to everything a little, and only a similarity above its usual level is evidence.
    """

    regression: SoftmaxRegression
    prototypes: dict[str, np.ndarray]
    reference: np.ndarray
    prior_weight: float = 10.0
    temperature: float = 1.0
    baselines: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for label, vectors in self.prototypes.items():
            if label not in self.baselines:
                self.baselines[label] = (
                    float(_similarity(self.reference, vectors).mean()) if len(self.reference) else 0.0
                )

    @property
    def labels(self) -> list[str]:
        return list(self.regression.classes_)

    def prior(self, embeddings: np.ndarray, labels: Sequence[str] | None = None) -> np.ndarray:
        labels = self.labels if labels is None else labels
        columns = []
        for label in labels:
            vectors = self.prototypes.get(label)
            if vectors is None or not len(vectors):
                columns.append(np.zeros(len(embeddings)))
            else:
                columns.append(_similarity(embeddings, vectors) - self.baselines[label])
        return self.prior_weight * np.stack(columns, axis=1) if columns else np.zeros((len(embeddings), 0))

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return self.regression.decision_function(embeddings, offsets=self.prior(embeddings))

    def with_prototypes(self, prototypes: Mapping[str, np.ndarray]) -> SemanticTier:
        """A copy that also knows ``prototypes`` (new industries start from their prior alone)."""
        regression = SoftmaxRegression(
            l2=self.regression.l2,
            max_iter=self.regression.max_iter,
            learning_rate=self.regression.learning_rate,
        )
        regression.classes_ = list(self.regression.classes_)
        regression.coef_ = self.regression.coef_.copy()
        regression.intercept_ = self.regression.intercept_.copy()
        regression.add_classes(list(prototypes), regression.coef_.shape[1])
        return replace(
            self,
            regression=regression,
            prototypes={**self.prototypes, **prototypes},
            baselines=dict(self.baselines),
        )


@dataclass
class HeronModel:
    fast: LinearTextClassifier
    semantic: SemanticTier
    fast_temperature: float = 1.0
    # Labels with too few examples for the fast tier to be trusted yet: when the fast tier names
    # one of them, the transformer tier checks (a young class otherwise steals documents).
    young_labels: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        """Every industry the model can answer with (the transformer tier knows them all)."""
        return [
            *self.semantic.labels,
            *(label for label in self.fast.classes_ if label not in self.semantic.labels),
        ]

    def fast_proba(self, texts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
        """Calibrated fast-tier probabilities over ``labels`` (zero for labels it does not know)."""
        raw = self.fast.decision_function(texts) / self.fast_temperature
        return softmax(aligned_logits(raw, self.fast.classes_, labels))

    def semantic_proba(self, embeddings: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        raw = self.semantic.logits(embeddings) / self.semantic.temperature
        return softmax(aligned_logits(raw, self.semantic.labels, labels))

    def classify(
        self,
        texts: Sequence[str],
        policy: RoutingPolicy,
        *,
        encoder: Encoder,
        allowed: Sequence[str] | None = None,
    ) -> list[Verdict]:
        labels = [label for label in self.labels if allowed is None or label in set(allowed)]
        if not labels:
            raise ValueError("None of the model's industries is active.")
        if not texts:
            return []
        fast = self.fast_proba(texts, labels)
        unknown_to_fast = any(label not in self.fast.classes_ for label in labels)
        young = np.array([label in self.young_labels for label in labels])
        escalate = (
            (fast.max(axis=1) < policy.escalation_threshold) | unknown_to_fast | young[fast.argmax(axis=1)]
        )
        final = fast.copy()
        if escalate.any():
            embeddings = encoder.embed([text for text, up in zip(texts, escalate, strict=True) if up])
            final[escalate] = self.semantic_proba(embeddings, labels)
        return [
            self._verdict(labels, final[i], fast[i], bool(escalate[i]), policy) for i in range(len(texts))
        ]

    @staticmethod
    def _verdict(
        labels: list[str], final: np.ndarray, fast: np.ndarray, escalated: bool, policy: RoutingPolicy
    ) -> Verdict:
        order = np.argsort(final)[::-1]
        top = float(final[order[0]])
        runner_up = float(final[order[1]]) if len(order) > 1 else 0.0
        reasons = []
        if top < policy.review_threshold:
            reasons.append("low_confidence")
        if len(order) > 1 and top - runner_up < policy.review_margin:
            reasons.append("small_margin")
        if escalated and fast.max() > 0 and int(np.argmax(fast)) != int(order[0]):
            reasons.append("tiers_disagree")
        return Verdict(
            label=labels[order[0]],
            confidence=top,
            scores={label: round(float(p), 6) for label, p in zip(labels, final, strict=True)},
            tier="transformer" if escalated else "fast",
            escalated=escalated,
            needs_review=bool(reasons),
            review_reasons=tuple(reasons),
        )

    def with_prototypes(self, prototypes: Mapping[str, np.ndarray]) -> HeronModel:
        new = {label: vectors for label, vectors in prototypes.items() if label not in self.semantic.labels}
        return replace(self, semantic=self.semantic.with_prototypes(new)) if new else self

    def partial_fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        embeddings: np.ndarray,
        *,
        fast_epochs: int = 30,
        semantic_epochs: int = 5,
    ) -> HeronModel:
        """Learn from a few more examples, starting from the current weights (no full retrain).

        Both tiers grow a class for a label they have not seen; the calibration temperatures are
        kept. The caller mixes in a sample of earlier examples so the update does not forget them.
        """
        self.fast.partial_fit(texts, labels, epochs=fast_epochs)
        regression = self.semantic.regression
        regression.add_classes(labels, embeddings.shape[1])
        regression.partial_fit(
            embeddings, labels, offsets=self.semantic.prior(embeddings), epochs=semantic_epochs
        )
        return self

    # -- persistence ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        semantic = self.semantic
        prototype_labels = sorted(semantic.prototypes)
        arrays = io.BytesIO()
        np.savez_compressed(
            arrays,
            coef=semantic.regression.coef_,
            intercept=semantic.regression.intercept_,
            reference=semantic.reference.astype(np.float16),
            **{f"prototype_{i}": semantic.prototypes[label] for i, label in enumerate(prototype_labels)},
        )
        meta = {
            "format": MODEL_FORMAT,
            "fast_temperature": self.fast_temperature,
            "young_labels": list(self.young_labels),
            "semantic": {
                "classes": semantic.labels,
                "l2": semantic.regression.l2,
                "prior_weight": semantic.prior_weight,
                "temperature": semantic.temperature,
                "prototype_labels": prototype_labels,
                "baselines": semantic.baselines,
            },
        }
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr("model.json", json.dumps(meta))
            archive.writestr("fast.npz", self.fast.to_bytes())
            archive.writestr("semantic.npz", arrays.getvalue())
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> HeronModel:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            meta = json.loads(archive.read("model.json"))
            if meta.get("format") != MODEL_FORMAT:
                raise ValueError(f"Unknown model format {meta.get('format')!r}.")
            fast = LinearTextClassifier.from_bytes(archive.read("fast.npz"))
            with np.load(io.BytesIO(archive.read("semantic.npz")), allow_pickle=False) as arrays:
                info = meta["semantic"]
                regression = SoftmaxRegression(l2=info["l2"])
                regression.classes_ = list(info["classes"])
                regression.coef_ = arrays["coef"]
                regression.intercept_ = arrays["intercept"]
                prototypes = {
                    label: arrays[f"prototype_{i}"] for i, label in enumerate(info["prototype_labels"])
                }
                reference = arrays["reference"].astype(np.float32)
        semantic = SemanticTier(
            regression=regression,
            prototypes=prototypes,
            reference=reference,
            prior_weight=info["prior_weight"],
            temperature=info["temperature"],
            baselines={label: float(b) for label, b in info["baselines"].items()},
        )
        return cls(
            fast=fast,
            semantic=semantic,
            fast_temperature=meta["fast_temperature"],
            young_labels=tuple(meta.get("young_labels", ())),
        )


def _similarity(embeddings: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """Each document's cosine similarity to the closest of the prototypes (all L2-normalised)."""
    return (embeddings @ prototypes.T).max(axis=1)


def aligned_logits(
    logits: np.ndarray, classes: Sequence[str], labels: Sequence[str], *, missing: float = -np.inf
) -> np.ndarray:
    """Reorder logit columns from ``classes`` to ``labels``; a label the scorer lacks gets ``missing``."""
    index = {label: i for i, label in enumerate(classes)}
    out = np.full((len(logits), len(labels)), missing)
    for column, label in enumerate(labels):
        if label in index:
            out[:, column] = logits[:, index[label]]
    return out
