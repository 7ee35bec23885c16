"""Text extraction: bytes in, typed text out. The type is sniffed from the bytes, never the name."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import EmptyFile, NoText, UnsupportedType
from core.extract import office, pdf, plain
from core.extract.sniff import SUPPORTED_DESCRIPTION, SUPPORTED_TYPES, sniff

__all__ = ["SUPPORTED_TYPES", "Extraction", "ExtractionLimits", "Page", "extract", "sniff"]


@dataclass(frozen=True)
class ExtractionLimits:
    max_pages: int = 500
    max_chars: int = 1_000_000


@dataclass(frozen=True)
class Page:
    number: int
    text: str
    method: str


@dataclass(frozen=True)
class Extraction:
    """What a document says, page by page, and how we got it."""

    content_type: str
    pages: tuple[Page, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        return "\n\n".join(page.text for page in self.pages if page.text).strip()

    @property
    def page_count(self) -> int:
        return len(self.pages)

    @property
    def method(self) -> str:
        methods = sorted({page.method for page in self.pages})
        return "+".join(methods) if methods else "none"


def extract(data: bytes, *, limits: ExtractionLimits | None = None) -> Extraction:
    """Extract the text of a document.

    Raises:
        EmptyFile, UnsupportedType, CorruptFile, EncryptedFile, LimitExceeded, NoText: the
        document cannot be read; each carries a stable ``code`` and a sentence.
    """
    limits = limits or ExtractionLimits()
    if not data:
        raise EmptyFile("The file is empty (0 bytes); there is nothing to classify.")
    content_type = sniff(data)
    if content_type == "application/pdf":
        texts = pdf.page_texts(data, max_pages=limits.max_pages)
        method = "text_layer"
    elif content_type == office.DOCX:
        texts = [office.docx_text(data)]
        method = "docx"
    elif content_type == "text/plain":
        texts = [plain.decode_text(data)]
        method = "plain"
    else:
        raise UnsupportedType(f"This file type ({content_type}) is not supported. {SUPPORTED_DESCRIPTION}")
    pages, warnings = _bounded_pages(texts, method, limits.max_chars)
    result = Extraction(content_type=content_type, pages=pages, warnings=warnings)
    if not result.text.strip():
        raise NoText("The document contains no extractable text.")
    return result


def _bounded_pages(texts: list[str], method: str, max_chars: int) -> tuple[tuple[Page, ...], tuple[str, ...]]:
    pages: list[Page] = []
    remaining = max_chars
    warnings: list[str] = []
    for number, text in enumerate(texts, start=1):
        cleaned = plain.normalise_whitespace(text)
        if len(cleaned) > remaining:
            cleaned = cleaned[:remaining]
            warnings.append(f"text truncated to {max_chars} characters")
        remaining -= len(cleaned)
        pages.append(Page(number=number, text=cleaned, method=method))
        if remaining <= 0:
            break
    return tuple(pages), tuple(dict.fromkeys(warnings))
