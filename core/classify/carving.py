"""Carving: which documents of the catch-all ("other") belong to an industry added since.

A catch-all holds everything no other industry claims, including documents of industries that do not
exist yet: the starter corpus files recipes, sermons and match reports under "other". When a user
adds "cooking", a document belongs to it rather than to the catch-all when it is more like the
newcomer's description than like any sentence of the catch-all's own, leaving out the catch-all's
sentences about the newcomer ("A recipe or food blog …" once "cooking" exists). Training moves our
own starter examples by this rule (never a person's label), and a model keeps the rule, measured
against the same training examples, for the documents it files under the catch-all while the
newcomer is being learned (:meth:`core.classify.model.HeronModel.classify`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# A document moves to a newcomer only when it is this much more like the newcomer (in centred
# similarity, see Sentences) than like the catch-all. Decided on carve-outs the benchmark does not
# report (cooking, politics, religion, travel out of "other") and on the tests' "aviation": the wrong
# moves of starter examples there had margins up to 0.031 (a rowing club's subscriptions notice into
# aviation, a hobby forum post into cooking), and one stray example teaches a newcomer the wrong thing.
# Applied to incoming documents too (0.03 found travel 0.50 of its documents there instead of 0.25,
# with one wrong take).
CARVE_MARGIN = 0.04

# A catch-all sentence is about a newcomer only when it is this much closer to the newcomer's
# description than to the rest of its own. Without the margin a sentence far from its neighbours
# went to any newcomer near it at all: "aviation" (a description of airlines and flights) took the
# sports sentence ("A sports match report …", 0.41 against 0.36: crews and teams), and with it every
# sports report. Sentences truly about the newcomer stood 0.15-0.43 closer (sports, cooking,
# politics, religion, travel); the wrongly dropped ones 0.01-0.04 (and 0.12 for the generic opening,
# "Documents that belong to none of …", next to another "Documents about …").
ABOUT_MARGIN = 0.1

Vectors = tuple[np.ndarray, np.ndarray]  # (transformer digests, static vectors), one row per item
_FIELDS = ("digest", "static", "usual_digest", "usual_static")


def unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def sentences_not_about(own: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """Which of a catch-all's description sentences (embeddings ``own``) are not about a newcomer
    (``theirs``): a sentence is about it when it is closer to the newcomer's description, by
    ABOUT_MARGIN, than to every other sentence of its own description. Never drops them all."""
    within = own @ own.T
    np.fill_diagonal(within, -np.inf)
    about = (own @ theirs.T).max(axis=1) > within.max(axis=1) + ABOUT_MARGIN
    return ~about if (~about).any() else np.ones(len(own), dtype=bool)


@dataclass(frozen=True)
class Sentences:
    """Description sentences in both views, with each sentence's usual similarity to a document
    (its mean over the training examples). Only a similarity above the usual level counts: a
    generic sentence ("Documents that belong to none of the other industries: sport, politics, …")
    is similar to everything, and counted raw it outbid the newcomer for most of its documents
    ("cooking" from a description carved 1 of the starter's recipes and found 0 of 6 real ones)."""

    digest: np.ndarray
    static: np.ndarray
    usual_digest: np.ndarray
    usual_static: np.ndarray

    @classmethod
    def measured(cls, sentences: Vectors, reference: Vectors) -> Sentences:
        digest, static = sentences[0], unit(sentences[1])
        return cls(
            digest=digest,
            static=static,
            usual_digest=(reference[0] @ digest.T).mean(axis=0),
            usual_static=(unit(reference[1]) @ static.T).mean(axis=0),
        )

    def likeness(self, documents: Vectors) -> np.ndarray:
        """Per document: the best sentence's similarity above its usual level, in both views (the
        digest reads a document's opening closely, static vectors all of it)."""
        digest = (documents[0] @ self.digest.T - self.usual_digest).max(axis=1)
        static = (unit(documents[1]) @ self.static.T - self.usual_static).max(axis=1)
        return (digest + static) / 2


@dataclass(frozen=True)
class Carver:
    """The rule for one catch-all and the newcomers carved out of it: per newcomer, its sentences
    and the catch-all's sentences not about it."""

    catch_all: str
    newcomers: tuple[str, ...]
    theirs: tuple[Sentences, ...]
    own: tuple[Sentences, ...]

    @classmethod
    def measured(
        cls,
        sentences: Mapping[str, Vectors],
        reference: Vectors,
        *,
        catch_all: str | None,
        newcomers: Sequence[str],
    ) -> Carver | None:
        """The rule with similarities measured against ``reference`` (the training examples);
        None when there is no catch-all or no newcomer with a description."""
        if catch_all is None or catch_all not in sentences:
            return None
        newcomers = [label for label in newcomers if label in sentences and label != catch_all]
        if not newcomers:
            return None
        own = sentences[catch_all]
        theirs, kept = [], []
        for newcomer in newcomers:
            keep = sentences_not_about(own[0], sentences[newcomer][0])
            theirs.append(Sentences.measured(sentences[newcomer], reference))
            kept.append(Sentences.measured((own[0][keep], own[1][keep]), reference))
        return cls(catch_all=catch_all, newcomers=tuple(newcomers), theirs=tuple(theirs), own=tuple(kept))

    def claims(self, documents: Vectors, among: Sequence[str] | None = None) -> list[str | None]:
        """Per document, the newcomer (of ``among``, default all) that takes it from the catch-all,
        or None: the one it is most like, by more than CARVE_MARGIN."""
        columns = [i for i, label in enumerate(self.newcomers) if among is None or label in among]
        if not columns or not len(documents[0]):
            return [None] * len(documents[0])
        margins = np.stack(
            [self.theirs[i].likeness(documents) - self.own[i].likeness(documents) for i in columns], axis=1
        )
        best = margins.argmax(axis=1)
        return [
            self.newcomers[columns[int(column)]] if row[column] > CARVE_MARGIN else None
            for column, row in zip(best, margins, strict=True)
        ]

    def to_bytes(self) -> bytes:
        arrays = {}
        for i in range(len(self.newcomers)):
            for side, sentences in (("theirs", self.theirs[i]), ("own", self.own[i])):
                for name in _FIELDS:
                    arrays[f"{i}_{side}_{name}"] = getattr(sentences, name)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        meta = json.dumps({"catch_all": self.catch_all, "newcomers": list(self.newcomers)}).encode()
        return len(meta).to_bytes(4, "big") + meta + buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Carver:
        size = int.from_bytes(blob[:4], "big")
        meta = json.loads(blob[4 : 4 + size])
        with np.load(io.BytesIO(blob[4 + size :]), allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}

        def side(i: int, name: str) -> Sentences:
            return Sentences(**{key: arrays[f"{i}_{name}_{key}"] for key in _FIELDS})

        count = len(meta["newcomers"])
        return cls(
            catch_all=meta["catch_all"],
            newcomers=tuple(meta["newcomers"]),
            theirs=tuple(side(i, "theirs") for i in range(count)),
            own=tuple(side(i, "own") for i in range(count)),
        )
