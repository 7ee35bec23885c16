"""Optional: every file of the development corpus ../shared/corpora/doctype-dev yields text.

The corpus is not part of the repository (see its README); without it these tests are skipped.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.errors import HeronError
from core.extract import ExtractionLimits, extract

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "doctype-dev"
IMAGES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif"}
# One image in three keeps the OCR part to ~10 s on two cores; the documents are all read.
IMAGE_SAMPLE_EVERY = 3
MIN_CHARS = 20

pytestmark = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"the development corpus is not present at {CORPUS} (optional)"
)


def _files(images: bool) -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and (p.suffix.lower() in IMAGES) == images)


def _problems(paths: list[Path], limits: ExtractionLimits, threads: int = 1) -> list[str]:
    def check(path: Path) -> str | None:
        try:
            result = extract(path, limits=limits, filename=path.name)
        except HeronError as error:
            return f"{path.relative_to(CORPUS)}: {error.code}: {error.message}"
        if len(result.text) < MIN_CHARS:
            return f"{path.relative_to(CORPUS)}: only {len(result.text)} characters"
        return None

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return [problem for problem in pool.map(check, paths) if problem]


def test_every_pdf_docx_and_xlsx_in_the_corpus_yields_text() -> None:
    # Given every non-image file of the corpus
    paths = _files(images=False)
    assert paths
    # When each is extracted, Then each yields text
    assert _problems(paths, ExtractionLimits()) == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tesseract") is None, reason="Tesseract is not installed")
def test_a_sample_of_the_corpus_images_yields_text_by_ocr() -> None:
    # Given one in three of the corpus's photos and scans (two documents at a time, like two workers)
    paths = _files(images=True)[::IMAGE_SAMPLE_EVERY]
    assert paths
    # When each is OCR'd with one Tesseract process per document, Then each yields text
    assert _problems(paths, ExtractionLimits(ocr_processes=1), threads=2) == []
