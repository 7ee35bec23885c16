"""OCR with the real Tesseract and pdftoppm: images of known text must come back as that text."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from core.extract import ExtractionLimits, extract
from core.extract.ocr import OCR_ENVIRONMENT, run_parallel
from core.extract.sniff import BMP, GIF, JPEG, PDF, PNG, TIFF, WEBP
from tests.documents import (
    OCR_LINES,
    image_bytes,
    multipage_tiff_bytes,
    rotated_jpeg_bytes,
    scanned_pdf_bytes,
    text_image,
    word_recall,
)

pytestmark = pytest.mark.skipif(
    shutil.which("tesseract") is None or shutil.which("pdftoppm") is None,
    reason="Tesseract and poppler-utils are not installed (scripts/system-deps.sh installs them)",
)
EXPECTED = "\n".join(OCR_LINES)


@pytest.mark.parametrize(
    ("fmt", "options", "content_type"),
    [
        ("PNG", {}, PNG),
        ("JPEG", {"quality": 85}, JPEG),
        ("BMP", {}, BMP),
        ("WEBP", {"quality": 90}, WEBP),
        ("GIF", {}, GIF),
        ("TIFF", {"compression": "tiff_lzw"}, TIFF),
    ],
)
def test_images_are_ocrd_to_their_words(fmt: str, options: dict, content_type: str) -> None:
    # Given a scan-like image of four known lines
    data = image_bytes(text_image(), fmt, **options)
    # When it is extracted
    result = extract(data)
    # Then its type is sniffed and OCR recovers at least 95% of the words
    assert result.content_type == content_type
    assert result.method == "ocr" and result.ocr_pages == [1]
    assert word_recall(EXPECTED, result.text) >= 0.95, result.text


def test_a_small_low_resolution_image_is_scaled_up_and_read() -> None:
    from PIL import Image

    # Given the page shrunk to a sixth (283 pixels wide, letters about 6 pixels high), as a
    # thumbnail or a low-resolution phone picture (Tesseract alone read 11% of its words)
    page = text_image()
    small = page.resize((page.size[0] // 6, page.size[1] // 6), Image.Resampling.LANCZOS)
    # When it is extracted
    result = extract(image_bytes(small.convert("RGB"), "JPEG", quality=85))
    # Then OCR recovers nearly all of its words
    assert result.method == "ocr"
    assert word_recall(EXPECTED, result.text) >= 0.9, result.text


def test_phone_photo_orientation_from_exif_is_applied() -> None:
    # Given a JPEG stored sideways with EXIF "rotate 90°" (as phones save portrait shots)
    data = rotated_jpeg_bytes()
    # When it is extracted
    result = extract(data)
    # Then it is read upright
    assert word_recall(EXPECTED, result.text) >= 0.95, result.text


def test_every_page_of_a_multipage_tiff_is_ocrd_in_order() -> None:
    # Given a three-page TIFF, one known line block per page
    pages = [OCR_LINES[:2], OCR_LINES[2:3], OCR_LINES[3:]]
    # When it is extracted
    result = extract(multipage_tiff_bytes(pages))
    # Then there are three OCR'd pages, each with its own words
    assert result.page_count == 3 and result.ocr_pages == [1, 2, 3]
    for page, lines in zip(result.pages, pages, strict=True):
        assert word_recall("\n".join(lines), page.text) >= 0.95, page.text


def test_only_the_first_frame_of_an_animated_gif_is_read() -> None:
    # Given a two-frame GIF whose second frame says something else
    first = text_image(OCR_LINES[:2]).convert("P")
    second = text_image(("Completely different second frame",)).convert("P")
    data = image_bytes(first, "GIF", save_all=True, append_images=[second], duration=500)
    # When it is extracted
    result = extract(data)
    # Then only the first frame's words are there
    assert word_recall("\n".join(OCR_LINES[:2]), result.text) >= 0.95
    assert "different" not in result.text.lower()


def test_transparent_png_is_read_on_white() -> None:
    # Given black text on a fully transparent background (black once the alpha is dropped)
    text = text_image(OCR_LINES[:2])
    rgba = text.convert("RGBA")
    rgba.putalpha(text.point(lambda value: 255 - value))
    # When it is extracted
    result = extract(image_bytes(rgba, "PNG"))
    # Then the text is still found
    assert word_recall("\n".join(OCR_LINES[:2]), result.text) >= 0.95, result.text


def test_pdf_pages_without_a_text_layer_are_rendered_and_ocrd() -> None:
    # Given a PDF whose middle page is a scan and whose other pages have a text layer
    data = scanned_pdf_bytes(
        "Cover page of the consulting invoice with its own text layer.",
        OCR_LINES,
        "Final page: bank details and signatures, also with a text layer.",
    )
    # When it is extracted
    result = extract(data)
    # Then only the scanned page was OCR'd, it is recorded as such, and its words are found
    assert result.content_type == PDF
    assert [page.method for page in result.pages] == ["text_layer", "ocr", "text_layer"]
    assert result.ocr_pages == [2] and result.method == "ocr+text_layer"
    assert "1 of 3 pages OCR'd" in result.warnings
    assert word_recall(EXPECTED, result.pages[1].text) >= 0.95, result.pages[1].text


def test_a_scan_with_a_thin_text_layer_stamp_is_still_ocrd() -> None:
    # Given a scanned page whose only text layer is a scanner app's stamp
    import io

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    image = text_image()
    pdf.drawImage(ImageReader(image), 30, 500, 535, 535 * image.height / image.width)
    pdf.drawString(40, 30, "Scanned with PocketScanner Pro")
    pdf.showPage()
    pdf.save()
    # When it is extracted
    result = extract(buffer.getvalue())
    # Then the page image is OCR'd, because it holds far more text than the stamp
    assert result.ocr_pages == [1]
    assert word_recall(EXPECTED, result.text) >= 0.95, result.text


def test_ocr_pages_beyond_the_limit_are_skipped_with_a_warning() -> None:
    # Given a scanned PDF of three pages and a limit of one OCR page per document
    data = scanned_pdf_bytes(OCR_LINES[:1], OCR_LINES[1:2], OCR_LINES[2:3])
    # When it is extracted
    result = extract(data, limits=ExtractionLimits(max_ocr_pages=1))
    # Then one page is OCR'd, and the warning says how many were not
    assert result.ocr_pages == [1]
    assert any("2 pages without a text layer were not OCR'd" in warning for warning in result.warnings)


def test_run_parallel_uses_the_configured_number_of_workers_and_keeps_order() -> None:
    # Given work that takes a while, and a counter of how many run at once
    running, peak, lock = 0, 0, threading.Lock()

    def work(item: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return item * 10

    # When six items run with two workers
    results = run_parallel(range(6), work, processes=2)
    # Then two ran at once (never more) and the results keep the input order
    assert peak == 2 and results == [0, 10, 20, 30, 40, 50]


def test_tesseract_runs_with_one_openmp_thread() -> None:
    # The environment is explicit (core never reads os.environ), and it pins OpenMP to one thread
    assert OCR_ENVIRONMENT["OMP_THREAD_LIMIT"] == "1"


def test_an_ocr_language_tesseract_lacks_stops_heron_at_start_not_every_scan_later(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core.errors import ConfigurationError
    from core.runtime import open_runtime
    from core.settings import load_settings

    # Given HERON_OCR_LANGUAGE naming a language pack that is not installed (every scan and photo
    # then failed as `no_text`, "Could not initialize tesseract")
    settings = load_settings(data_dir=tmp_path, database_url="", broker_url="", ocr_language="eng+xyz")
    # When Heron starts, it refuses at once, naming the setting, the language and what is installed
    with pytest.raises(ConfigurationError) as caught:
        open_runtime(settings, prepare=False)
    assert "HERON_OCR_LANGUAGE" in caught.value.message and "xyz" in caught.value.message
    assert "eng" in caught.value.message.split("installed:")[1]
