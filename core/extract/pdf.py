"""PDF: the text layer page by page (pypdf); pages without one are rendered and OCR'd."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pypdf import PageObject, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PdfReadError, PyPdfError

from core.errors import CorruptFile, EncryptedFile, LimitExceeded
from core.extract import ocr
from core.extract.image import prepare_for_ocr
from core.extract.types import OCR, TEXT_LAYER, Context, Parsed, Source

logging.getLogger("pypdf").setLevel(logging.ERROR)

# A page with fewer letters/digits than this in its text layer is treated as scanned (a stamped
# page number or a stray watermark does not make a page readable).
NEAR_EMPTY_CHARS = 16
# A page with a thin text layer (e.g. "Scanned by …") and a page-sized image is OCR'd as well, and
# whichever reading has more text wins.
THIN_TEXT_CHARS = 200
PAGE_IMAGE_PIXELS = 500_000
_ENCRYPTED = "The PDF is password-protected; remove the password and upload it again."
PARSE_ERRORS = (
    PdfReadError,
    PyPdfError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    AssertionError,
    RecursionError,
    zlib.error,
    OSError,
    NotImplementedError,
)


def extract_pdf(source: Source, context: Context) -> Parsed:
    """Every page's text layer; near-empty pages (scans) OCR'd, up to the OCR page limit.

    Raises:
        EncryptedFile: the empty password does not open it.
        LimitExceeded: more pages than allowed, or the deadline passed.
        CorruptFile: it cannot be parsed at all.
    """
    limits = context.limits
    with source.open() as stream:
        reader = _open(stream)
        try:
            count = len(reader.pages)
        except LimitReachedError as exc:
            raise _beyond_reader_limit("its page tree", exc) from exc
        except PARSE_ERRORS as exc:
            raise CorruptFile(f"The PDF's page tree cannot be read: {exc}") from exc
        if count > limits.max_pages:
            raise LimitExceeded(f"The PDF has {count} pages; the limit is {limits.max_pages}.")
        parsed = Parsed()
        texts: list[str] = []
        wants_ocr: list[int] = []
        unreadable = 0
        for index in range(count):
            context.deadline.check(f"reading the text of page {index + 1} of {count}")
            try:
                page = reader.pages[index]
                text = page.extract_text() or ""
            except LimitReachedError as exc:
                raise _beyond_reader_limit(f"page {index + 1}", exc) from exc
            except PARSE_ERRORS:
                unreadable += 1
                page, text = None, ""
            texts.append(text)
            if _needs_ocr(page, text):
                wants_ocr.append(index)
            # pypdf keeps every object it has parsed (images included) for the reader's lifetime;
            # forgetting them page by page keeps memory flat instead of growing with the file.
            reader.resolved_objects.clear()
        if unreadable == count and count:
            raise CorruptFile(f"None of the PDF's {count} pages can be read.")
        if unreadable:
            parsed.warnings.append(f"{unreadable} of {count} pages have an unreadable text layer")
        methods = [TEXT_LAYER] * count
        if wants_ocr:
            _ocr_pages(source, reader, wants_ocr, texts, methods, parsed, context)
    if not count:
        parsed.warnings.append("the PDF has no pages")
    parsed.pages = list(zip(texts, methods, strict=True))
    return parsed


def _open(stream: BinaryIO) -> PdfReader:
    try:
        reader = PdfReader(stream, strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError as exc:  # an AES cipher without the cryptography package
                raise EncryptedFile(f"{_ENCRYPTED} ({exc})") from exc
            if not opened:
                raise EncryptedFile(_ENCRYPTED)
        return reader
    except FileNotDecryptedError as exc:
        raise EncryptedFile(_ENCRYPTED) from exc
    except (EncryptedFile, CorruptFile):
        raise
    except LimitReachedError as exc:
        raise _beyond_reader_limit("its structure", exc) from exc
    except PARSE_ERRORS as exc:
        raise CorruptFile(f"The PDF cannot be read: {exc}") from exc


def _beyond_reader_limit(where: str, exc: LimitReachedError) -> LimitExceeded:
    # pypdf stops streams that inflate too far or hold too many operators: the file is not
    # broken, it asks for more work than a document may cause.
    return LimitExceeded(f"The PDF's {where} goes beyond the PDF reader's safety limits ({exc}).")


def _letters(text: str) -> int:
    return sum(1 for character in text if character.isalnum())


def _needs_ocr(page: PageObject | None, text: str) -> bool:
    letters = _letters(text)
    if letters < NEAR_EMPTY_CHARS:
        return True
    return page is not None and letters < THIN_TEXT_CHARS and _largest_image_pixels(page) >= PAGE_IMAGE_PIXELS


def _largest_image_pixels(page: PageObject) -> int:
    """Pixels of the page's largest image, from the image dictionaries (nothing is decoded)."""
    try:
        xobjects = page.get("/Resources", {}).get_object().get("/XObject", {}).get_object()
        largest = 0
        for reference in list(xobjects.values())[:64]:
            xobject = reference.get_object()
            if xobject.get("/Subtype") == "/Image":
                largest = max(largest, int(xobject.get("/Width", 0)) * int(xobject.get("/Height", 0)))
        return largest
    except (*PARSE_ERRORS, ArithmeticError):
        return 0


