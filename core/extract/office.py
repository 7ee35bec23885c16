"""Office Open XML: Word (DOCX), PowerPoint (PPTX) and Excel (XLSX/XLSM).

They are ZIPs of XML, so the same bomb checks as for ZIP uploads run on their directory before
any XML is inflated. The XML parsers used here do not resolve entities (python-docx and
python-pptx configure lxml that way; openpyxl uses defusedxml when it is installed, and it is).
"""

from __future__ import annotations

import datetime as dt
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from core.errors import CorruptFile, LimitExceeded
from core.extract.archive import ZIP_ERRORS, check_container
from core.extract.types import Context, Parsed, Source

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_CONTAINERS = frozenset({"sdt", "sdtContent", "customXml", "ins", "smartTag", "hyperlink", "fldSimple"})
_ROWS_BETWEEN_CLOCK_CHECKS = 1000
# What the Office libraries raise on damaged files (lxml's XMLSyntaxError is a ValueError subclass
# in spirit but not in fact, so it is added where lxml is imported).
_OFFICE_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    KeyError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    EOFError,
    OSError,
    NotImplementedError,
)


def _parse_errors() -> tuple[type[BaseException], ...]:
    from lxml.etree import LxmlError

    return (*_OFFICE_ERRORS, LxmlError)


def _checked(source: Source, context: Context, what: str) -> None:
    try:
        with source.open() as stream, zipfile.ZipFile(stream) as archive:
            check_container(archive, context.limits, what=f"The {what} file")
    except ZIP_ERRORS as exc:
        raise CorruptFile(f"The {what} file cannot be read: {exc}") from exc


def extract_docx(source: Source, context: Context) -> Parsed:
    """Headers, then body paragraphs and tables (row by row) in document order, then footers."""
    import docx  # python-docx is slow to import; only pay for it when a DOCX arrives
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.opc.exceptions import PackageNotFoundError

    _checked(source, context, "Word")
    try:
        with source.open() as stream:
            document = docx.Document(stream)
        related = [rel for rel in document.part.rels.values() if not rel.is_external]
        headers = [rel.target_part.element for rel in related if rel.reltype == RT.HEADER]
        footers = [rel.target_part.element for rel in related if rel.reltype == RT.FOOTER]
        lines = [*_unique(_lines_of(headers)), *_blocks(document.element.body), *_unique(_lines_of(footers))]
    except (PackageNotFoundError, *_parse_errors()) as exc:
        raise CorruptFile(f"The Word document cannot be read: {exc}") from exc
    return Parsed(pages=[("\n".join(lines), "docx")])


def _lines_of(elements: list[Any]) -> Iterator[str]:
    for element in elements:
        yield from _blocks(element)


def _unique(lines: Iterator[str]) -> list[str]:
    """Headers repeat per section (and per first/even page); say each line once."""
    return list(dict.fromkeys(lines))


def _blocks(element: Any) -> Iterator[str]:
    for child in element.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1] if isinstance(child.tag, str) else ""
        if tag == "p":
            text = _paragraph_text(child)
            if text.strip():
                yield text
        elif tag == "tbl":
            for row in child.iterchildren(f"{_W}tr"):
                cells = [" ".join(_blocks(cell)).strip() for cell in row.iterchildren(f"{_W}tc")]
                if any(cells):
                    yield " | ".join(cells)
        elif tag in _CONTAINERS:
            yield from _blocks(child)


def _paragraph_text(paragraph: Any) -> str:
    pieces = []
    for node in paragraph.iter(f"{_W}t", f"{_W}tab", f"{_W}br", f"{_W}cr"):
        if node.tag == f"{_W}t":
            pieces.append(node.text or "")
        else:
            pieces.append("\t" if node.tag == f"{_W}tab" else "\n")
    return "".join(pieces)


def extract_pptx(source: Source, context: Context) -> Parsed:
    """Each slide is a page: its text frames and tables, then its speaker notes."""
    from pptx import Presentation
    from pptx.exc import PackageNotFoundError

    _checked(source, context, "PowerPoint")
    try:
        with source.open() as stream:
            presentation = Presentation(stream)
        slides = list(presentation.slides)
        if len(slides) > context.limits.max_pages:
            raise LimitExceeded(
                f"The presentation has {len(slides)} slides; the limit is {context.limits.max_pages}."
            )
        pages = []
        for number, slide in enumerate(slides, start=1):
            context.deadline.check(f"reading slide {number}")
            lines = list(_shape_lines(slide.shapes))
            if slide.has_notes_slide:
                notes_frame = slide.notes_slide.notes_text_frame
                notes = notes_frame.text.strip() if notes_frame is not None else ""
                if notes:
                    lines.append(f"Notes: {notes}")
            pages.append(("\n".join(lines), "pptx"))
    except (PackageNotFoundError, *_parse_errors()) as exc:
        raise CorruptFile(f"The PowerPoint file cannot be read: {exc}") from exc
    return Parsed(pages=pages)


