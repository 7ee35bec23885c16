"""Reading an LLM's reply tolerantly: servers that ignore ``response_format``, prose around the
JSON, code fences, truncated JSON and chatty preambles all still yield the documents they hold."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.errors import LlmBadReply

_FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n?(.*?)```", re.DOTALL)
_FENCE_LINE = re.compile(r"^\s*```[A-Za-z]*\s*$")
# A complete JSON string value of a text-like key, for salvaging documents from broken JSON.
_TEXT_FIELD = re.compile(r'"(?:text|content|document|body)"\s*:\s*"((?:[^"\\]|\\.)*)"', re.DOTALL)
_LOOKS_LIKE_JSON = re.compile(r'[{\[]\s*"[^"\n]{1,40}"\s*:')
_HEADING = re.compile(
    r"^\s*(?:#{1,6}\s*)?(?:\*\*|__)?\s*(?:document|doc|example|sample|text)\s*#?\s*\d+\b.{0,120}$",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(r"^\s*(?:-{3,}|={3,}|\*{3,}|_{3,})\s*$")
_CHATTY_START = re.compile(
    r"^\s*(?:sure|certainly|of course|absolutely|okay|ok|great|alright|below (?:is|are)|as requested|"
    r"here(?:'s| is| are)|i(?:'ve| have) (?:written|created|prepared)|the following)\b",
    re.IGNORECASE,
)
_EAGER = re.compile(r"^\s*(?:sure|certainly|of course|absolutely|okay|ok|great|alright)\b", re.IGNORECASE)
_CHATTY_END = re.compile(
    r"^\s*(?:i hope|hope this|let me know|feel free|if you(?:'d| would)? (?:like|need|want)|note:|"
    r"these (?:documents|examples|samples)|each (?:document|example))",
    re.IGNORECASE,
)
_ABOUT_THE_TASK = re.compile(r"\b(?:documents?|examples?|samples?|requested|variations?)\b", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.)])\s+")
_OPENER = re.compile(r"[{\[]")
# A reply longer than this is not read: a batch of documents is far shorter, and reading a long
# reply that is not JSON costs time that grows with the square of its length.
MAX_REPLY_CHARS = 1_000_000
# Embedded JSON is looked for at this many "{" or "[" at most (each failed attempt re-reads the
# reply up to that point to say where it failed).
MAX_JSON_ATTEMPTS = 200

CONTAINER_KEYS = ("documents", "docs", "items", "results", "examples", "data")
TEXT_KEYS = ("text", "content", "document", "body", "document_text")
GENRE_KEYS = ("genre", "type", "kind")


@dataclass(frozen=True)
class ParsedDocument:
    text: str
    genre: str | None = None


def parse_documents(reply: str) -> list[ParsedDocument]:
    """The documents in a reply, in order.

    Tried in turn: the reply as JSON, fenced JSON, JSON embedded in prose (``{"documents": […]}``,
    a bare list, or single document objects), complete ``"text"`` values salvaged from broken
    JSON, and — for a reply that is not JSON at all — the prose itself, split on separator lines
    and "Document 2" headings. Chatty preambles are stripped from each text.

    Raises:
        LlmBadReply: nothing usable is in the reply, or it is longer than ``MAX_REPLY_CHARS``.
    """
    _check_size(reply)
    values = list(_json_values(reply))
    for value in values:
        if documents := _documents_in_container(value):
            return documents
    singles = [doc for value in values if (doc := _document_from_item(value)) is not None]
    if singles:
        return singles
    salvaged = [_clean(_unescape(raw)) for raw in _TEXT_FIELD.findall(reply)]
    if salvaged := [ParsedDocument(text) for text in salvaged if text]:
        return salvaged
    if not _LOOKS_LIKE_JSON.search(reply) and (prose := _split_prose(reply)):
        return [ParsedDocument(text) for text in prose]
    raise LlmBadReply(f"The reply holds no documents: {_excerpt(reply)}")


def parse_genres(reply: str, *, limit: int = 30) -> list[str]:
    """Genre phrases from a reply: ``{"genres": […]}``, a JSON list, or a bulleted/numbered list.

    Raises:
        LlmBadReply: the reply lists no genres.
    """
    _check_size(reply)
    found: list[str] = []
    for value in _json_values(reply):
        items = value.get("genres") if isinstance(value, dict) else value
        if isinstance(items, list):
            for item in items:
                if isinstance(item, dict):
                    item = next((item[k] for k in ("genre", "name", "description") if k in item), "")
                if isinstance(item, str):
                    found.append(item)
            if found:
                break
    if not found:
        found = [_BULLET.sub("", line) for line in reply.splitlines() if _BULLET.match(line)]
    cleaned = []
    for genre in found:
        genre = " ".join(genre.strip().strip("\"'*").split()).rstrip(".;,")
        if 3 <= len(genre) <= 160:
            cleaned.append(genre)
    if not cleaned:
        raise LlmBadReply(f"The reply lists no genres: {_excerpt(reply)}")
    return list(dict.fromkeys(cleaned))[:limit]


def strip_preamble(text: str) -> str:
    """The document without the assistant's talk around it.

    Drops leading fences, "Document 1" headings and lines like "Sure! Here is the memo:" (a line
    starting "Here is …" counts only if it ends with a colon: "Here is the agenda for Tuesday."
    may well be the memo), and trailing remarks about the task ("Let me know if you would like
    more examples."). A closing "Let me know if you have questions." is part of an e-mail, and kept.
    """
    lines = text.strip().splitlines()
    dropped = 0
    while lines and dropped < 4:
        line = lines[0].strip()
        chatty = _CHATTY_START.match(line) and (line.endswith(":") or _EAGER.match(line))
        if not line or _FENCE_LINE.match(line) or _HEADING.match(line) or _SEPARATOR.match(line) or chatty:
            lines.pop(0)
            dropped += 1 if line else 0
            continue
        break
    while lines:
        line = lines[-1].strip()
        remark = _CHATTY_END.match(line) and _ABOUT_THE_TASK.search(line)
        if not line or _FENCE_LINE.match(line) or _SEPARATOR.match(line) or remark:
            lines.pop()
            continue
        break
    return "\n".join(lines).strip()


def _clean(text: str) -> str:
    return strip_preamble(text.replace("\r\n", "\n"))


def _unescape(raw: str) -> str:
    try:
        return json.loads(f'"{raw}"')
    except ValueError:
        return raw.replace("\\n", "\n").replace('\\"', '"')


def _check_size(reply: str) -> None:
    if len(reply) > MAX_REPLY_CHARS:
        raise LlmBadReply(
            f"The reply is {len(reply):,} characters long, more than a batch of documents can be."
        )


def _json_values(reply: str) -> Iterator[Any]:
    """Every JSON object or array in the reply: the whole of it, fenced blocks, then embedded ones.

    Nesting too deep for the parser (``[[[[…``, a degenerate reply) counts as not JSON."""
    try:
        yield json.loads(reply)
        return
    except (ValueError, RecursionError):
        pass
    for block in _FENCE.findall(reply):
        try:
            yield json.loads(block)
        except (ValueError, RecursionError):
            continue
    decoder = json.JSONDecoder()
    position = failures = 0
    while failures < MAX_JSON_ATTEMPTS and (match := _OPENER.search(reply, position)) is not None:
        try:
            value, end = decoder.raw_decode(reply, match.start())
        except (ValueError, RecursionError):
            position = match.start() + 1
            failures += 1
            continue
        if isinstance(value, dict | list):
            yield value
        position = end


def _documents_in_container(value: Any) -> list[ParsedDocument]:
    items: Any = value
    if isinstance(value, dict):
        items = next((value[k] for k in CONTAINER_KEYS if isinstance(value.get(k), list)), None)
    if not isinstance(items, list):
        return []
    return [doc for item in items if (doc := _document_from_item(item)) is not None]


def _document_from_item(item: Any) -> ParsedDocument | None:
    genre = None
    if isinstance(item, dict):
        text = next((item[k] for k in TEXT_KEYS if isinstance(item.get(k), str)), None)
        genre = next((item[k] for k in GENRE_KEYS if isinstance(item.get(k), str)), None)
    else:
        text = item if isinstance(item, str) else None
    if text is None or not (cleaned := _clean(text)):
        return None
    return ParsedDocument(cleaned, (genre.strip() or None) if genre else None)


def _split_prose(reply: str) -> list[str]:
    chunks: list[list[str]] = [[]]
    for line in reply.replace("\r\n", "\n").splitlines():
        if _SEPARATOR.match(line) or _HEADING.match(line) or _FENCE_LINE.match(line):
            chunks.append([])
        else:
            chunks[-1].append(line)
    return [text for chunk in chunks if (text := _clean("\n".join(chunk)))]


def _excerpt(reply: str, size: int = 160) -> str:
    flat = " ".join(reply.split())
    return repr(flat[:size] + ("…" if len(flat) > size else ""))
