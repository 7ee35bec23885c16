"""ast.parse from many threads at once (numpy's .npy headers, torch's import, Streamlit's pages)."""

from __future__ import annotations

import ast
import io
import threading

import numpy as np
import pytest

from core import astguard


def test_the_guard_is_in_place_exactly_where_cpython_needs_it() -> None:
    # Given Heron is imported (tests import core), ast.parse is serialised on 3.11 before 3.11.8 only
    assert getattr(ast.parse, "heron_serialised", False) == astguard.AFFECTED


@pytest.mark.skipif(not astguard.AFFECTED, reason="CPython ≥ 3.11.8 parses safely in several threads")
def test_a_worker_reading_a_cached_embedding_waits_while_another_thread_parses() -> None:
    # Given another thread is inside ast.parse (holding the guard, as a console page compiling)
    buffer = io.BytesIO()
    np.save(buffer, np.ones(384, dtype=np.float32))
    parsing, finish, read = threading.Event(), threading.Event(), threading.Event()

    def page() -> None:
        with astguard._LOCK:
            parsing.set()
            finish.wait(10)

    def worker() -> None:
        np.load(io.BytesIO(buffer.getvalue()))  # its header is read with ast.literal_eval
        read.set()

    threading.Thread(target=page).start()
    assert parsing.wait(5)
    # When a worker thread reads a cached embedding meanwhile
    threading.Thread(target=worker).start()
    # Then it waits for the parse to end instead of racing it, and then reads
    assert not read.wait(0.3)
    finish.set()
    assert read.wait(5)
