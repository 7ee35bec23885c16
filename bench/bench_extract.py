"""Extraction throughput and memory: text-layer PDF, DOCX, OCR on 1 and 2 processes, peak RSS.

    python bench/bench_extract.py [--pdf-pages 200] [--docx 200] [--ocr-pages 8]

Documents are generated here (reportlab, python-docx, PIL) so the numbers are reproducible.
OCR pages are dense A4 pages rendered at 300 dpi by pdftoppm, as a scanned contract would be.
Targets (issue 3): text-layer PDF >= 50 pages/s, OCR >= 1 page/s on 2 cores, bounded memory.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.extract import ExtractionLimits, extract  # noqa: E402
from tests.documents import CLINICAL, EDUCATION, FINANCE, LEGAL, TECHNOLOGY, font_path  # noqa: E402

PARAGRAPHS = [CLINICAL, FINANCE, LEGAL, EDUCATION, TECHNOLOGY]


def dense_text_pdf(pages: int, *, photos: bool = False) -> bytes:
    """A PDF with a full page of text (~45 lines, ~3,500 characters) on every page.

    With ``photos``, every page also carries its own incompressible 300×200 image (~180 kB), so
    the file is large (~36 MB for 200 pages) while the text stays the same: memory must not
    follow the file's size.
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    for number in range(pages):
        if photos:
            from PIL import Image

            photo = Image.frombytes("RGB", (300, 200), os.urandom(300 * 200 * 3))
            pdf.drawImage(ImageReader(photo), 300, 60, 240, 160)
        y = 800
        body = " ".join(PARAGRAPHS[(number + k) % len(PARAGRAPHS)] for k in range(4))
        for line in textwrap.wrap(f"Page {number + 1}. {body}", 95):
            pdf.drawString(40, y, line)
            y -= 16
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def scanned_pdf(pages: int) -> bytes:
    """Image-only A4 pages of dense 11-point-like text at 200 dpi (a typical office scan)."""
    from PIL import Image, ImageDraw, ImageFont
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    font = ImageFont.truetype(font_path(), 30)
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    for number in range(pages):
        image = Image.new("L", (1654, 2339), 255)  # A4 at 200 dpi
        draw = ImageDraw.Draw(image)
        body = " ".join(PARAGRAPHS[(number + k) % len(PARAGRAPHS)] for k in range(4))
        for row, line in enumerate(textwrap.wrap(body, 80)[:40]):
            draw.text((120, 150 + row * 50), line, font=font, fill=0)
        pdf.drawImage(ImageReader(image), 0, 0, *A4)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def docx_document() -> bytes:
    import docx

    document = docx.Document()
    document.sections[0].header.paragraphs[0].text = "Northwind Trading Ltd"
    for paragraph in PARAGRAPHS * 4:
        document.add_paragraph(paragraph)
    table = document.add_table(rows=20, cols=4)
    for r in range(20):
        for c in range(4):
            table.cell(r, c).text = f"cell {r}.{c}"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.1f}"


# The child's own high-water mark: ru_maxrss would include the forked parent's pages on Linux.
_PEAK_KB = (
    "def peak():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            return int(line.split()[1])\n"
    "    import resource\n"
    "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
)


def peak_rss_child(path: Path) -> dict:
    """Extract ``path`` in a fresh process and report its peak RSS, before and after."""
    code = _PEAK_KB + (
        "import sys, json; sys.path.insert(0, sys.argv[2])\n"
        "from core.extract import extract; from pathlib import Path\n"
        "before = peak()\n"
        "result = extract(Path(sys.argv[1]))\n"
        "print(json.dumps({'before_kb': before, 'after_kb': peak(), 'pages': result.page_count,"
        " 'chars': len(result.text)}))\n"
    )
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    command = [sys.executable, "-c", code, str(path), str(ROOT)]
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf-pages", type=int, default=200)
    parser.add_argument("--docx", type=int, default=200)
    parser.add_argument("--ocr-pages", type=int, default=8)
    args = parser.parse_args()
    # Other work on the machine halves the OCR numbers; the load average says whether it was quiet.
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, load {load}")

    pdf = dense_text_pdf(args.pdf_pages)
    extract(dense_text_pdf(2))  # warm-up: imports
    started = time.perf_counter()
    result = extract(pdf)
    elapsed = time.perf_counter() - started
    assert result.page_count == args.pdf_pages and result.method == "text_layer"
    print(
        f"text-layer PDF: {rate(args.pdf_pages, elapsed)} pages/s "
        f"({args.pdf_pages} pages, {len(pdf) / 1e6:.1f} MB, {len(result.text):,} chars in {elapsed:.2f} s)"
    )

    document = docx_document()
    extract(document)
    started = time.perf_counter()
    for _ in range(args.docx):
        extract(document)
    elapsed = time.perf_counter() - started
    size = f"{len(document) / 1e3:.0f} kB"
    print(f"DOCX: {rate(args.docx, elapsed)} documents/s ({args.docx} documents of {size})")

    scan = scanned_pdf(args.ocr_pages)
    with tempfile.TemporaryDirectory() as workdir:
        scan_path = Path(workdir) / "scan.pdf"
        scan_path.write_bytes(scan)
        for processes in (1, 2):
            limits = ExtractionLimits(ocr_processes=processes, max_seconds=600)
            started = time.perf_counter()
            result = extract(scan_path, limits=limits)
            elapsed = time.perf_counter() - started
            assert len(result.ocr_pages) == args.ocr_pages, result.warnings
            words = len(result.text.split())
            label = "in-run baseline" if processes == 1 else "target >= 1 page/s"
            print(
                f"OCR, {processes} tesseract process{'es' if processes > 1 else ''}: "
                f"{rate(args.ocr_pages, elapsed)} pages/s ({args.ocr_pages} A4 pages rendered at 300 dpi, "
                f"{words:,} words in {elapsed:.1f} s; {label})"
            )

        for photos in (False, True):
            big = Path(workdir) / f"big-{photos}.pdf"
            big.write_bytes(dense_text_pdf(200, photos=photos))
            memory = peak_rss_child(big)
            kind = "text + a photo per page" if photos else "text only"
            print(
                f"peak RSS, 200-page PDF ({kind}, {big.stat().st_size / 1e6:.1f} MB) read from disk: "
                f"{memory['after_kb'] / 1024:.0f} MB (interpreter + imports before extracting: "
                f"{memory['before_kb'] / 1024:.0f} MB; {memory['chars']:,} chars kept)"
            )


if __name__ == "__main__":
    main()
