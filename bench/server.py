"""Start a real `heron api` for a benchmark and stop it afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def heron_api(command: str = "api", **environment: str) -> Iterator[str]:
    """Run `heron api` (or `heron up`: API, console and worker process) on free loopback ports with
    ``HERON_*`` overrides; yields the API's base URL."""
    port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "HERON_API_PORT": str(port),
        "HERON_UI_PORT": str(ui_port),
        "HERON_LOG_LEVEL": "WARNING",
        **environment,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", command], env=env, cwd=ROOT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=5) as client:
            for _ in range(3000):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
