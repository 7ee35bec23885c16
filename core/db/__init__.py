"""Database engine, sessions and migrations (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, event, exc, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_MIGRATION_LOCK_KEY = 0x4845524F4E  # "HERON": the PostgreSQL advisory-lock key for migrations


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_size=10, max_overflow=20)
        _ping_after_idle(engine)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        # The API's request threads and its worker threads share the engine: enough connections
        # that none is opened (and set up) per request.
        pool_size=16,
        max_overflow=32,
    )
    _one_writer_at_a_time(engine)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


# A pooled connection idle for longer than this is tested before it is handed out.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_after_idle(engine: Engine) -> None:
    """Test a pooled connection before use only when it has been idle: ``pool_pre_ping`` tests
    every checkout, a round trip per transaction (a worker's batch makes five), although a
    connection returned a moment ago is as good as it was then. A database that went away while a
    connection was idle (a restart, a cut) is still found before use and the connection replaced;
    one lost while in use fails that use, which invalidates the pool either way."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        if record is not None:
            record.info["heron_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _handed_out(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        idle_since = record.info.get("heron_idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # new, or just returned
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError(f"pooled connection lost while idle: {error}") from error
        if not alive:
            raise exc.DisconnectionError("pooled connection lost while idle")


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "SAVEPOINT", "CREATE", "DROP", "ALTER")


class _WriterTurn:
    """One writer at a time: first among this process's threads, then among the machine's processes.

    Threads queue on a lock; the thread whose turn it is then takes an exclusive ``flock`` on a file
    beside the database, which the kernel hands to the next process the moment it is let go.
    """

    def __init__(self, lock_path: Path | None) -> None:
        self._threads = threading.Lock()
        self._lock_path = lock_path
        self._file: int | None = None  # opened on first use; a forked child opens its own

    def take(self, timeout: float) -> str:
        """Wait for this thread's turn, ``timeout`` at most (then the write proceeds and SQLite's
        own lock decides, as before); returns what was taken, for :meth:`give_back`."""
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            return ""
        try:
            descriptor = self._descriptor()
            while descriptor is not None:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return "processes"
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.0005)
        except OSError:  # no lock file (a read-only directory): threads only
            pass
        except BaseException:
            self._threads.release()
            raise
        return "threads"

    def give_back(self, taken: str) -> None:
        if taken == "processes" and self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
        if taken:
            self._threads.release()

    def _descriptor(self) -> int | None:
        if self._lock_path is not None and self._file is None:
            self._file = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        return self._file


_TURNS: dict[Path, _WriterTurn] = {}
_TURNS_LOCK = threading.Lock()


def _writer_turn(lock_path: Path) -> _WriterTurn:
    """One turn per database file and process, whichever engines write to it: two engines on one
    file would otherwise be two owners of its lock, and wait on each other within one thread."""
    with _TURNS_LOCK:
        return _TURNS.setdefault(lock_path, _WriterTurn(lock_path))


def _forget_turn_holders() -> None:
    # A fork copies a thread lock held by a thread that does not exist in the child, and the
    # parent's lock-file descriptor: it shares the parent's flock (one owner for both), and would
    # keep it held after the parent died.
    for turn in _TURNS.values():
        turn._threads = threading.Lock()
        if turn._file is not None:
            with contextlib.suppress(OSError):
                os.close(turn._file)
        turn._file = None


os.register_at_fork(after_in_child=_forget_turn_holders)


def _one_writer_at_a_time(engine: Engine) -> None:
    """Writers take turns on a lock that wakes the next one at once, across threads and processes.

    SQLite allows one writer; a second one waits in SQLite's busy handler, which sleeps in growing
    steps (up to 100 ms) whatever the first is doing. With the API, its worker threads and the
    embedded default's worker process writing to one file, that sleep was most of a document's
    latency under load. So a transaction takes its turn (:class:`_WriterTurn`) at its first write
    and gives it back when its connection returns to the pool (after its commit or rollback). The
    wait is bounded like SQLite's own, and a process that dies lets go.
    """
    database = engine.url.database
    on_disk = bool(database) and database != ":memory:" and not str(database).startswith("file:")
    turn = _writer_turn(Path(f"{database}.write-lock").resolve()) if on_disk else _WriterTurn(None)

    @event.listens_for(engine, "before_cursor_execute")
    def _take(connection, _cursor, statement, _parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        info = connection.connection.info  # the pooled connection's, as the pool events see it
        if not info.get("writing") and statement.lstrip()[:9].upper().startswith(_WRITES):
            info["writing"] = turn.take(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)

    def _give_back(_dbapi_connection, record, *_) -> None:  # type: ignore[no-untyped-def]
        if record is not None:
            turn.give_back(record.info.pop("writing", ""))

    for returned in ("checkin", "invalidate", "close"):  # back in the pool, or gone
        event.listen(engine, returned, _give_back)


def outside_transactions(engine: Engine) -> Connection:
    """A connection whose every statement is its own transaction: on PostgreSQL no BEGIN and COMMIT
    round trips around a statement that needs no company (use it as a context manager)."""
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


@contextlib.contextmanager
def read_scope(engine: Engine) -> Iterator[Session]:
    """A session for a read of one statement, outside any transaction (:func:`outside_transactions`:
    two of the three round trips a job view took, read once per document by every client that
    follows its job). Several statements here each see their own snapshot."""
    with (
        outside_transactions(engine) as connection,
        Session(bind=connection, expire_on_commit=False) as session,
    ):
        yield session


@contextlib.contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def one_at_a_time(session: Session, name: str) -> None:
    """Transactions that call this with the same ``name`` run one after another from here to their
    commit: for a check and the write that depends on it ("is a training run waiting? if not, add
    one"), which two requests at the same moment would otherwise both pass. PostgreSQL takes a
    transaction-scoped advisory lock (database-wide: deployments sharing one database in separate
    schemas take turns with each other too); SQLite's single writer is taken by a write that
    changes nothing (writers take their turn at their first write, :func:`_one_writer_at_a_time`)."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        session.execute(text("UPDATE alembic_version SET version_num = version_num WHERE 0 = 1"))


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest revision; safe when several processes start together."""
    with _migration_lock(engine), engine.begin() as connection:
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def head_revision() -> str | None:
    """The revision the migrations bring a database to."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        try:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:
            return None


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_suffix(".migrate.lock")
    with open(lock_path, "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
