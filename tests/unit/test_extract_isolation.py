"""Extraction in child processes: a parse that runs too long or too big is stopped from outside."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import LimitExceeded
from core.extract import ExtractionLimits
from core.extract.isolation import ExtractionPool, Extractor, IsolationLimits, NeedsSlowLane
from tests.documents import (
    FINANCE,
    form_drawn_again_pdf_bytes,
    inflating_pdf_bytes,
    pdf_bytes,
    text_operator_pdf_bytes,
)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    files = {
        "operators": text_operator_pdf_bytes(1_500_000),  # pypdf: seconds, then its own budget stops
        "minutes": form_drawn_again_pdf_bytes(500_000, 40),  # pypdf: minutes, no budget stops it
        "inflating": inflating_pdf_bytes(1536),  # 1.5 MB that inflates to 1.5 GB
        "ordinary": pdf_bytes(FINANCE),
    }
    for name, data in files.items():
        (folder / f"{name}.pdf").write_bytes(data)
    return {name: folder / f"{name}.pdf" for name in files}


@pytest.fixture
def pool() -> Iterator[ExtractionPool]:
    pool = ExtractionPool(processes=1, max_memory_mb=1024)
    yield pool
    pool.close()


def test_a_parse_longer_than_the_limit_is_killed_and_the_process_replaced(hostile) -> None:  # type: ignore[no-untyped-def]
    # Given a limit of two seconds (half a second of grace) and a page pypdf needs minutes for
    pool = ExtractionPool(processes=1, max_memory_mb=1024, grace_seconds=0.5)
    limits = ExtractionLimits(max_seconds=2)
    # When it is extracted
    started = time.monotonic()
    with pytest.raises(LimitExceeded, match="HERON_EXTRACTION_TIMEOUT_SECONDS") as refused:
        pool.extract(hostile["minutes"], limits=limits, filename="minutes.pdf")
    # Then it is stopped (killed: a pypdf parse cannot be interrupted) within the limit and grace
    assert time.monotonic() - started < 2 + 0.5 + 1
    assert refused.value.code == "limit_exceeded"
    # And the next document is read by a fresh process
    assert "revenue" in pool.extract(hostile["ordinary"], limits=limits).text.lower()
    pool.close()


def test_a_stream_that_inflates_to_gigabytes_is_a_limit_not_corrupt(pool, hostile) -> None:  # type: ignore[no-untyped-def]
    # When a 1.5 MB PDF whose content stream inflates to 1.5 GB is extracted
    started = time.monotonic()
    with pytest.raises(LimitExceeded) as refused:
        pool.extract(hostile["inflating"], limits=ExtractionLimits(max_seconds=20))
    # Then it is refused quickly with limit_exceeded, and the child stayed under its memory limit
    assert time.monotonic() - started < 10 and refused.value.code == "limit_exceeded"
    assert max(pool.peak_memory_kb().values()) < 1024 * 1024


def test_a_document_needing_more_than_the_memory_limit_is_refused_naming_it(tmp_path: Path) -> None:
    # Given a child limited to 128 MB of address space and a 150 MB text file
    pool = ExtractionPool(processes=1, max_memory_mb=128)
    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:
        for _ in range(150):
            handle.write(b"ledger entry " * 80_000 + b"\n")
    try:
        # When it is extracted, Then the refusal names the memory limit
        with pytest.raises(LimitExceeded, match="HERON_EXTRACTION_MAX_MEMORY_MB"):
            pool.extract(big, limits=ExtractionLimits(max_seconds=30, max_chars=10**9))
        # And the pool still works
        assert pool.extract(b"a short invoice", limits=ExtractionLimits(), filename="a.txt").text
    finally:
        pool.close()


def test_the_fast_lane_hands_a_slow_document_on_and_the_slow_lane_names_the_limit(hostile) -> None:  # type: ignore[no-untyped-def]
    extractor = Extractor(IsolationLimits(fast_processes=1, slow_processes=1, fast_seconds=0.5))
    try:
        # When a slow document is tried in the fast lane, Then it is handed on after the budget
        started = time.monotonic()
        with pytest.raises(NeedsSlowLane):
            extractor.extract(hostile["operators"], limits=ExtractionLimits(max_seconds=20), lane="fast")
        assert time.monotonic() - started < 2
        # And the slow lane ends it with a limit code (pypdf's own operator budget, not "corrupt")
        with pytest.raises(LimitExceeded):
            extractor.extract(hostile["operators"], limits=ExtractionLimits(max_seconds=20), lane="slow")
        # And ordinary documents pass the fast lane untouched
        extraction = extractor.extract(hostile["ordinary"], limits=ExtractionLimits(), lane="fast")
        assert extraction.content_type == "application/pdf" and extraction.page_count == 1
    finally:
        extractor.close()


def test_extraction_processes_do_not_load_torch(pool) -> None:  # type: ignore[no-untyped-def]
    # When a child has read a document
    pool.extract(b"plain words about shipping", limits=ExtractionLimits(), filename="a.txt")
    # Then it is small (no torch, no model): well under 200 MB
    assert max(pool.peak_memory_kb().values()) < 200 * 1024


def test_processes_started_ahead_read_the_first_documents() -> None:
    # Given a pool of three whose first two processes were started ahead (a worker's warm-up)
    pool = ExtractionPool(processes=3, max_memory_mb=1024)
    try:
        pool.start(2)
        started = set(pool.peak_memory_kb())
        assert len(started) == 2
        # When documents are read one after another
        for i in range(3):
            pool.extract(f"plain words {i}".encode(), limits=ExtractionLimits(), filename=f"{i}.txt")
        # Then a process started ahead read them: none was started for them
        assert set(pool.peak_memory_kb()) == started
    finally:
        pool.close()
