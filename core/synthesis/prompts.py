"""What the LLM is asked: genres first, then small batches of documents, each with its own brief.

Diversity is planned, not hoped for: every document gets a genre (from the industry's
description and from genres the model proposed), a length, a tone and a format, rotated so that
all genres are used before one repeats and neighbouring documents differ in length.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.corpus import readable_name

# Stored with every synthetic example; change it whenever the prompts change meaningfully.
PROMPT_VERSION = "synthesis-v1"

LENGTHS = (
    "short (120–250 words)",
    "medium (250–450 words)",
    "long (450–800 words)",
)
TONES = (
    "formal",
    "neutral and factual",
    "conversational",
    "urgent",
    "technical",
    "friendly",
    "critical",
    "plain-spoken",
)
FORMATS = (
    "e-mail",
    "letter",
    "report",
    "internal memo",
    "news article",
    "online forum post",
    "meeting minutes",
    "transcript",
    "form or record with labelled fields",
    "checklist or procedure",
    "press release",
    "FAQ page",
)
# When neither the description nor the model offers genres.
FALLBACK_GENRES = (
    "an everyday working document",
    "a customer or client communication",
    "a report written by a practitioner",
    "a news article about the field",
    "a question posted by a member of the public",
    "a policy, procedure or guideline",
)
_GENRE_SENTENCE = re.compile(r"^(?:an?|the)\s+\S", re.IGNORECASE)


@dataclass(frozen=True)
class Brief:
    """What one document should be."""

    genre: str
    length: str
    tone: str
    format: str

    def as_meta(self) -> dict[str, str]:
        return {"genre": self.genre, "length": self.length, "tone": self.tone, "format": self.format}


def genres_from_description(description: str) -> list[str]:
    """Genres named in a description: its sentences of the form "A <kind of document> …".

    Heron's descriptions list typical documents this way ("A clinical note about a patient's
    symptoms …"); a description without such sentences yields none.
    """
    genres = []
    for sentence in re.split(r"(?<=[.!?])\s+", description or ""):
        sentence = sentence.strip().rstrip(".!?").strip()
        if _GENRE_SENTENCE.match(sentence) and 3 <= len(sentence) <= 200:
            genres.append(sentence)
    return merge_genres(genres)


def merge_genres(*sources: Sequence[str], limit: int = 30) -> list[str]:
    """Genres from several sources, in order, without case-insensitive repeats."""
    seen: set[str] = set()
    merged = []
    for source in sources:
        for genre in source:
            key = " ".join(genre.lower().split())
            if key and key not in seen:
                seen.add(key)
                merged.append(" ".join(genre.split()))
    return merged[:limit]


def plan_briefs(genres: Sequence[str], count: int, *, start: int = 0, seed: str = "") -> list[Brief]:
    """Briefs for documents ``start`` … ``start + count - 1`` of a run.

    Genres are used round-robin in a shuffled order (so all are used before any repeats);
    lengths rotate; tone and format are drawn so that the same combination rarely recurs. The
    plan is a pure function of its arguments: a resumed run asks for what it would have asked.
    """
    genres = list(genres) or list(FALLBACK_GENRES)
    order = list(genres)
    random.Random(f"{seed}:genres").shuffle(order)
    briefs = []
    for position in range(start, start + count):
        rng = random.Random(f"{seed}:{position}")
        briefs.append(
            Brief(
                genre=order[position % len(order)],
                length=LENGTHS[position % len(LENGTHS)],
                tone=rng.choice(TONES),
                format=rng.choice(FORMATS),
            )
        )
    return briefs


def genre_messages(industry: str, description: str, count: int = 12) -> list[dict[str, str]]:
    """Ask the model which kinds of documents the industry produces."""
    return [
        {
            "role": "system",
            "content": "You know how organisations and people in every industry write. Reply with JSON only.",
        },
        {
            "role": "user",
            "content": (
                f"Industry: {readable_name(industry)}.\n"
                f"What it covers: {description or readable_name(industry)}\n\n"
                f"List {count} different kinds of documents that are typical of this industry, from as many "
                "different writers and situations as you can (professionals, customers, regulators, "
                "journalists, the public). Describe each in one short phrase, e.g. "
                '"a maintenance log entry for a repaired component".\n'
                'Reply as {"genres": ["…", "…"]}.'
            ),
        },
    ]


def document_messages(industry: str, description: str, briefs: Sequence[Brief]) -> list[dict[str, str]]:
    """Ask for one document per brief, in order, as JSON."""
    lines = "\n".join(
        f"Document {i} — genre: {b.genre}; format: {b.format}; tone: {b.tone}; length: {b.length}"
        for i, b in enumerate(briefs, start=1)
    )
    return [
        {
            "role": "system",
            "content": (
                "You write realistic documents that train a document classifier. Each must read like a real "
                "document of its kind, written in English by a person in the situation: concrete names, "
                "organisations, places, dates, amounts and details; no placeholders such as [Name]; no "
                "titles like 'Document 1'; no commentary before or after. Answer with JSON only."
            ),
        },
        {
            "role": "user",
            "content": (
                f"Industry: {readable_name(industry)}.\n"
                f"What it covers: {description or readable_name(industry)}\n\n"
                f"Write {len(briefs)} documents of this industry, one for each line below, in this order:\n"
                f"{lines}\n\n"
                "Make them clearly different from each other: different writers, organisations, places, "
                "openings and structure. Never start two documents the same way.\n"
                'Reply as {"documents": [{"genre": "…", "text": "…"}, …]} with the full document in "text".'
            ),
        },
    ]


def _json_schema_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


GENRES_FORMAT = _json_schema_format(
    "genres",
    {
        "type": "object",
        "properties": {"genres": {"type": "array", "items": {"type": "string"}}},
        "required": ["genres"],
        "additionalProperties": False,
    },
)
DOCUMENTS_FORMAT = _json_schema_format(
    "documents",
    {
        "type": "object",
        "properties": {
            "documents": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"genre": {"type": "string"}, "text": {"type": "string"}},
                    "required": ["genre", "text"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["documents"],
        "additionalProperties": False,
    },
)
