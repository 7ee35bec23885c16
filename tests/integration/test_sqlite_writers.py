"""Two processes writing to one SQLite file (the embedded default's API and worker process)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

from core.db import make_engine

ROOT = Path(__file__).resolve().parents[2]
# The other process: opens a write transaction, says so, holds it HOLD seconds, commits, and prints
# when. 0.24 s lands between two of SQLite's busy-handler retries (at 228 and 328 ms of waiting).
HOLDER = """
import sys, time
from sqlalchemy import text
from core.db import make_engine, session_scope
engine = make_engine(sys.argv[1])
with session_scope(engine) as session:
    session.execute(text("INSERT INTO notes (body) VALUES ('other process')"))
    print("holding", flush=True)
    time.sleep(0.24)
print(time.time(), flush=True)
"""


def test_a_write_waiting_on_another_process_starts_as_that_one_commits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    late = []
    for _ in range(3):
        # Given another process in the middle of a write transaction
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, url], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        # When this process writes too
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO notes (body) VALUES ('this process')"))
        done = time.time()
        committed = float(holder.stdout.readline())
        assert holder.wait(timeout=30) == 0
        late.append(done - committed)
    # Then its write went through as the other committed, not at SQLite's next retry (~90 ms on)
    assert min(late) < 0.03, late
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM notes")).scalar() == 6
    engine.dispose()


def test_engines_on_one_file_share_one_lock_file_descriptor(tmp_path: Path) -> None:
    # Given a process that opens many engines on one database file over its life (a runtime each)
    url = f"sqlite:///{tmp_path / 'many.db'}"
    for i in range(20):
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE IF NOT EXISTS notes (body TEXT)"))
            connection.execute(text("INSERT INTO notes VALUES (:body)"), {"body": f"engine {i}"})
        engine.dispose()
    # Then the lock file beside it is open once, not once per engine
    lock_file = str(tmp_path / "many.db.write-lock")
    open_here = [fd for fd in Path("/proc/self/fd").iterdir() if _target(fd) == lock_file]
    assert len(open_here) == 1


def _target(fd: Path) -> str:
    try:
        return str(Path(fd).readlink())
    except OSError:
        return ""
