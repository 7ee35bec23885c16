"""CSV and TSV: the dialect is sniffed, then rows become lines of ``cell | cell``."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from core.extract.plain import decode_text
from core.extract.sniff import TSV
from core.extract.types import Context, Parsed, Source

_DELIMITERS = ",;\t|"
_SAMPLE_CHARS = 16 * 1024
_ROWS_BETWEEN_CLOCK_CHECKS = 2000


def extract_table(source: Source, context: Context, *, content_type: str) -> Parsed:
    """One page of rows, ``cell | cell``, stopping (with a warning) at the character limit."""
    text = decode_text(source.read())
    dialect = sniff_dialect(text[:_SAMPLE_CHARS], tab_separated=content_type == TSV)
    budget = context.limits.max_chars
    lines: list[str] = []
    warnings: list[str] = []
    used = 0
    source_lines = _Lines(text)
    reader = csv.reader(source_lines, dialect)
    try:
        for number, row in enumerate(reader, start=1):
            if number % _ROWS_BETWEEN_CLOCK_CHECKS == 0:
                context.deadline.check(f"reading row {number}")
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            line = " | ".join(cells)
            used += len(line) + 1
            if used > budget:
                warnings.append(f"table truncated after {len(lines)} rows (text limit {budget} characters)")
                break
            lines.append(line)
    except csv.Error as exc:
        # A broken row (e.g. a runaway quoted field) ends the table; the rest is still text.
        warnings.append(f"table is malformed after {len(lines)} rows ({exc}); the rest is read as plain text")
        lines.append(source_lines.rest()[: max(0, budget - used)])
    return Parsed(pages=[("\n".join(lines), "csv")], warnings=warnings)


def sniff_dialect(sample: str, *, tab_separated: bool) -> type[csv.Dialect] | csv.Dialect:
    if tab_separated:
        return csv.excel_tab
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        return csv.excel


class _Lines:
    """The text's lines for ``csv.reader``, remembering how far it got."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines(keepends=True)
        self._next = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._next >= len(self._lines):
            raise StopIteration
        self._next += 1
        return self._lines[self._next - 1]

    def rest(self) -> str:
        return "".join(self._lines[self._next :])
