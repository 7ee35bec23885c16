"""Quality gates a generated document passes before it is stored: length, language, and exact
and near duplication (MinHash over word shingles) against the run and the stored examples."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.corpus import content_hash

# The commonest English function words: they make up 35–50% of running English prose and almost
# none of German, French or Spanish text, which is all a language check of generated text needs.
_STOPWORDS = """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers him his how i if in into is it its just me more most my no nor
    not now of off on once only or other our ours out over own same she should so some such than that
    the their theirs them then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours"""
ENGLISH_STOPWORDS = frozenset(_STOPWORDS.split())
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_TOKEN = re.compile(r"\w+")
MIN_ENGLISH_SHARE = 0.12
# An assistant declining the task, not a document: "I'm sorry, but I can't help with writing …",
# "I cannot create these …", "As an AI language model …". It speaks in the first person about
# writing or helping: "I am sorry for the delay" (an apology letter), "Unfortunately, we are unable
# to provide cover" (a claim decision), "I cannot provide legal advice; this memo …" or "As an
# AI-driven logistics firm …" are documents.
_DECLINE = (
    r"i (?:can['’]?t|cannot|am unable to|['’]m unable to|am not able to|won['’]t) "
    r"(?:help|assist|write|create|generate|produce|fulfil+|comply)\b"
)
_APOLOGY = r"(?:i['’]?m sorry|i am sorry|sorry|i apologi[sz]e)\b[^.!?\n]{0,40}?"
_REFUSAL = re.compile(
    rf"^\W*(?:{_APOLOGY}{_DECLINE}"
    rf"|{_DECLINE}\s+(?:with\s+)?(?:this|that|these|those|your|such)\b"
    rf"|(?:{_APOLOGY})?as an ai (?:language )?(?:model|assistant)\b)",
    re.IGNORECASE,
)
MAX_SHINGLED_WORDS = 5000


def is_refusal(text: str) -> bool:
    """Whether the text is the model declining to write, rather than a document."""
    return _REFUSAL.match(text[:400]) is not None


def english_share(text: str) -> float:
    """Share of the words that are common English function words (0 for no words)."""
    words = _WORD.findall(text.lower())
    return sum(word in ENGLISH_STOPWORDS for word in words) / len(words) if words else 0.0


def looks_english(text: str, *, minimum_share: float = MIN_ENGLISH_SHARE) -> bool:
    """Whether the text is (mostly) English: Latin script, and enough English function words.

    The threshold is low on purpose: forms, logs and checklists use few function words, while
    German, French or Spanish prose scores well under it.
    """
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    latin = sum(ch.isascii() or "\u00c0" <= ch <= "\u024f" for ch in letters) / len(letters)
    return latin >= 0.9 and english_share(text) >= minimum_share


def shingles(text: str, size: int = 3) -> np.ndarray:
    """Hashes of the text's overlapping ``size``-word sequences (case and punctuation ignored)."""
    words = _TOKEN.findall(text.lower())[:MAX_SHINGLED_WORDS]
    grams = {" ".join(words[i : i + size]) for i in range(max(len(words) - size + 1, 1))}
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little") for g in grams),
        dtype=np.uint64,
        count=len(grams),
    )


class NearDuplicateIndex:
    """Texts seen so far, as MinHash signatures; answers "how similar is the closest one?".

    The share of equal signature positions estimates the Jaccard similarity of two texts' word
    3-gram sets (±0.05 with 128 permutations). A document rewritten with other names and
    numbers still shares most of its 3-grams with the original; two documents written
    independently share almost none.
    """

    def __init__(self, *, threshold: float = 0.5, permutations: int = 128, seed: int = 7) -> None:
        self.threshold = threshold
        rng = np.random.default_rng(seed)
        # Multiply-add with odd multipliers modulo 2**64 (numpy wraps) permutes the hash space.
        self._multipliers = rng.integers(1, 2**63, size=permutations, dtype=np.uint64) | np.uint64(1)
        self._offsets = rng.integers(0, 2**63, size=permutations, dtype=np.uint64)
        self._rows: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def signature(self, text: str) -> np.ndarray:
        hashes = shingles(text)
        return (self._multipliers[:, None] * hashes[None, :] + self._offsets[:, None]).min(axis=1)

    def add(self, text: str) -> None:
        self._rows.append(self.signature(text))
        self._matrix = None

    def add_all(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.add(text)

    def similarity(self, text: str) -> float:
        """Estimated Jaccard similarity of ``text`` to the most similar indexed text (0 if none)."""
        if not self._rows:
            return 0.0
        if self._matrix is None:
            self._matrix = np.vstack(self._rows)
        return float((self._matrix == self.signature(text)).mean(axis=1).max())

    def is_near_duplicate(self, text: str) -> bool:
        return self.similarity(text) >= self.threshold


@dataclass(frozen=True)
class Candidate:
    """A generated document on its way to becoming a training example (``meta``: its brief etc.)."""

    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Screening:
    accepted: list[Candidate] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)


def screen(
    candidates: Iterable[Candidate],
    *,
    min_chars: int,
    max_chars: int,
    seen_hashes: set[str],
    index: NearDuplicateIndex,
) -> Screening:
    """Keep the candidates that pass every gate; count the others by reason.

    Reasons: ``refusal`` (the model declining the task), ``too_short``, ``too_long``,
    ``not_english``, ``duplicate`` (same text, ignoring
    case and spacing, as a stored example or an earlier candidate) and ``near_duplicate``.
    ``seen_hashes`` and ``index`` are the run's memory: what is accepted is added to both, so
    later candidates are compared with it too.
    """
    result = Screening()
    for candidate in candidates:
        text = candidate.text.strip()
        digest = content_hash(text)
        if is_refusal(text):
            reason = "refusal"
        elif len(text) < min_chars:
            reason = "too_short"
        elif len(text) > max_chars:
            reason = "too_long"
        elif not looks_english(text):
            reason = "not_english"
        elif digest in seen_hashes:
            reason = "duplicate"
        elif index.is_near_duplicate(text):
            reason = "near_duplicate"
        else:
            seen_hashes.add(digest)
            index.add(text)
            result.accepted.append(candidate)
            continue
        result.rejected[reason] += 1
    return result
