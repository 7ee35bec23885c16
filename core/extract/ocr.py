"""Tesseract and poppler as subprocesses, several pages at a time.

Each Tesseract process gets ``OMP_THREAD_LIMIT=1``: its OpenMP threads fight each other on a small
machine (a page takes ~11 s instead of ~1.5 s), so parallelism comes from running one process per
core instead. A process-wide semaphore keeps the number of Tesseract processes at
``ocr_processes`` even when several documents are extracted at once (worker threads).
"""

from __future__ import annotations

import functools
import math
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from core.extract.types import Deadline

# The child environment is built here, not inherited: core never reads the environment, and a
# parent's OMP_NUM_THREADS or a stray TESSDATA setting must not change how OCR behaves.
OCR_ENVIRONMENT = {"OMP_THREAD_LIMIT": "1", "LC_ALL": "C"}
OCR_DPI = 300
# A page is rendered at OCR_DPI unless that would exceed this many pixels (posters, CAD sheets).
MAX_RENDER_PIXELS = 16_000_000

Item = TypeVar("Item")
Result = TypeVar("Result")


class OcrUnavailable(Exception):
    """Tesseract (or pdftoppm) is not installed; the caller turns this into a warning."""


class OcrFailed(Exception):
    """Tesseract ran but could not read this image; the caller turns this into a warning."""


@functools.cache
def _program(name: str) -> str | None:
    return shutil.which(name)


def available() -> bool:
    return _program("tesseract") is not None


def missing_languages(language: str) -> list[str]:
    """The languages of ``language`` (``eng+deu``) Tesseract has no data for; none when Tesseract
    is not installed (images then get their own warning)."""
    installed = installed_languages()
    if installed is None:
        return []
    return [name for name in language.split("+") if name not in installed]


@functools.cache
def installed_languages() -> frozenset[str] | None:
    tesseract = _program("tesseract")
    if tesseract is None:
        return None
    try:
        listed = subprocess.run(
            [tesseract, "--list-langs"], capture_output=True, text=True, timeout=30, env=OCR_ENVIRONMENT
        )
    except (OSError, subprocess.SubprocessError):
        return None
    # The first line is a header ("List of available languages in …"); stdout or stderr by version.
    lines = (listed.stdout or listed.stderr).splitlines()[1:]
    return frozenset(line.strip() for line in lines if line.strip())


def can_render_pdf() -> bool:
    return _program("pdftoppm") is not None


@functools.cache
def _slots(processes: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(processes)


def ocr_image(
    image: bytes, *, language: str, processes: int, deadline: Deadline, dpi: int | None = None
) -> str:
    """Run Tesseract on an encoded image (PNG/PNM/TIFF…) and return its text.

    Raises:
        OcrUnavailable: Tesseract is not installed.
        OcrFailed: Tesseract exited with an error.
        LimitExceeded: the document's deadline passed.
    """
    tesseract = _program("tesseract")
    if tesseract is None:
        raise OcrUnavailable("tesseract is not installed")
    command = [tesseract, "stdin", "stdout", "-l", language, "--psm", "3"]
    if dpi:
        command += ["--dpi", str(dpi)]
    output = _run(command, image, deadline=deadline, processes=processes, doing="running OCR")
    return output.decode("utf-8", errors="replace")


def render_pdf_page(pdf: Path, page_number: int, *, dpi: int, deadline: Deadline) -> bytes:
    """One page of a PDF as a greyscale PGM image (pdftoppm).

    Raises:
        OcrUnavailable: pdftoppm is not installed.
        OcrFailed: pdftoppm could not render the page.
        LimitExceeded: the document's deadline passed.
    """
    pdftoppm = _program("pdftoppm")
    if pdftoppm is None:
        raise OcrUnavailable("pdftoppm (poppler-utils) is not installed")
    page = str(page_number)
    command = [pdftoppm, "-r", str(dpi), "-gray", "-f", page, "-l", page, "-singlefile", str(pdf)]
    return _run(command, b"", deadline=deadline, processes=None, doing=f"rendering page {page_number}")


def render_dpi(width_points: float, height_points: float) -> int:
    """OCR_DPI, lowered for oversized pages so a render stays within MAX_RENDER_PIXELS."""
    area_square_inches = max(width_points, 1.0) * max(height_points, 1.0) / (72.0 * 72.0)
    fitting = math.sqrt(MAX_RENDER_PIXELS / area_square_inches)
    return max(36, min(OCR_DPI, int(fitting)))


def _run(command: list[str], stdin: bytes, *, deadline: Deadline, processes: int | None, doing: str) -> bytes:
    slots = _slots(processes) if processes else None
    if slots is not None and not slots.acquire(timeout=max(deadline.remaining(), 0.001)):
        raise deadline.exceeded(doing)
    try:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise deadline.exceeded(doing)
        completed = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            timeout=remaining,
            env=OCR_ENVIRONMENT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed the child already
        raise deadline.exceeded(doing) from exc
    except FileNotFoundError as exc:
        raise OcrUnavailable(f"{command[0]} cannot be started: {exc}") from exc
    finally:
        if slots is not None:
            slots.release()
    if completed.returncode != 0:
        message = completed.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise OcrFailed(
            message[-1] if message else f"{Path(command[0]).name} exited with {completed.returncode}"
        )
    return completed.stdout


def run_parallel(items: Iterable[Item], work: Callable[[Item], Result], *, processes: int) -> list[Result]:
    """``[work(item) for item in items]`` with up to ``processes`` calls at once, in order.

    Items are drawn lazily in the calling thread (so e.g. TIFF frames are decoded one at a time,
    never all held in memory), with at most ``processes`` + 1 waiting for a free slot. The first
    exception cancels what has not started and is re-raised.
    """
    processes = max(1, processes)
    if processes == 1:
        return [work(item) for item in items]
    results: list[Result] = []
    pending: deque[Future[Result]] = deque()
    with ThreadPoolExecutor(max_workers=processes, thread_name_prefix="heron-ocr") as pool:
        try:
            for item in items:
                pending.append(pool.submit(work, item))
                while len(pending) > processes:
                    results.append(pending.popleft().result())
            while pending:
                results.append(pending.popleft().result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return results