def _ocr_pages(
    source: Source,
    reader: PdfReader,
    wanted: list[int],
    texts: list[str],
    methods: list[str],
    parsed: Parsed,
    context: Context,
) -> None:
    limits = context.limits
    count = len(texts)
    chosen = wanted[: limits.max_ocr_pages]
    if len(chosen) < len(wanted):
        parsed.warnings.append(
            f"{len(wanted) - len(chosen)} pages without a text layer were not OCR'd "
            f"(limit of {limits.max_ocr_pages} OCR pages per document)"
        )
    if not ocr.available():
        parsed.warnings.append(
            f"{len(chosen)} pages have no text layer but OCR is unavailable: tesseract is not installed"
        )
        return
    failures: list[str] = []

    def recognise(job: tuple[int, bytes | None, int]) -> str:
        index, image, dpi = job
        if image == b"":
            return ""
        try:
            if image is None:
                image = ocr.render_pdf_page(pdf_path, index + 1, dpi=dpi, deadline=context.deadline)
            return ocr.ocr_image(
                image,
                language=limits.ocr_language,
                processes=limits.ocr_processes,
                deadline=context.deadline,
                dpi=dpi,
            )
        except (ocr.OcrFailed, ocr.OcrUnavailable) as exc:
            failures.append(f"page {index + 1}: {exc}")
            return ""

    with _on_disk(source) as pdf_path:
        if ocr.can_render_pdf():
            jobs = ((index, None, _page_dpi(reader, index)) for index in chosen)
        else:
            jobs = ((index, _embedded_image(reader, index), 0) for index in chosen)
        recognised = ocr.run_parallel(jobs, recognise, processes=limits.ocr_processes)
    done = 0
    for index, text in zip(chosen, recognised, strict=True):
        if _letters(text) > _letters(texts[index]):
            texts[index] = text
            methods[index] = OCR
            done += 1
    if failures:
        parsed.warnings.append("OCR failed on " + "; ".join(failures[:5]))
    if done:
        parsed.warnings.append(f"{done} of {count} pages OCR'd")


def _page_dpi(reader: PdfReader, index: int) -> int:
    try:
        box = reader.pages[index].cropbox
        return ocr.render_dpi(float(box.width), float(box.height))
    except (*PARSE_ERRORS, ArithmeticError):
        return ocr.OCR_DPI


def _embedded_image(reader: PdfReader, index: int) -> bytes | None:
    """Without pdftoppm: the page's largest embedded image (a scan is one image per page)."""
    try:
        images = list(reader.pages[index].images)
        if not images:
            return b""
        largest = max(images, key=lambda image: image.image.size[0] * image.image.size[1])
        return prepare_for_ocr(largest.image)
    except (*PARSE_ERRORS, ArithmeticError):
        return b""


@contextlib.contextmanager
def _on_disk(source: Source) -> Iterator[Path]:
    """pdftoppm needs a file: the stored original, or one temporary copy of the bytes."""
    if source.path is not None:
        yield source.path
        return
    with tempfile.NamedTemporaryFile(prefix="heron-", suffix=".pdf") as handle:
        handle.write(source.read())
        handle.flush()
        yield Path(handle.name)
