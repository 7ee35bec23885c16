"""The runtime the actors use: the one the host process installed, or one built from settings."""

from __future__ import annotations

import threading

from core.runtime import Runtime, open_runtime
from core.settings import get_settings
from workers.sender import QueueSender

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
            # A worker process of an external broker: what its actors send goes to that broker.
            _runtime = open_runtime(get_settings())
            _runtime.work = QueueSender(coalesce=True)
        return _runtime
