"""Headless Chromium driven over the DevTools protocol: no chromedriver, no extra package.

Streamlit draws its pages in the browser from messages on a websocket, so "the page loaded" means
"the script run has finished and the browser has drawn its result"; only a real browser can say
that. ``--dump-dom --virtual-time-budget`` does not wait for the websocket (virtual time runs ahead
of the network), so this module asks the live page instead, over the DevTools websocket
(``websockets`` is installed with Streamlit).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"
# Without the networking flags Chromium keeps calling Google, and a closed network refuses it.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-port=0",
)


class BrowserError(RuntimeError):
    """Chromium did not start, or a DevTools command failed."""


class Page:
    """One tab: navigate, evaluate JavaScript, take screenshots."""

    _ids = itertools.count(1)  # message ids, unique on the connection the tabs share

    def __init__(self, connection: ClientConnection, session_id: str | None = None) -> None:
        self._connection = connection
        self._session_id = session_id

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> dict:
        message_id = next(self._ids)
        message = {"id": message_id, "method": method, "params": params or {}}
        if self._session_id:
            message["sessionId"] = self._session_id
        self._connection.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            # Events (which carry no id) arrive in between; nothing here needs them.
            reply = json.loads(self._connection.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str, timeout: float = 30.0) -> None:
        """Open ``url``; return once its document has replaced the current one."""
        self.evaluate("window.replacedByNavigation = true")
        self.send("Page.navigate", {"url": url})
        self.wait_for("!window.replacedByNavigation", timeout, f"{url} to load")

    def wait_for(self, expression: str, timeout: float, what: str) -> None:
        """Poll the JavaScript ``expression`` until it is true; raise with ``what`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        error = None
        while True:
            try:
                if self.evaluate(expression):
                    return
            except BrowserError as failure:  # e.g. the page is between two documents
                error = failure
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Waited {timeout:.0f} s for {what}" + (f" (last error: {error})" if error else "")
                )
            time.sleep(0.1)

    def press(self, key: str) -> None:
        """Press and release one letter or digit key, as a person at the keyboard."""
        code = f"Key{key.upper()}" if key.isalpha() else f"Digit{key}"
        for kind, text in (("keyDown", key), ("keyUp", "")):
            self.send(
                "Input.dispatchKeyEvent",
                {
                    "type": kind,
                    "key": key,
                    "code": code,
                    "text": text,
                    "windowsVirtualKeyCode": ord(key.upper()),
                },
            )

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000, start_timeout: float = 30.0) -> Iterator[Page]:
    """Start headless Chromium with a fresh profile; yield one tab of ``width`` x ``height``."""
    profile = Path(tempfile.mkdtemp(prefix="heron-chromium-"))
    log = (profile.parent / f"{profile.name}.log").open("wb")
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # Chromium picks a free port and writes it (and the browser's websocket path) here.
        active_port = profile / "DevToolsActivePort"
        deadline = time.monotonic() + start_timeout
        while len(lines := _read_lines(active_port)) < 2:
            if process.poll() is not None or time.monotonic() > deadline:
                output = Path(log.name).read_text(errors="replace")[-2000:]
                raise BrowserError(f"Chromium did not start (exit code {process.poll()}):\n{output}")
            time.sleep(0.05)
        with connect(f"ws://127.0.0.1:{lines[0]}{lines[1]}", max_size=None, open_timeout=10) as connection:
            browser = Page(connection)
            target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            attached = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})
            page = Page(connection, attached["sessionId"])
            page.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            try:
                yield page
            finally:
                # Closing it this way lets Chromium stop (and reap) its own helper processes.
                with contextlib.suppress(Exception):
                    browser.send("Browser.close", timeout=5)
    finally:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)
        Path(log.name).unlink(missing_ok=True)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []
