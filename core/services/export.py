"""Export of approved, labelled data (JSONL or CSV) for use outside Heron."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from sqlmodel import Session, select

from core.db.tables import TrainingExample
from core.errors import Invalid

FORMATS = ("jsonl", "csv")
FIELDS = ("id", "label", "source", "split", "origin", "created_at", "text")


def export_examples(
    *, session: Session, fmt: str = "jsonl", source: str | None = None, label: str | None = None
) -> Iterator[str]:
    """Yield the labelled examples (approved feedback, imports, synthetic, starter) as text chunks."""
    if fmt not in FORMATS:
        raise Invalid(f"Unknown export format {fmt!r}; use jsonl or csv.")
    query = select(TrainingExample).order_by(TrainingExample.id)
    if source:
        query = query.where(TrainingExample.source == source)
    if label:
        query = query.where(TrainingExample.label == label)
    rows = session.exec(query).all()
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(FIELDS)
        for row in rows:
            writer.writerow([_value(row, name) for name in FIELDS])
        yield buffer.getvalue()
        return
    for row in rows:
        yield json.dumps({name: _value(row, name) for name in FIELDS}, ensure_ascii=False) + "\n"


def _value(row: TrainingExample, name: str) -> object:
    value = getattr(row, name)
    return value.isoformat() if hasattr(value, "isoformat") else value