def _shape_lines(shapes: Any) -> Iterator[str]:
    from pptx.shapes.group import GroupShape

    for shape in shapes:
        if isinstance(shape, GroupShape):
            yield from _shape_lines(shape.shapes)
        elif getattr(shape, "has_table", False) and shape.has_table:
            for row in shape.table.rows:
                cells = [cell.text.strip() for cell in row.cells]
                if any(cells):
                    yield " | ".join(cells)
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            text = shape.text_frame.text.strip()
            if text:
                yield text


def extract_xlsx(source: Source, context: Context) -> Parsed:
    """Each sheet is a page: its name, then its cell values row by row (formulas as last computed)."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    _checked(source, context, "Excel")
    limits = context.limits
    parsed = Parsed()
    budget = limits.max_chars
    try:
        with source.open() as stream:
            workbook = openpyxl.load_workbook(stream, read_only=True, data_only=True, keep_links=False)
            try:
                sheets = workbook.worksheets
                if len(sheets) > limits.max_pages:
                    raise LimitExceeded(
                        f"The workbook has {len(sheets)} sheets; the limit is {limits.max_pages}."
                    )
                for sheet in sheets:
                    if budget <= 0:
                        parsed.warnings.append(f"sheet {sheet.title!r} not read (text limit reached)")
                        parsed.pages.append((f"Sheet: {sheet.title}", "xlsx"))
                        continue
                    lines, budget = _sheet_lines(sheet, budget, context, parsed.warnings)
                    parsed.pages.append(("\n".join([f"Sheet: {sheet.title}", *lines]), "xlsx"))
            finally:
                workbook.close()
    except (InvalidFileException, *_parse_errors()) as exc:
        raise CorruptFile(f"The Excel workbook cannot be read: {exc}") from exc
    return parsed


def _sheet_lines(sheet: Any, budget: int, context: Context, warnings: list[str]) -> tuple[list[str], int]:
    # A sheet's declared dimensions can claim a million columns; reading only the cells that exist
    # keeps a hostile (or merely sloppy) workbook from costing time for empty cells.
    if hasattr(sheet, "reset_dimensions"):
        sheet.reset_dimensions()
    lines: list[str] = []
    for number, row in enumerate(_rows(sheet), start=1):
        if number % _ROWS_BETWEEN_CLOCK_CHECKS == 0:
            context.deadline.check(f"reading row {number} of sheet {sheet.title!r}")
        cells = [_cell_text(value) for value in row]
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            continue
        line = " | ".join(cells)
        if len(line) + 1 > budget:
            warnings.append(f"sheet {sheet.title!r} truncated after {len(lines)} rows (text limit reached)")
            return lines, 0
        budget -= len(line) + 1
        lines.append(line)
    return lines, budget


def _rows(sheet: Any) -> Iterator[Sequence[object]]:
    """Each row's values up to its last cell that holds one. openpyxl pads a row to its last cell,
    empty or not: a 5 MB workbook whose million rows each style one empty cell in column XFD was
    16,384 cells a row, and held an extraction process for the whole time limit."""
    try:
        from openpyxl.worksheet._reader import WorkSheetParser

        workbook, source = sheet.parent, sheet._get_source
        options = {
            "data_only": workbook.data_only,
            "epoch": workbook.epoch,
            "date_formats": workbook._date_formats,
            "timedelta_formats": workbook._timedelta_formats,
        }
        strings = sheet._shared_strings
    except (ImportError, AttributeError):  # not a read-only sheet (or another openpyxl): pad
        yield from sheet.iter_rows(values_only=True)
        return
    with source() as src:
        for _, row in WorkSheetParser(src, strings, **options).parse():
            values = {cell["column"]: cell["value"] for cell in row if cell["value"] not in (None, "")}
            yield [values.get(column) for column in range(1, max(values, default=0) + 1)]


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.date().isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value).strip()
