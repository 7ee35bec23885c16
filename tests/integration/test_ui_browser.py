"""Every console page in a real browser: `heron ui` as a process, headless Chromium as the user.

AppTest (test_ui*.py) runs the page scripts; only a browser shows that the pages are drawn — the
router, the websocket, the widgets' JavaScript. Each page is opened on a fresh database holding only
the starter model, and its screenshot and DOM are kept in var/screenshots/ (CI keeps them as
artifacts).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.browser import CHROMIUM, Page, chromium

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
IN_CI = os.environ.get("CI") == "true"
START_SECONDS = 240  # the first start on a cold cache trains the starter model
DRAW_SECONDS = 60

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not IN_CI,
        reason=f"Chromium is not installed at {CHROMIUM} (bash scripts/system-deps.sh --test installs it)",
    ),
    pytest.mark.slow,
    pytest.mark.timeout(START_SECONDS + 120),
]


@dataclass(frozen=True)
class Expected:
    """What a page shows on a fresh database with only the starter model."""

    name: str
    path: str
    title: str
    widgets: tuple[str, ...]  # data-testid values
    text: str


PAGES = [
    Expected("classify", "/", "Classify documents", ("stFileUploader",), "Choose one or more files above"),
    Expected("review", "/review", "Review", ("stSelectbox", "stMetric"), "No documents need review"),
    Expected(
        "approvals",
        "/approvals",
        "Approvals",
        ("stAlertContentInfo", "stExpander"),
        "No corrections are waiting for approval",
    ),
    Expected(
        "industries",
        "/industries",
        "Industries",
        ("stDataFrame", "stForm", "stFileUploader"),
        "Add an industry",
    ),
    Expected(
        "models", "/models", "Models", ("stDataFrame", "stMetric", "stVegaLiteChart"), "Evaluation report"
    ),
    Expected("activity", "/activity", "Activity", ("stTabs", "stMetric"), "No documents yet"),
]

# Streamlit marks its root with the script's state; the widgets' code is loaded lazily (a skeleton
# stands in until it arrives) and charts draw after that.
DRAWN = """(() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.dataset.testConnectionState === 'CONNECTED'
    && app.dataset.testScriptState === 'notRunning'
    && !document.querySelector('[data-testid="stSkeleton"], [data-testid="stAppSkeleton"]')
    && [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
         .every(chart => chart.querySelector('canvas, svg'));
})()"""
SNAPSHOT = """JSON.stringify({
  titles: [...document.querySelectorAll('[data-testid="stMain"] h1')].map(h => h.innerText.trim()),
  widgets: [...new Set([...document.querySelectorAll('[data-testid]')].map(e => e.dataset.testid))],
  links: [...document.querySelectorAll('[data-testid="stSidebarNavLink"]')].map(a => a.href),
  exceptions: [...document.querySelectorAll('[data-testid="stException"]')].map(e => e.innerText),
  text: document.querySelector('[data-testid="stMain"]')?.innerText ?? '',
  html: document.documentElement.outerHTML,
})"""

# Vague enough that the model asks a person (fixed words: a random token can sway it).
VAGUE_NOTE = "Please find the <i>document</i> we talked about attached & let me know what you think of it"
MARKS = """document.querySelectorAll('[data-testid="stMain"] mark').length"""
PANEL_HIDDEN = """(() => {
  const text = document.querySelector('[data-testid="stMain"]')?.innerText ?? '';
  return text.includes('Show more like this') && !text.includes('Label this and');
})()"""
PANEL_SHOWN = """(() => {
  const text = document.querySelector('[data-testid="stMain"]')?.innerText ?? '';
  return text.includes('Hide more like this') && text.includes('Label this and');
})()"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"CI=true but Chromium is missing at {CHROMIUM}: run `bash scripts/system-deps.sh --test`"
        )
    with chromium(width=1400, height=1000) as page:
        yield page


@pytest.fixture(scope="module")
def console_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The console's data directory: empty until the console prepares it."""
    return tmp_path_factory.mktemp("console")


