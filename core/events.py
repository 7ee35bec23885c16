"""Waking whoever waits for a job, instead of having them poll the database.

A job ends (COMPLETED or FAILED) in exactly one place, ``core.services.jobs._finish``, which names it
in its session (:func:`job_ended`). When that session commits, every waiter in this process is woken
(:data:`JOB_EVENTS`); on PostgreSQL the same commit also sends ``NOTIFY heron_job_ended``, which a
listener thread in each process that waits (the API's) turns into the same wake-up. So:

* embedded (SQLite, worker threads in the API's process): the worker's commit wakes the API's
  waiter directly;
* scaled on PostgreSQL (workers in other processes or machines): LISTEN/NOTIFY carries it;
* SQLite with workers in other processes of the machine (`heron up` runs one worker process beside
  the API and the console): each process that waits binds a Unix datagram socket in the data
  directory (``run/events-<pid>.sock``), and a process that ends jobs sends their ids to every such
  socket after its commit;
* anything else (a process that cannot bind its socket): waiters read the database every 50 ms.

Notifications only shorten a wait: a waiter always re-reads the job from the database, and without
a wake-up it re-reads at least every second anyway, so a lost notification costs latency, never an
answer.

The same notifications let a process answer status reads of jobs that have not ended without the
database (:meth:`JobEvents.recall`): a view of a running job read (or created) at most
``VIEW_SECONDS`` ago is served again until the job's end arrives, which drops it. So a client
polling every 50 ms costs one query per second while it waits, and sees the end as soon as a waiter
would; a PENDING job that a worker has just claimed may show PENDING for up to ``VIEW_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
CHANNEL = "heron_job_ended"
EVENTS_PREFIX = "events-"
_REMEMBERED = 10_000  # recently ended jobs kept, for a waiter that arrives just after the end
_PAYLOAD_IDS = 200  # ids per NOTIFY (a payload must stay under 8,000 bytes)
VIEW_SECONDS = 1.0  # how long a view of a job that has not ended may be served from memory


class JobEvents:
    """Which jobs ended recently in this process's view, and the condition waiters sleep on."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._ended: OrderedDict[str, None] = OrderedDict()
        # Views of jobs that had not ended when read, with when they were read (see recall).
        self._views: OrderedDict[str, tuple[float, object]] = OrderedDict()
        # Waiters on an event loop (the API's async handlers): woken without holding a thread.
        self._futures: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future]]] = {}
        self._listener: threading.Thread | None = None
        self._listen_url: str | None = None
        self.listening = threading.Event()  # set while other processes' job ends reach this one
        self.local_workers = False
        # SQLite: the machine's processes tell each other through sockets in this directory.
        self.run_dir: Path | None = None
        self._socket: socket.socket | None = None

    def ended(self, job_ids: Iterable[str]) -> None:
        """Wake everyone waiting for any of ``job_ids`` (their rows are committed)."""
        job_ids = list(job_ids)
        with self._condition:
            for job_id in job_ids:
                self._ended[job_id] = None
                self._ended.move_to_end(job_id)
                self._views.pop(job_id, None)
            while len(self._ended) > _REMEMBERED:
                self._ended.popitem(last=False)
            self._condition.notify_all()
            woken = [waiter for job_id in job_ids for waiter in self._futures.pop(job_id, ())]
        for loop, future in woken:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody is waiting
                loop.call_soon_threadsafe(_resolve, future)

    def remember(self, job_id: str, view: object) -> None:
        """Keep a view of ``job_id`` read (or created) just now, while it had not ended; only where
        the ends of jobs reach this process, and never for a job whose end already arrived."""
        if not self.covered:
            return
        with self._condition:
            if job_id in self._ended:
                return
            self._views[job_id] = (time.monotonic(), view)
            self._views.move_to_end(job_id)
            while len(self._views) > _REMEMBERED:
                self._views.popitem(last=False)

    def recall(self, job_id: str) -> object | None:
        """The view :meth:`remember` kept, if the job has not ended since and it is at most
        ``VIEW_SECONDS`` old (and the ends of jobs still reach this process); else None."""
        with self._condition:
            kept = self._views.get(job_id)
            if kept is None:
                return None
            if time.monotonic() - kept[0] > VIEW_SECONDS or not self.covered:
                del self._views[job_id]
                return None
            return kept[1]

    def wait(self, job_id: str, timeout: float) -> bool:
        """Sleep until ``job_id`` ends or ``timeout`` passes; True if it was seen to end."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while job_id not in self._ended:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    async def wait_async(self, job_id: str, timeout: float) -> bool:
        """:meth:`wait` for a coroutine: no thread is held while it sleeps."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._condition:
            if job_id in self._ended:
                return True
            self._futures.setdefault(job_id, []).append((loop, future))
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._condition:
                waiters = self._futures.get(job_id, [])
                if (loop, future) in waiters:
                    waiters.remove((loop, future))
                    if not waiters:
                        del self._futures[job_id]

    @property
    def covered(self) -> bool:
        """Whether the end of any job reaches this process as a wake-up (see the module's doc)."""
        return self.local_workers or self.listening.is_set()

    def follow(self, engine: Engine) -> None:
        """Make sure the ends of jobs on ``engine``'s database reach this process, whoever ends
        them: PostgreSQL's NOTIFY, or on SQLite the machine's event sockets."""
        if engine.dialect.name == "postgresql":
            self.listen(engine.url.render_as_string(hide_password=False))
        elif self.run_dir is not None:
            self.listen_here(self.run_dir)

    def listen_here(self, run_dir: Path, name: str | None = None) -> bool:
        """Hear the ends of jobs that other processes on this machine finish (SQLite: one data
        directory, one machine): bind ``run_dir/events-<pid>.sock``; False if it cannot."""
        with self._condition:
            if self._socket is not None:
                return True
            path = run_dir / f"{EVENTS_PREFIX}{name or os.getpid()}.sock"
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                hearing = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                hearing.bind(str(path))
            except OSError as error:
                log.warning("cannot hear job events at %s (%s): waiters poll the database", path, error)
                return False
            self._socket = hearing
            self._own_path = path
            threading.Thread(
                target=self._hear_forever, args=(hearing,), name="heron-job-events", daemon=True
            ).start()
            self.listening.set()
            return True

    def _hear_forever(self, hearing: socket.socket) -> None:
        while True:
            try:
                data = hearing.recv(65536)
            except OSError:
                return
            self.ended(data.decode(errors="replace").split(","))

    def tell_others(self, job_ids: list[str]) -> None:
        """Send the ends of ``job_ids`` to every other process on this machine that listens."""
        if self.run_dir is None:
            return
        own = getattr(self, "_own_path", None)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            for path in self.run_dir.glob(f"{EVENTS_PREFIX}*.sock"):
                if path == own:
                    continue
                for start in range(0, len(job_ids), _PAYLOAD_IDS):
                    try:
                        sender.sendto(",".join(job_ids[start : start + _PAYLOAD_IDS]).encode(), str(path))
                    except (ConnectionRefusedError, FileNotFoundError):  # its process is gone
                        with contextlib.suppress(OSError):
                            path.unlink()
                        break
                    except OSError:  # its buffer is full: that waiter re-reads the database anyway
                        break

    def listen(self, database_url: str) -> None:
        """Follow ``NOTIFY heron_job_ended`` on this PostgreSQL database (one thread per process)."""
        with self._condition:
            if self._listener is not None and self._listener.is_alive():
                return
            self._listen_url = database_url
            self._listener = threading.Thread(
                target=self._listen_forever, name="heron-job-events", daemon=True
            )
            self._listener.start()

    def _listen_forever(self) -> None:
        import psycopg

        url = _libpq_url(self._listen_url or "")
        while True:
            try:
                with psycopg.connect(url, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    for notice in connection.notifies():
                        self.ended(notice.payload.split(","))
            except Exception:
                self.listening.clear()
                log.warning(
                    "lost the job-events connection to PostgreSQL; reconnecting in 1 s", exc_info=True
                )
                time.sleep(1.0)


JOB_EVENTS = JobEvents()


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def job_ended(session: Session, job_id: str) -> None:
    """Record in ``session`` that ``job_id`` ended: waiters are woken once it commits."""
    session.info.setdefault("heron_ended_jobs", []).append(job_id)


@event.listens_for(Session, "before_commit")
def _notify_postgres(session: Session) -> None:
    ended = session.info.get("heron_ended_jobs")
    if not ended or session.get_bind().dialect.name != "postgresql":
        return
    for start in range(0, len(ended), _PAYLOAD_IDS):
        payload = ",".join(ended[start : start + _PAYLOAD_IDS])
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
        )


@event.listens_for(Session, "after_commit")
def _wake_waiters(session: Session) -> None:
    ended = session.info.pop("heron_ended_jobs", None)
    if ended:
        JOB_EVENTS.ended(ended)
        JOB_EVENTS.tell_others(ended)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop("heron_ended_jobs", None)


def _libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://…``) as libpq takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)
