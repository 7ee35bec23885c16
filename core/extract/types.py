"""The values extraction passes around: limits, the input, pages and the result."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, Protocol

from core.errors import LimitExceeded

TEXT_LAYER = "text_layer"
OCR = "ocr"


@dataclass(frozen=True)
class ExtractionLimits:
    """How much work one document may cause; built from the ``HERON_*`` settings in one place.

    Attributes:
        max_pages: Pages (PDF pages, slides, sheets, TIFF frames) above which a document is refused.
        max_ocr_pages: Pages OCR'd per document; further pages without a text layer are skipped
            with a warning.
        max_chars: Characters of text kept; the rest is dropped with a warning.
        max_seconds: Wall time for extracting one document before it is refused.
        max_image_pixels: Pixels an image (or a TIFF frame) may have; larger ones are refused as
            likely decompression bombs.
        ocr_processes: Tesseract processes run in parallel for the pages of one document.
        ocr_language: Tesseract language(s), e.g. ``eng`` or ``eng+deu``.
        zip_max_members: Members (at every nesting level together) a ZIP may have.
        zip_max_total_bytes: Uncompressed bytes a ZIP (or an Office file) may expand to.
        zip_max_ratio: Uncompressed/compressed ratio above which a large member is refused as a bomb.
        max_depth: How many containers (ZIPs, e-mails) may be nested; 1 = no container inside another.
    """

    max_pages: int = 500
    max_ocr_pages: int = 50
    max_chars: int = 1_000_000
    max_seconds: float = 120.0
    max_image_pixels: int = 90_000_000
    ocr_processes: int = 2
    ocr_language: str = "eng"
    zip_max_members: int = 1000
    zip_max_total_bytes: int = 512 * 1024 * 1024
    zip_max_ratio: int = 100
    max_depth: int = 2


@dataclass(frozen=True)
class Page:
    """One page (or slide, sheet, message part) of text and how it was obtained."""

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
    def page_spans(self) -> list[tuple[int, int, int]]:
        """(page number, start, end) of each page with text, as offsets into ``text``."""
        written = [page for page in self.pages if page.text]
        joined = "\n\n".join(page.text for page in written)
        lead = len(joined) - len(joined.lstrip())
        length = len(joined.strip())
        spans, position = [], -lead
        for page in written:
            start, end = position, position + len(page.text)
            spans.append((page.number, min(max(start, 0), length), min(max(end, 0), length)))
            position = end + 2
        return spans

    @property
    def page_count(self) -> int:
        return len(self.pages)

    @property
    def method(self) -> str:
        methods = sorted({page.method for page in self.pages})
        return "+".join(methods) if methods else "none"

    @property
    def ocr_pages(self) -> list[int]:
        """Numbers of the pages whose text came from OCR."""
        return [page.number for page in self.pages if page.method == OCR]


@dataclass
class Parsed:
    """What a format module returns: page texts with their methods, and warnings."""

    pages: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Deadline:
    """The wall-time budget of one document, checked between steps and given to subprocesses."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._ends - time.monotonic())

    def check(self, doing: str) -> None:
        if time.monotonic() >= self._ends:
            raise self.exceeded(doing)

    def exceeded(self, doing: str) -> LimitExceeded:
        return LimitExceeded(
            f"Extraction took longer than the limit of {self.seconds:g} s (stopped while {doing})."
        )


@dataclass(frozen=True)
class Source:
    """The document: bytes in memory, or a file on disk that is never read whole unless needed."""

    data: bytes | None = None
    path: Path | None = None

    @classmethod
    def of(cls, value: bytes | Path | str) -> Source:
        if isinstance(value, bytes | bytearray | memoryview):
            return cls(data=bytes(value))
        return cls(path=Path(value))

    @property
    def file(self) -> Path:
        if self.path is None:
            raise ValueError("this source is bytes in memory, not a file")
        return self.path

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.file.stat().st_size

    def head(self, count: int = 4096) -> bytes:
        if self.data is not None:
            return self.data[:count]
        with open(self.file, "rb") as handle:
            return handle.read(count)

    def read(self) -> bytes:
        return self.data if self.data is not None else self.file.read_bytes()

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """A seekable binary stream over the document."""
        if self.data is not None:
            yield io.BytesIO(self.data)
        else:
            with open(self.file, "rb") as handle:
                yield handle


class NestedReader(Protocol):
    def __call__(
        self,
        source: Source | bytes,
        context: Context,
        *,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> Extraction: ...


@dataclass(frozen=True)
class Context:
    """What every format module gets besides the bytes: the limits, the clock, the nesting, and
    the reader of a document inside this one (an e-mail's attachment, a ZIP member): the
    dispatcher in ``core.extract``, handed down so that containers need not import it."""

    limits: ExtractionLimits
    deadline: Deadline
    depth: int = 0
    nested: NestedReader | None = field(default=None, compare=False)

    def inner(self) -> Context:
        """The context of a document one level deeper: same limits, same clock."""
        return replace(self, depth=self.depth + 1)

    def read_nested(
        self, source: Source | bytes, *, filename: str | None = None, content_type: str | None = None
    ) -> Extraction:
        """Read a document inside this one with the dispatcher (at this context's depth)."""
        if self.nested is None:
            raise RuntimeError("This extraction context has no reader for nested documents.")
        return self.nested(source, self, filename=filename, content_type=content_type)
