"""A deployable model: the two tiers, their calibration and the routing between them, as one artifact.

Routing, per document:
1. The fast tier (hashed words + MiniLM's distilled word vectors, a linear model; ~2 ms) scores every
   industry it knows.
2. If its calibrated confidence is below ``escalation_threshold`` — or some active industry is still
   *young* (too few examples for the fast tier to know it, e.g. just added from a description) —
   the document is escalated: MiniLM reads a digest of it and the transformer tier scores it too.
   The answer for an escalated document combines both tiers' evidence (a product of experts: the
   sum of their calibrated logits, calibrated once more), which beats either tier alone.
3. The answer needs a person's review when it is still unsure (``low_confidence``), when the top two
   industries are close (``small_margin``), when the fast tier's answer was overturned
   (``tiers_disagree``), when the document says too little to go on (``little_text``), or when an
   industry still being learned was its likeliest answer but below the review threshold
   (``new_industry_unsure``: it keeps the answer it had before that industry came), or was the
   answer but carving's rule held it back (``new_industry_held_back``: the document reads no more
   like its description than like the earlier industry's), or took it (``new_industry_taken``), or
   when such an industry took it from the catch-all by carving's rule (``new_industry_carved``).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
from scipy import sparse
from scipy.special import logsumexp

from core.classify.calibration import softmax
from core.classify.carving import Carver
from core.classify.evidence import Passage, passage_spans, strongest
from core.classify.softmax import SoftmaxRegression
from core.classify.static import sample_text
from core.errors import ModelNotReady

MODEL_FORMAT = "heron-model-v3"
HASHED_FEATURES = 2**18
# Below this evidence (FastTier.evidence) a document says too little to file without a person: a
# line of pleasantries, an empty form. Its answer stands but it joins the review queue.
LITTLE_TEXT = 0.5
# The people's own documents raise the escalation threshold no higher than this. Held out one by one,
# documents from a single template (a clean import) are near-certain, and their percentile would send
# almost every other document to the transformer tier as well.
MAX_RAISED_THRESHOLD = 0.9
# Every review reason a prediction may carry (Verdict.review_reasons), in the order they are explained.
REVIEW_REASONS = (
    "low_confidence",
    "small_margin",
    "tiers_disagree",
    "little_text",
    "new_industry_unsure",
    "new_industry_held_back",
    "new_industry_taken",
    "new_industry_carved",
)
# The review reason of a document an industry being learned leaned towards but did not take.
NEW_INDUSTRY_UNSURE = "new_industry_unsure"
# The review reason of a document an industry being learned was the answer for, held back by
# carving's rule: it reads no more like the newcomer's description than like its earlier industry's.
NEW_INDUSTRY_HELD_BACK = "new_industry_held_back"
# The review reason of a document an industry being learned took from the one that had it: a
# person confirms it, and those confirmations are the newcomer's first examples.
NEW_INDUSTRY_TAKEN = "new_industry_taken"
# The review reason of a document the catch-all would have answered, given to an industry being
# learned by carving's rule (_carve): a person confirms it, and those confirmations are the
# newcomer's first examples.
NEW_INDUSTRY_CARVED = "new_industry_carved"


class Encoder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """MiniLM's embedding of each text's digest (the transformer tier's input)."""
        ...

    def static(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's distilled word-vector mean (part of the fast tier's input)."""
        ...


@dataclass(frozen=True)
class RoutingPolicy:
    """When to escalate to the transformer tier and when to ask a person."""

    escalation_threshold: float = 0.55
    # At least this share of documents like the people's own is escalated, however sure of them the
    # fast tier grows as they label (see Calibration.people).
    escalation_share: float = 0.18
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
class FastTier:
    """Hashed words (what the training documents literally say) next to the document's distilled
    MiniLM word vectors scaled by ``static_scale`` (what they mean), in one linear model."""

    regression: SoftmaxRegression
    static_scale: float = 2.0

    @property
    def labels(self) -> list[str]:
        return list(self.regression.classes_)

    @staticmethod
    def features(texts: Sequence[str], static: np.ndarray, static_scale: float) -> sparse.csr_matrix:
        from sklearn.feature_extraction.text import HashingVectorizer  # see core.evaluation

        words = HashingVectorizer(
            n_features=HASHED_FEATURES, alternate_sign=False, norm="l2", dtype=np.float64
        ).transform([sample_text(text) for text in texts])
        static = np.asarray(static, dtype=np.float64)
        norms = np.linalg.norm(static, axis=1, keepdims=True)
        direction = np.divide(static, norms, out=np.zeros_like(static), where=norms > 0)
        return sparse.hstack([words, sparse.csr_matrix(static_scale * direction)], format="csr")

    @staticmethod
    def evidence(static: np.ndarray) -> np.ndarray:
        """How much each document says, from 0 to 1: the length of its static vector (about 0.4
        for a line of pleasantries, 0.7 for a photographed driving licence, 0.9 for a page)."""
        return np.linalg.norm(np.asarray(static, dtype=np.float64), axis=1)

    def logits(self, features: sparse.csr_matrix) -> np.ndarray:
        return self.regression.decision_function(features)


@dataclass
class SemanticTier:
    """A softmax regression on document embeddings, on top of a prior from description prototypes.

    The prior for industry k is ``w_k × (max cosine(document, prototypes of k) − b_k)``, where the
    baseline b_k is the mean of that similarity over a reference sample of training documents; the
    regression learns the residual. The weight w_k is ``prior_weight`` for an industry known only
    by its description and fades as its examples arrive (``prior_weights``, set at training): a
    description is the best guess before there are examples, and a noisy one after (a label name
    such as "payslip" says little about a photographed payslip). An industry with prototypes but
    no examples is still predicted (its prior alone), which is how a new industry is classifiable
    the moment it is described. Centring on b_k matters for such newcomers: a two-word description
    ("real estate") is similar to everything a little; only a similarity above its usual level is
    evidence.
    """

    regression: SoftmaxRegression
    prototypes: dict[str, np.ndarray]
    reference: np.ndarray
    prior_weight: float = 10.0
    baselines: dict[str, float] = field(default_factory=dict)
    prior_weights: dict[str, float] = field(default_factory=dict)

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
                weight = self.prior_weights.get(label, self.prior_weight)
                columns.append(weight * (_similarity(embeddings, vectors) - self.baselines[label]))
        return np.stack(columns, axis=1) if columns else np.zeros((len(embeddings), 0))

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return self.regression.decision_function(embeddings, offsets=self.prior(embeddings))

    def with_prototypes(self, prototypes: Mapping[str, np.ndarray]) -> SemanticTier:
        """A copy that also knows ``prototypes`` (new industries start from their prior alone)."""
        regression = SoftmaxRegression(C=self.regression.C)
        regression.classes_ = list(self.regression.classes_)
        regression.coef_ = self.regression.coef_.copy()
        regression.intercept_ = self.regression.intercept_.copy()
        regression.add_classes(list(prototypes), regression.coef_.shape[1])
        return replace(
            self,
            regression=regression,
            prototypes={**self.prototypes, **prototypes},
            baselines=dict(self.baselines),
            prior_weights=dict(self.prior_weights),
        )


@dataclass(frozen=True)
class Calibration:
    """Temperatures that make each tier's confidences, and their combination's, mean what they say.

    Fitted on out-of-fold predictions where every fold holds out whole *groups* (a genre of the
    starter corpus, a source of imported files), so they describe documents unlike the training
    data, not near-copies of it.

    ``fast`` weighs the fast tier inside the combination; ``fast_alone`` is its temperature when it
    answers alone, never below 1 (see ``MIN_FAST_TEMPERATURE`` in :mod:`core.classify.training`):
    a tidy training set says the fast tier could be sharpened, documents from elsewhere say not.
    """

    fast: float = 1.0
    semantic: float = 1.0
    combined: float = 1.0
    fast_alone: float | None = None  # None: a model from before the split answers with ``fast``
    # The fast tier's out-of-fold confidence answering alone on the people's own examples
    # (corrections, imported and example files), at each percentile 0..100; empty while they are
    # too few to say. The more a user labels, the surer the fast tier grows of documents like
    # theirs, and a fixed threshold sends fewer and fewer of them to the transformer tier, whose
    # combination with it is the better answer: at 120 labels on industry-real-dev, 9-10% were
    # escalated instead of the 16% out of the box. See escalate_below.
    people: tuple[float, ...] = ()

    @property
    def alone(self) -> float:
        return self.fast if self.fast_alone is None else self.fast_alone

    def escalate_below(self, share: float) -> float:
        """The fast-tier confidence below which ``share`` of the people's documents fall (0 when
        there are too few of them to tell): routing escalates at least that share of documents
        like theirs, the transformer budget the model had before it learned them."""
        if not self.people or share <= 0:
            return 0.0
        return float(np.interp(100 * min(share, 1.0), np.arange(len(self.people)), self.people))


@dataclass
class HeronModel:
    fast: FastTier
    semantic: SemanticTier
    calibration: Calibration = field(default_factory=Calibration)
    # Labels with too few examples for the fast tier to be trusted yet. While an active industry is
    # young every document is escalated: the fast tier cannot know what it has hardly seen, and a
    # document it confidently files under the old industries may belong to the new one.
    young_labels: tuple[str, ...] = ()
    catch_all: str | None = None
    # While industries are being learned (young or known only by their description), the model as
    # it would be without them: fitted on the same examples minus theirs, the catch-all as it was.
    # A document no newcomer wins gets its answer, so a newcomer changes no answer but the ones it
    # takes — not even the borderline ones a retrained catch-all would tip over.
    settled: HeronModel | None = None
    # While such industries were carved out of the catch-all, the rule that carved them: a document
    # the model files under the catch-all goes to the newcomer the rule says claims it.
    carver: Carver | None = None

    @property
    def labels(self) -> list[str]:
        """Every industry the model can answer with (the transformer tier knows them all)."""
        return [
            *self.semantic.labels,
            *(label for label in self.fast.labels if label not in self.semantic.labels),
        ]

    def escalation_threshold(self, policy: RoutingPolicy) -> float:
        """The fast-tier confidence below which a document is escalated: the policy's threshold,
        raised where it would escalate less than ``policy.escalation_share`` of documents like the
        people's own (Calibration.people), but not above MAX_RAISED_THRESHOLD."""
        floor = min(self.calibration.escalate_below(policy.escalation_share), MAX_RAISED_THRESHOLD)
        return max(policy.escalation_threshold, floor)

    def fast_logits(self, texts: Sequence[str], static: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """Calibrated fast-tier logits over ``labels`` (``-inf`` for labels it does not know)."""
        features = FastTier.features(texts, static, self.fast.static_scale)
        raw = self.fast.logits(features) / self.calibration.fast
        return aligned_logits(raw, self.fast.labels, labels)

    def semantic_logits(self, embeddings: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        raw = self.semantic.logits(embeddings) / self.calibration.semantic
        return aligned_logits(raw, self.semantic.labels, labels)

    def combine(
        self, fast_logits: np.ndarray, semantic_logits: np.ndarray, labels: Sequence[str]
    ) -> np.ndarray:
        """Calibrated probabilities from both tiers' calibrated logits (a product of experts).

        On an industry the fast tier does not know, or hardly knows (a young one among established
        ones), it has no say: such a label gets at least the average of the fast tier's
        probabilities (as a logit) — or the catch-all's logit if that is higher, since the fast tier
        learned the catch-all from documents of every industry that did not exist yet: its "other"
        is as much the newcomer's. The transformer tier, which reads the newcomer's description,
        then decides.
        """
        fast = fast_logits.copy()
        unknown, young = self._learning(labels)
        learning = unknown | young
        if learning.all():  # every industry is young (a small imported taxonomy): all have a say
            learning = unknown
        if learning.any():
            known = np.isfinite(fast_logits) & ~learning
            count = np.maximum(known.sum(axis=1, keepdims=True), 1)
            neutral = logsumexp(np.where(known, fast_logits, -np.inf), axis=1, keepdims=True) - np.log(count)
            if self.catch_all in labels and not learning[list(labels).index(self.catch_all)]:
                neutral = np.maximum(neutral, fast_logits[:, [list(labels).index(self.catch_all)]])
            neutral = np.where(np.isfinite(neutral), neutral, 0.0)
            fast[:, learning] = np.maximum(np.nan_to_num(fast[:, learning], neginf=-np.inf), neutral)
        return softmax((fast + semantic_logits) / self.calibration.combined)

    def _learning(self, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Masks over ``labels``: unknown to the fast tier, and known to it but still young."""
        known = set(self.fast.labels)
        unknown = np.array([label not in known for label in labels])
        young = np.array([label in known and label in self.young_labels for label in labels])
        return unknown, young

    def classify(
        self,
        texts: Sequence[str],
        policy: RoutingPolicy,
        *,
        encoder: Encoder,
        allowed: Sequence[str] | None = None,
    ) -> list[Verdict]:
        """Each text's verdict among ``allowed`` (default: every industry the model learned).

        The model weighs every industry it learned, and a verdict's confidence is the model's
        probability for the answer among all of them: an industry retired since the model was
        trained keeps its share, which goes to no answer, rather than being shared out among the
        rest. A version that knows one active industry (a rollback, or the seconds before an
        import's ``--replace`` is learned) answers it at a confidence saying how little it
        resembles it, not at 1.0, and a person is asked (``low_confidence``).

        While an answerable industry is being learned, its rules (which documents a newcomer
        takes, and what the model without it answers) were decided among the answerable industries
        alone: a retired one weighed beside them took a newcomer's documents and handed them to
        the model without the newcomer, sure of another answer. Those verdicts are among the
        answerable industries, as before.
        """
        wanted = None if allowed is None else set(allowed)
        answerable = [label for label in self.labels if wanted is None or label in wanted]
        if not answerable:
            raise _knows_none()
        if len(answerable) == len(self.labels) or self._newcomers(answerable):
            return self._classify_among(texts, policy, encoder=encoder, labels=answerable)
        # No answerable industry is being learned: a retired newcomer is learned no more (it sends
        # no document to the transformer tier and takes none from the others).
        verdicts = self._classify(texts, policy, encoder=encoder, labels=self.labels, learning=False)
        return [_among(verdict, answerable, policy) for verdict in verdicts]

    def _newcomers(self, labels: Sequence[str]) -> set[str]:
        """The industries among ``labels`` the model is still learning (young, or described only)."""
        known = set(self.fast.labels)
        return {label for label in labels if label not in known or label in self.young_labels}

    def _classify_among(
        self,
        texts: Sequence[str],
        policy: RoutingPolicy,
        *,
        encoder: Encoder,
        labels: list[str],
    ) -> list[Verdict]:
        newcomers = self._newcomers(labels)
        if not newcomers or len(newcomers) == len(labels):
            return self._classify(texts, policy, encoder=encoder, labels=labels)
        encoder = RememberingEncoder(encoder)  # every step reads the same documents: embed them once
        verdicts = self._classify(texts, policy, encoder=encoder, labels=labels)
        if self.settled is not None:
            verdicts = _settle(self.settled, texts, verdicts, policy, encoder, labels, newcomers, self.carver)
        if self.carver is not None:
            verdicts = _carve(self.carver, texts, verdicts, encoder, newcomers)
        return verdicts

    def _classify(
        self,
        texts: Sequence[str],
        policy: RoutingPolicy,
        *,
        encoder: Encoder,
        labels: list[str],
        learning: bool = True,
    ) -> list[Verdict]:
        """Verdicts over ``labels``; without ``learning``, no industry among them is being learned
        (a retired newcomer sends no document to the transformer tier)."""
        if not labels:
            raise _knows_none()
        if not texts:
            return []
        static = encoder.static(texts)
        fast_logits = self.fast_logits(texts, static, labels)
        little = FastTier.evidence(static) < LITTLE_TEXT
        fast = softmax(fast_logits * (self.calibration.fast / self.calibration.alone))
        unsure = fast.max(axis=1) < self.escalation_threshold(policy)
        unknown, young = self._learning(labels)
        young = (young | unknown) if learning else np.zeros(len(labels), dtype=bool)
        escalate = unsure | young.any()
        final = fast.copy()
        if escalate.any():
            embeddings = encoder.embed([text for text, up in zip(texts, escalate, strict=True) if up])
            combined = self.combine(fast_logits[escalate], self.semantic_logits(embeddings, labels), labels)
            # A document the fast tier is sure of was escalated only to ask whether it belongs to
            # a young industry: it keeps the fast tier's answer unless one of those wins. So an
            # industry being learned changes no other answer than the ones it takes.
            keep = ~unsure[escalate] & ~young[combined.argmax(axis=1)]
            combined[keep] = fast[escalate][keep]
            final[escalate] = combined
            escalate[np.flatnonzero(escalate)[keep]] = False
        return [
            self._verdict(labels, final[i], fast[i], bool(escalate[i]), policy, little=bool(little[i]))
            for i in range(len(texts))
        ]

    @staticmethod
    def _verdict(
        labels: list[str],
        final: np.ndarray,
        fast: np.ndarray,
        escalated: bool,
        policy: RoutingPolicy,
        *,
        little: bool = False,
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
        if little:
            reasons.append("little_text")
        return Verdict(
            label=labels[order[0]],
            confidence=top,
            scores={label: round(float(p), 6) for label, p in zip(labels, final, strict=True)},
            tier="transformer" if escalated else "fast",
            escalated=escalated,
            needs_review=bool(reasons),
            review_reasons=tuple(reasons),
        )

    def evidence(
        self,
        texts: Sequence[str],
        answers: Sequence[str],
        *,
        encoder: Encoder,
        top: int = 3,
        spans: Sequence[list[tuple[int, int]]] | None = None,
    ) -> list[list[Passage]]:
        """For each text, the ``top`` passages that most support its answer (core.classify.evidence).

        A passage's support is the probability, by the fast tier's word-vector half reading the
        passage alone, that it belongs to the answer (calibrated as when the fast tier answers
        alone); for an industry the fast tier does not know, the cosine similarity of its word
        vectors to the industry's description. The hashed-word half is left out: hashing every
        passage again cost more than the rest of the evidence together (about 1 ms a document),
        and the word vectors alone pick a passage that, classified alone, gets the document's
        answer (bench/bench_annotation.py). All passages of a batch are scored in one product.
        ``spans``: each text's passages, when the caller has them already (``passage_spans``).
        """
        spans = [passage_spans(text) for text in texts] if spans is None else spans
        pieces = [text[start:end] for text, found in zip(texts, spans, strict=True) for start, end in found]
        if not pieces:
            return [[] for _ in texts]
        static = np.asarray(encoder.static(pieces), dtype=np.float64)
        labels = self.labels
        norms = np.linalg.norm(static, axis=1, keepdims=True)
        direction = np.divide(static, norms, out=np.zeros_like(static), where=norms > 0)
        meaning = self.fast.regression.coef_[:, -static.shape[1] :]  # the word-vector columns
        raw = self.fast.static_scale * direction @ meaning.T + self.fast.regression.intercept_
        fast = softmax(aligned_logits(raw / self.calibration.alone, self.fast.labels, labels))
        known = set(self.fast.labels)
        result, first = [], 0
        for text, found, answer in zip(texts, spans, answers, strict=True):
            rows = slice(first, first + len(found))
            first += len(found)
            if answer in known:
                support = fast[rows, labels.index(answer)]
            elif len(self.semantic.prototypes.get(answer, ())):
                support = _similarity(static[rows], self.semantic.prototypes[answer])
            else:
                support = np.zeros(len(found))
            result.append(strongest(text, found, support, answer, top))
        return result

    def with_prototypes(self, prototypes: Mapping[str, np.ndarray]) -> HeronModel:
        """A copy that also predicts industries it was not trained with, from their descriptions."""
        new = {label: vectors for label, vectors in prototypes.items() if label not in self.semantic.labels}
        return replace(self, semantic=self.semantic.with_prototypes(new)) if new else self

    # -- persistence ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        semantic = self.semantic
        prototype_labels = sorted(semantic.prototypes)
        arrays = io.BytesIO()
        fast_state = self.fast.regression.state()
        semantic_state = semantic.regression.state()
        np.savez_compressed(
            arrays,
            reference=semantic.reference.astype(np.float16),
            **{f"fast_{key}": value for key, value in fast_state.items()},
            **{f"semantic_{key}": value for key, value in semantic_state.items()},
            **{f"prototype_{i}": semantic.prototypes[label] for i, label in enumerate(prototype_labels)},
        )
        meta = {
            "format": MODEL_FORMAT,
            "calibration": {
                "fast": self.calibration.fast,
                "semantic": self.calibration.semantic,
                "combined": self.calibration.combined,
                "fast_alone": self.calibration.fast_alone,
            },
            # Beside "calibration", not in it: a process still running the previous release reads
            # this artifact during a rolling upgrade, and would refuse a key it does not know there.
            "people_confidence": list(self.calibration.people),
            "young_labels": list(self.young_labels),
            "catch_all": self.catch_all,
            "fast": {
                "classes": self.fast.labels,
                "C": self.fast.regression.C,
                "static_scale": self.fast.static_scale,
            },
            "semantic": {
                "classes": semantic.labels,
                "C": semantic.regression.C,
                "prior_weight": semantic.prior_weight,
                "prototype_labels": prototype_labels,
                "baselines": semantic.baselines,
                "prior_weights": semantic.prior_weights,
            },
        }
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr("model.json", json.dumps(meta))
            archive.writestr("arrays.npz", arrays.getvalue())
            if self.settled is not None:
                archive.writestr("settled.bin", self.settled.to_bytes())
            if self.carver is not None:
                archive.writestr("carver.bin", self.carver.to_bytes())
        return buffer.getvalue()

    @staticmethod
    def format_of(blob: bytes) -> str | None:
        """The artifact's format tag (older Herons wrote other ones), or None if unreadable."""
        try:
            with zipfile.ZipFile(io.BytesIO(blob)) as archive:
                return json.loads(archive.read("model.json")).get("format")
        except (zipfile.BadZipFile, KeyError, ValueError):
            return None

    @classmethod
    def from_bytes(cls, blob: bytes) -> HeronModel:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            meta = json.loads(archive.read("model.json"))
            if meta.get("format") != MODEL_FORMAT:
                raise ValueError(f"Unknown model format {meta.get('format')!r}.")
            with np.load(io.BytesIO(archive.read("arrays.npz")), allow_pickle=False) as arrays:
                stored = {key: arrays[key] for key in arrays.files}
            names = archive.namelist()
            settled = cls.from_bytes(archive.read("settled.bin")) if "settled.bin" in names else None
            carver = Carver.from_bytes(archive.read("carver.bin")) if "carver.bin" in names else None
        info = meta["semantic"]

        def state(prefix: str) -> dict[str, np.ndarray]:
            return {key[len(prefix) :]: value for key, value in stored.items() if key.startswith(prefix)}

        fast = FastTier(
            regression=SoftmaxRegression.from_state(
                meta["fast"]["classes"], state("fast_"), C=meta["fast"]["C"]
            ),
            static_scale=meta["fast"]["static_scale"],
        )
        semantic = SemanticTier(
            regression=SoftmaxRegression.from_state(info["classes"], state("semantic_"), C=info["C"]),
            prototypes={label: stored[f"prototype_{i}"] for i, label in enumerate(info["prototype_labels"])},
            reference=stored["reference"].astype(np.float32),
            prior_weight=info["prior_weight"],
            baselines={label: float(b) for label, b in info["baselines"].items()},
            prior_weights={label: float(w) for label, w in info.get("prior_weights", {}).items()},
        )
        temperatures = dict(meta["calibration"])
        people = temperatures.pop("people", ())  # where a development build kept them
        return cls(
            fast=fast,
            semantic=semantic,
            calibration=Calibration(**temperatures, people=tuple(meta.get("people_confidence", people))),
            young_labels=tuple(meta.get("young_labels", ())),
            catch_all=meta.get("catch_all"),
            settled=settled,
            carver=carver,
        )


def _knows_none() -> ModelNotReady:
    return ModelNotReady(
        "The active model knows none of the active industries: train one (`heron train --full`, "
        "or Retrain in the console) or activate a version that knows them."
    )


def _among(verdict: Verdict, labels: list[str], policy: RoutingPolicy) -> Verdict:
    """``verdict`` restricted to ``labels`` without sharing the others' probability out among them
    (see :meth:`HeronModel.classify`): the likeliest of them is the answer, at its own probability."""
    # (a verdict the settled model gave has no score for the newcomers it does not know: none)
    scores = {label: verdict.scores.get(label, 0.0) for label in labels}
    order = sorted(scores, key=scores.__getitem__, reverse=True)
    top = scores[order[0]]
    runner_up = scores[order[1]] if len(order) > 1 else 0.0
    if order[0] == verdict.label:
        reasons = [r for r in verdict.review_reasons if r not in ("low_confidence", "small_margin")]
    else:  # the model's own answer was an industry retired since: only what holds still stands
        reasons = [r for r in verdict.review_reasons if r == "little_text"]
    if top - runner_up < policy.review_margin and len(order) > 1:
        reasons.insert(0, "small_margin")
    if top < policy.review_threshold:
        reasons.insert(0, "low_confidence")
    return replace(
        verdict,
        label=order[0],
        confidence=top,
        scores=scores,
        needs_review=bool(reasons),
        review_reasons=tuple(reasons),
    )


def _settle(
    settled: HeronModel,
    texts: Sequence[str],
    verdicts: list[Verdict],
    policy: RoutingPolicy,
    encoder: Encoder,
    labels: list[str],
    newcomers: set[str],
    carver: Carver | None = None,
) -> list[Verdict]:
    """Every document no newcomer takes gets the settled model's answer (HeronModel.settled).

    A newcomer takes a document only when it is the answer with at least the review threshold's
    confidence, and (when carving's rule knows both industries' descriptions) the document reads
    more like the newcomer's description than like that of the industry it had before
    (Carver.holds). A document it only leans towards, or may not take, keeps its answer from before
    and goes to a person (that is where the newcomer's first examples come from).
    """
    unsure = {
        i
        for i, verdict in enumerate(verdicts)
        if verdict.label in newcomers and verdict.confidence < policy.review_threshold
    }
    # A document a newcomer takes needs its earlier answer only where the rule may hold it back.
    taken = [
        i
        for i, verdict in enumerate(verdicts)
        if verdict.label in newcomers
        and i not in unsure
        and carver is not None
        and carver.judges(verdict.label)
    ]
    asked = sorted(
        [i for i, verdict in enumerate(verdicts) if verdict.label not in newcomers or i in unsure] + taken
    )
    if not asked:
        return verdicts
    established = [label for label in labels if label not in newcomers]
    answers = settled.classify([texts[i] for i in asked], policy, encoder=encoder, allowed=established)
    before = dict(zip(asked, answers, strict=True))
    held: set[int] = set()
    if carver is not None and taken:
        vectors = (encoder.embed([texts[i] for i in taken]), encoder.static([texts[i] for i in taken]))
        for newcomer in {verdicts[i].label for i in taken}:
            rows = [row for row, i in enumerate(taken) if verdicts[i].label == newcomer]
            chosen = (vectors[0][rows], vectors[1][rows])
            holds = carver.holds(chosen, newcomer, [before[taken[row]].label for row in rows])
            held |= {taken[row] for row, ok in zip(rows, holds, strict=True) if not ok}
    for i, verdict in before.items():
        if i in unsure or i in held:
            reason = NEW_INDUSTRY_UNSURE if i in unsure else NEW_INDUSTRY_HELD_BACK
            verdicts[i] = replace(
                verdict, needs_review=True, review_reasons=(*verdict.review_reasons, reason)
            )
        elif verdicts[i].label not in newcomers:
            verdicts[i] = verdict
    # What a newcomer takes, a person confirms (a newcomer known by its name alone included).
    for i, verdict in enumerate(verdicts):
        if verdict.label in newcomers:
            verdicts[i] = replace(
                verdict, needs_review=True, review_reasons=(*verdict.review_reasons, NEW_INDUSTRY_TAKEN)
            )
    return verdicts


def _carve(
    carver: Carver, texts: Sequence[str], verdicts: list[Verdict], encoder: Encoder, newcomers: set[str]
) -> list[Verdict]:
    """A document filed under the catch-all, or under an industry whose description names a
    newcomer's kind of document (Carver.parents), goes with that answer's confidence to the newcomer
    still being learned that carving's rule says takes it: the rule that moved the starter's recipes
    to "cooking" moves incoming recipes the same way. The transformer tier learned the catch-all from
    documents of every industry that did not exist yet, and it outweighs a newcomer's few carved
    examples and its description: "travel", "politics" and "religion" from a description found 12%,
    17% and 67% of their documents (carve-outs the benchmark does not report; 25%, 33% and 83% with
    this rule, none wrongly). So does the fast tier an established industry that once held the
    newcomer's kind: "music" and "film" carved out of entertainment found 38% and 57% of their
    reviews (75% and 100% with this rule, none more wrongly; over eleven such development carve-outs
    six more of their documents and two more of other industries', both Go posts for "version
    control", whose parent by this rule is technology)."""
    among = [label for label in carver.newcomers if label in newcomers]
    if not among:
        return verdicts
    sources = {carver.catch_all, *(parent for label in among for parent in carver.parents(label))}
    rows = [i for i, verdict in enumerate(verdicts) if verdict.label in sources]
    if not rows:
        return verdicts
    chosen = [texts[i] for i in rows]
    answers = [verdicts[i].label for i in rows]
    takes = carver.takes((encoder.embed(chosen), encoder.static(chosen)), answers, among)
    for i, claim in zip(rows, takes, strict=True):
        if claim is not None:
            verdict = verdicts[i]
            scores = dict(verdict.scores)
            scores[claim] = verdict.scores.get(verdict.label, 0.0)
            scores[verdict.label] = verdict.scores.get(claim, 0.0)
            # The reasons a document kept its earlier answer stand no more: the newcomer has it now.
            kept = (
                r for r in verdict.review_reasons if r not in (NEW_INDUSTRY_UNSURE, NEW_INDUSTRY_HELD_BACK)
            )
            reasons = tuple(dict.fromkeys((*kept, NEW_INDUSTRY_CARVED)))
            verdicts[i] = replace(
                verdict, label=claim, scores=scores, needs_review=True, review_reasons=reasons
            )
    return verdicts


class RememberingEncoder:
    """An encoder that embeds each text once per classification, however many models ask."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.embeddings: dict[str, np.ndarray] = {}
        self.statics: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._recall(texts, self.embeddings, self.encoder.embed)

    def remember_passages(self, texts: Sequence[str], spans: Sequence[list[tuple[int, int]]]) -> None:
        """Compute the static vectors of ``texts`` and of their passages (``spans``, from
        ``passage_spans``) together, each text tokenised once (when the encoder can:
        ``static_parts``), so that classifying them and finding their evidence reads them from
        memory."""
        parts = getattr(self.encoder, "static_parts", None)
        if parts is None:
            return
        vectors, passages = parts(texts, spans)
        self.statics.update(zip(texts, vectors, strict=True))
        for text, found, rows in zip(texts, spans, passages, strict=True):
            self.statics.update((text[start:end], row) for (start, end), row in zip(found, rows, strict=True))

    def static(self, texts: Sequence[str]) -> np.ndarray:
        return self._recall(texts, self.statics, self.encoder.static)

    @staticmethod
    def _recall(
        texts: Sequence[str], memory: dict[str, np.ndarray], compute: Callable[[Sequence[str]], np.ndarray]
    ) -> np.ndarray:
        missing = [text for text in dict.fromkeys(texts) if text not in memory]
        if missing:
            memory.update(zip(missing, compute(missing), strict=True))
        return np.stack([memory[text] for text in texts])


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
