"""Text extraction: a document in, typed text out, or a precise refusal.

The type is sniffed from the bytes (the file name and the client's MIME type are only hints, see
:mod:`core.extract.sniff`), then one module per family reads it. Every way a document can fail
ends in a :class:`core.errors.HeronError` subclass with a stable code and a sentence; nothing
else escapes :func:`extract`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from core.errors import (
    CorruptFile,
    EmptyFile,
    EncryptedFile,
    HeronError,
    LimitExceeded,
    NoText,
    UnsupportedType,
)
from core.extract import sniff as kinds
from core.extract.archive import extract_archive
from core.extract.email import extract_email
from core.extract.html import extract_html
from core.extract.image import extract_image
from core.extract.office import extract_docx, extract_pptx, extract_xlsx
from core.extract.pdf import extract_pdf
from core.extract.plain import extract_text, normalise_whitespace
from core.extract.sniff import (
    SUPPORTED_DESCRIPTION,
    SUPPORTED_TYPES,
    is_supported,
    sniff,
    unsupported_message,
)
from core.extract.tabular import extract_table
from core.extract.types import Context, Deadline, Extraction, ExtractionLimits, Page, Parsed, Source

__all__ = [
    "SUPPORTED_DESCRIPTION",
    "SUPPORTED_TYPES",
    "Extraction",
    "ExtractionLimits",
    "Page",
    "extract",
    "is_supported",
    "sniff",
    "unsupported_message",
]

log = logging.getLogger(__name__)

Reader = Callable[[Source, Context], Parsed]
_READERS: dict[str, Reader] = {
    kinds.PDF: extract_pdf,
    kinds.DOCX: extract_docx,
    kinds.PPTX: extract_pptx,
    kinds.XLSX: extract_xlsx,
    kinds.XLSM: extract_xlsx,
    kinds.CSV: lambda source, context: extract_table(source, context, content_type=kinds.CSV),
    kinds.TSV: lambda source, context: extract_table(source, context, content_type=kinds.TSV),
    kinds.TEXT: extract_text,
    kinds.MARKDOWN: extract_text,
    kinds.HTML: extract_html,
    kinds.EML: extract_email,
    kinds.ZIP: extract_archive,
    **{
        image_type: lambda source, context, image_type=image_type: extract_image(
            source, context, content_type=image_type
        )
        for image_type in kinds.IMAGE_TYPES
    },
}
_LABELS = {
    kinds.PDF: "PDF",
    kinds.DOCX: "Word document",
    kinds.PPTX: "presentation",
    kinds.XLSX: "workbook",
    kinds.XLSM: "workbook",
    kinds.CSV: "CSV file",
    kinds.TSV: "TSV file",
    kinds.HTML: "HTML page",
    kinds.EML: "e-mail",
    kinds.ZIP: "ZIP archive",
    **dict.fromkeys(kinds.IMAGE_TYPES, "image"),
}


def extract(
    source: bytes | Path,
    *,
    limits: ExtractionLimits | None = None,
    filename: str | None = None,
    content_type: str | None = None,
) -> Extraction:
    """Extract the text of a document, page by page.

    Args:
        source: The document's bytes, or the path of a file holding them (preferred for large
            files: PDFs and images are then read from disk, not copied into memory).
        limits: Page, OCR, size and time limits; the defaults when omitted.
        filename: The name the client gave (a hint only: CSV vs. text, HTML, Markdown).
        content_type: The MIME type the client gave (a hint only, like ``filename``).

    Raises:
        EmptyFile, UnsupportedType, CorruptFile, EncryptedFile, LimitExceeded, NoText: the
        document cannot be read; each carries a stable ``code`` and a sentence.
    """
    limits = limits or ExtractionLimits()
    context = Context(limits=limits, deadline=Deadline(limits.max_seconds), nested=extract_nested)
    return extract_nested(Source.of(source), context, filename=filename, content_type=content_type)


def extract_nested(
    source: Source | bytes | Path,
    context: Context,
    *,
    filename: str | None = None,
    content_type: str | None = None,
) -> Extraction:
    """:func:`extract` for a document inside another (an attachment, a ZIP member): same clock."""
    source = source if isinstance(source, Source) else Source.of(source)
    try:
        size = source.size
    except OSError as exc:
        raise CorruptFile(f"The document cannot be opened: {exc}") from exc
    if size == 0:
        raise EmptyFile("The file is empty (0 bytes); there is nothing to classify.")
    kind = sniff(source, filename=filename, content_type=content_type)
    if kind == kinds.ENCRYPTED_OFFICE:
        raise EncryptedFile("The Office file is password-protected; remove the password and upload it again.")
    reader = _READERS.get(kind)
    if reader is None:
        raise UnsupportedType(unsupported_message(filename, kind))
    label = _LABELS.get(kind, "text file")
    try:
        parsed = reader(source, context)
    except HeronError:
        raise
    except MemoryError as exc:
        raise LimitExceeded(f"The {label} needs more memory than this worker has.") from exc
    except Exception as exc:
        # A parser tripped over something nobody foresaw. The job must end with a clear
        # refusal, not a crash and three retries; the traceback is logged for us to fix.
        log.warning("unexpected error extracting a %s", kind, exc_info=True)
        raise CorruptFile(f"The {label} cannot be read ({type(exc).__name__}: {exc}).") from exc
    pages, warnings = _bounded(parsed, context.limits.max_chars)
    result = Extraction(content_type=kind, pages=pages, warnings=warnings)
    if not result.text:
        reasons = "; ".join(warning for warning in warnings if "OCR" in warning or "skipped" in warning)
        raise NoText(f"No text could be extracted from the {label}" + (f" ({reasons})." if reasons else "."))
    return result


def _bounded(parsed: Parsed, max_chars: int) -> tuple[tuple[Page, ...], tuple[str, ...]]:
    """Clean every page's whitespace and keep at most ``max_chars`` characters in all."""
    pages: list[Page] = []
    remaining = max_chars
    warnings = list(parsed.warnings)
    truncated_at = None
    for number, (text, method) in enumerate(parsed.pages, start=1):
        cleaned = normalise_whitespace(text)
        if len(cleaned) > remaining:
            cleaned = cleaned[:remaining]
            truncated_at = truncated_at or number
        remaining -= len(cleaned)
        pages.append(Page(number=number, text=cleaned, method=method))
    if truncated_at is not None:
        warnings.append(f"text truncated to {max_chars} characters (from page {truncated_at} on)")
    return tuple(pages), tuple(dict.fromkeys(warnings))
