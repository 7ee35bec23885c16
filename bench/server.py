"""Start a real `heron api` for a benchmark and stop it afterwards."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def heron_api(**environment: str) -> Iterator[str]:
    """Run `heron api` on a free loopback port with ``HERON_*`` overrides; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HERON_API_PORT": str(port), "HERON_LOG_LEVEL": "WARNING", **environment}
    server = subprocess.Popen([sys.executable, "-m", "cli.main", "api"], env=env, cwd=ROOT)
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
        server.terminate()
        server.wait(timeout=20)
