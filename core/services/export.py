"""Export of approved, labelled data (JSONL or CSV) for use outside Heron."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import select

from core.db import session_scope
from core.db.tables import ExampleSource, ExampleStatus, TrainingExample
from core.errors import Invalid
from core.services.industries import require_known_industry

FORMATS = ("jsonl", "csv")
FIELDS = ("id", "label", "source", "split", "origin", "created_at", "text")
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}
# A cell starting with one of these is a formula to a spreadsheet (which may fetch URLs or run
# commands): a document's text or file name must not be one.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Export:
    body: str
    media_type: str
    filename: str


def export_examples(
    *, engine: Engine, fmt: str = "jsonl", source: str | None = None, label: str | None = None
) -> Export:
    """The labelled examples Heron learns from (approved feedback, imports, synthetic, starter) as
    JSONL or CSV; not those rejected or superseded by a later correction.

    Raises:
        Invalid: an unknown format, source or industry.
    """
    if fmt not in FORMATS:
        raise Invalid(f"Unknown export format {fmt!r}; use jsonl or csv.")
    sources = [member.value for member in ExampleSource]
    if source and source not in sources:
        raise Invalid(f"Unknown source {source!r}; use one of {', '.join(sources)}.")
    query = (
        select(TrainingExample)
        .where(TrainingExample.status == ExampleStatus.approved)
        .order_by(TrainingExample.id)
    )
    if source:
        query = query.where(TrainingExample.source == source)
    with session_scope(engine) as session:
        if label:
            query = query.where(TrainingExample.label == require_known_industry(session, label))
        rows = session.exec(query).all()
    body = "".join(_chunks(fmt, rows))
    return Export(body=body, media_type=MEDIA_TYPES[fmt], filename=f"heron-export.{fmt}")


def _chunks(fmt: str, rows: Sequence[TrainingExample]) -> Iterator[str]:
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(FIELDS)
        for row in rows:
            writer.writerow([safe_cell(_value(row, name)) for name in FIELDS])
        yield buffer.getvalue()
        return
    for row in rows:
        yield json.dumps({name: _value(row, name) for name in FIELDS}, ensure_ascii=False) + "\n"


def safe_cell(value: object) -> object:
    """``value`` as a CSV cell a spreadsheet shows as text: a text that would start a formula gets
    a leading apostrophe (OWASP's advice; the apostrophe is not shown)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _value(row: TrainingExample, name: str) -> object:
    value = getattr(row, name)
    return value.isoformat() if hasattr(value, "isoformat") else value
