"""Evidence: the passages of a document that most support the answer it was given.

A document is cut into passages (sentences joined up to about a paragraph, each an exact span of
the text, so ``text[start:end]`` is the passage); the model's fast tier reads every passage as if it
were a document of its own, and the passages that most support the answer are its evidence. For an
industry the fast tier does not know yet (known only by its description), a passage's support is
the similarity of its word vectors to the description's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# Passages are sentences (or lines) joined until they hold about this many characters: long enough
# to say something on their own, short enough for a person to take in at a glance.
TARGET_CHARS = 280
MAX_CHARS = 600
# Passages scored per document; a longer document gets this many evenly spaced ones (its text is
# scored the same way: see core.classify.static.sample_text).
MAX_PASSAGES = 120
# Passages kept per answer.
TOP = 3

_BOUNDARY = re.compile(r"(?<=[.!?;:])\s+|\n\s*")


@dataclass(frozen=True)
class Passage:
    text: str
    start: int
    end: int
    label: str
    score: float


def passage_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each passage of ``text``: non-blank, whitespace-trimmed, in order."""
    pieces: list[tuple[int, int]] = []
    position = 0
    for boundary in _BOUNDARY.finditer(text):
        pieces.extend(_trimmed(text, position, boundary.start()))
        position = boundary.end()
    pieces.extend(_trimmed(text, position, len(text)))
    spans: list[tuple[int, int]] = []
    for start, end in pieces:
        if spans and end - spans[-1][0] <= TARGET_CHARS:
            spans[-1] = (spans[-1][0], end)  # join the sentence to the passage it continues
        else:
            spans.extend(_cut(text, start, end))
    if len(spans) > MAX_PASSAGES:
        keep = np.linspace(0, len(spans) - 1, MAX_PASSAGES).round().astype(int)
        spans = [spans[i] for i in sorted(set(keep.tolist()))]
    return spans


def _trimmed(text: str, start: int, end: int) -> list[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return [(start, end)] if end > start else []


def _cut(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """A sentence longer than MAX_CHARS (a table, a run-on OCR line) in pieces of at most MAX_CHARS,
    cut at a space where there is one in the second half of the piece."""
    pieces = []
    while start < end:
        stop = min(start + MAX_CHARS, end)
        if stop < end:
            space = text.rfind(" ", start + MAX_CHARS // 2, stop)
            stop = space if space > start else stop
        pieces.extend(_trimmed(text, start, stop))
        start = stop
        while start < end and text[start].isspace():
            start += 1
    return pieces


def strongest(
    text: str, spans: list[tuple[int, int]], support: np.ndarray, label: str, top: int = TOP
) -> list[Passage]:
    """The ``top`` passages with the highest ``support`` (one value per span), best first."""
    order = sorted(range(len(spans)), key=lambda i: (-float(support[i]), spans[i][0]))[:top]
    return [
        Passage(
            text=text[spans[i][0] : spans[i][1]],
            start=spans[i][0],
            end=spans[i][1],
            label=label,
            score=round(float(support[i]), 4),
        )
        for i in order
    ]