@pytest.fixture(scope="module")
def console(browser: Page, console_dir: Path) -> Iterator[str]:
    """`heron ui` on a free port and an empty data dir (the embeddings cache is the session's).

    It asks for the browser first, so that a missing Chromium skips or fails before the console starts.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (console_dir / "console.log").open("wb")
    # Its own process group, so the console (heron ui, which becomes Streamlit) stops with the test.
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "ui"],
        env={**_environment(console_dir), "HERON_UI_PORT": str(port)},
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(base, process, console_dir / "console.log")
        yield base
    finally:
        _stop(process)
        log.close()


# Review first: a console whose first visitor opens a page's own address (a bookmark, after a
# restart) must still serve it through the router (its sidebar, its layout, its sign-in).
OPENED = sorted(PAGES, key=lambda page: page.name != "review")


@pytest.mark.parametrize("expected", OPENED, ids=[page.name for page in OPENED])
def test_page_renders(browser: Page, console: str, expected: Expected) -> None:
    # Given the console on a fresh database with the starter model
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screenshot = SCREENSHOTS / f"{expected.name}.png"
    # When the page is opened and Streamlit has drawn it
    browser.goto(console + expected.path)
    try:
        browser.wait_for(DRAWN, DRAW_SECONDS, f"{expected.path} to be drawn")
    finally:
        browser.screenshot(screenshot)
        page = json.loads(browser.evaluate(SNAPSHOT))
        (SCREENSHOTS / f"{expected.name}.html").write_text(page["html"], encoding="utf-8")
    # Then it shows its title and main widgets, and no exception box
    assert page["exceptions"] == [], f"{expected.path} shows an exception (see {screenshot})"
    assert page["titles"] == [expected.title]
    missing = [widget for widget in expected.widgets if widget not in page["widgets"]]
    assert missing == [], f"{expected.path} lacks {missing} (see {screenshot})"
    assert expected.text in page["text"]
    # ... with the router's navigation, not one link per file
    assert page["links"] == [console + other.path for other in PAGES], page["links"]


def test_sidebar_links_every_page(browser: Page, console: str) -> None:
    # Given the console's first page, signed in as the default admin
    browser.goto(console + "/")
    browser.wait_for(DRAWN, DRAW_SECONDS, "/ to be drawn")
    # When its navigation is read
    links = json.loads(browser.evaluate(SNAPSHOT))["links"]
    # Then it links every page at the address the tests above open
    assert links == [console + expected.path for expected in PAGES]


def test_review_marks_evidence_shows_more_like_this_and_answers_its_keys(
    browser: Page, console: str, console_dir: Path, tmp_path: Path
) -> None:
    # Given the console (its database prepared: a page has been drawn) and four near-copies of a
    # vague note that `heron classify` put into its database
    browser.goto(console + "/review")
    browser.wait_for(DRAWN, DRAW_SECONDS, "/review to be drawn")
    notes = []
    for number in range(1, 5):
        notes.append(tmp_path / f"note-{number}.txt")
        notes[-1].write_text(f"{VAGUE_NOTE} (copy {number}).", encoding="utf-8")
    classified = subprocess.run(
        [sys.executable, "-m", "cli.main", "classify", *map(str, notes)],
        env=_environment(console_dir),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=START_SECONDS,
    )
    assert classified.returncode == 0, classified.stdout + classified.stderr
    assert all(json.loads(line)["needs_review"] for line in classified.stdout.splitlines()), classified.stdout
    # When Review is opened
    screenshot = SCREENSHOTS / "review-document.png"
    browser.goto(console + "/review")
    try:
        browser.wait_for(DRAWN, DRAW_SECONDS, "/review to be drawn")
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.screenshot(screenshot)
    page = json.loads(browser.evaluate(SNAPSHOT))
    # Then the document is shown with its evidence marked, beside the "more like this" panel
    assert page["exceptions"] == [], f"/review shows an exception (see {screenshot})"
    assert browser.evaluate(MARKS) >= 1, f"no evidence is marked (see {screenshot})"
    assert "More like this" in page["text"] and "Label this and" in page["text"]
    assert "stDataFrame" in page["widgets"]
    # When the M key is pressed
    browser.press("m")
    # Then the panel is hidden, and its button offers to show it again
    browser.wait_for(f"{DRAWN} && {PANEL_HIDDEN}", DRAW_SECONDS, "M to hide the panel")
    # When M brings it back and L is pressed
    browser.press("m")
    browser.wait_for(f"{DRAWN} && {PANEL_SHOWN}", DRAW_SECONDS, "M to show the panel again")
    before = _corrections(console_dir)
    browser.press("l")
    # Then the document under review and the ticked look-alikes each get one pending correction,
    # all with the same label, from the keyboard alone
    deadline = time.monotonic() + DRAW_SECONDS
    while len(_corrections(console_dir)) == len(before) and time.monotonic() < deadline:
        time.sleep(0.2)
    added = _corrections(console_dir)[len(before) :]
    assert added, "L saved nothing"
    assert len({label for _, label, _ in added}) == 1 and {status for *_, status in added} == {"pending"}
    assert len({job for job, _, _ in added}) == len(added)


def _corrections(data_dir: Path) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(data_dir / "heron.db")) as db:
        return db.execute("SELECT job_id, label, status FROM feedback ORDER BY id").fetchall()


def _environment(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HERON_DATA_DIR": str(data_dir),
        "HERON_DATABASE_URL": "",
        "HERON_BROKER_URL": "",
        "HERON_API_HOST": "127.0.0.1",
        "HERON_API_KEYS": "",
        "HERON_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
    }


def _wait_until_healthy(base: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    with httpx.Client(base_url=base, timeout=5) as client:
        while True:
            if process.poll() is not None:
                pytest.fail(f"`heron ui` exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if client.get("/_stcore/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"`heron ui` did not answer in {START_SECONDS} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)


def _stop(process: subprocess.Popen) -> None:
    """Ctrl-C to the process group, as in a terminal: `heron ui` then stops Streamlit and waits for it."""
    for sig, seconds in ((signal.SIGINT, 20), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=seconds)
            return
