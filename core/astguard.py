"""A guard for a CPython 3.11 bug: ``ast.parse`` in two threads at once can fail.

Before 3.11.8, converting a parsed tree to Python objects kept its recursion counter in shared
state, and a garbage collection in the middle could hand the GIL to another thread doing the same
(gh-106905): one of them then raises ``SystemError: AST constructor recursion depth mismatch``.
Heron's processes parse in several threads at once: numpy reads each cached embedding's ``.npy``
header with ``ast.literal_eval`` in worker threads, torch parses its own source while it is
imported, and Streamlit compiles every page with ``ast.parse`` on each rerun. A console page then
failed to render while a worker thread trained (seen in CI). One lock around ``ast.parse`` keeps
them apart; it costs nothing measurable (a header parse takes microseconds) and is installed only on
the affected versions.
"""

from __future__ import annotations

import ast
import functools
import sys
import threading
from typing import Any

AFFECTED = sys.version_info[:2] == (3, 11) and sys.version_info < (3, 11, 8)
_LOCK = threading.RLock()


def install() -> None:
    """Serialise ``ast.parse`` (and ``ast.literal_eval``, which calls it) in this process."""
    if getattr(ast.parse, "heron_serialised", False):
        return
    original = ast.parse

    @functools.wraps(original)
    def parse(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return original(*args, **kwargs)

    parse.heron_serialised = True  # type: ignore[attr-defined]
    ast.parse = parse  # type: ignore[assignment]
