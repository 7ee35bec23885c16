"""The runtime the actors use: the one the host process installed, or one built from settings."""

from __future__ import annotations

import threading

from core.runtime import Runtime, open_runtime
from core.settings import get_settings

_lock = threading.Lock()
_runtime: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _runtime
    with _lock:
        _runtime = runtime


def runtime() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = open_runtime(get_settings())
        return _runtime
