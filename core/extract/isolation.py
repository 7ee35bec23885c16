"""Extraction in child processes that can be killed: a hard wall clock and a memory ceiling.

A single pypdf, DOCX or XLSX parse cannot be interrupted from inside, and a parser that inflates a
stream can take the whole process's memory with it. So the worker never parses: it sends the
document's path to a long-lived child process and waits, at most for the extraction limit plus a
short grace. A child that overstays is killed with its process group (its Tesseract and pdftoppm
too) and replaced; a child that runs out of its address space (``RLIMIT_AS``) fails or dies alone.
Either way the document ends with ``limit_exceeded`` naming the limit, never ``corrupt``.

Children are started with ``python -m core.extract.isolation`` (not forked: the parent holds torch
and threads), import only :mod:`core.extract` (~60 MB) and are reused document after document.

Two lanes (:class:`Extractor`): every document is first tried in the *fast* lane, with one process
per worker thread, for at most ``fast_seconds``. A document still running then is killed there and
handed to the *slow* lane, whose own processes run at a lower CPU priority with the whole
extraction limit. So a hostile or merely long document holds a worker thread for ``fast_seconds``,
never for the whole limit, and ordinary documents are not queued behind it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import resource
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from core.errors import CorruptFile, HeronError, LimitExceeded
from core.extract.types import Extraction, ExtractionLimits, Page

log = logging.getLogger(__name__)

FAST = "fast"
SLOW = "slow"
# Time for a child to answer after its own (cooperative) deadline before it is killed.
GRACE_SECONDS = 2.0
SLOW_LANE_NICENESS = 10
_ERROR_TYPES: dict[str, type[HeronError]] = {}


class NeedsSlowLane(Exception):
    """The document did not finish within the fast lane's budget; try it in the slow lane."""


@dataclass(frozen=True)
class IsolationLimits:
    """What the child processes may use (built from the ``HERON_*`` settings in core.runtime).

    Attributes:
        fast_processes: Fast-lane processes; one per worker thread that extracts, so no thread waits.
        slow_processes: Slow-lane processes (documents that outgrew ``fast_seconds``).
        max_memory_mb: Address space of each child (``RLIMIT_AS``); parsing beyond it fails.
        fast_seconds: How long a document may take in the fast lane before it moves to the slow one.
    """

    fast_processes: int = 3
    slow_processes: int = 2
    max_memory_mb: int = 1024
    fast_seconds: float = 3.0


class _Child:
    """One extraction process and the socket it answers on."""

    def __init__(self, *, max_memory_mb: int, niceness: int) -> None:
        parent_end, child_end = socket.socketpair()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "core.extract.isolation",
                str(child_end.fileno()),
                str(max_memory_mb),
                str(niceness),
            ],
            pass_fds=(child_end.fileno(),),
            stdin=subprocess.DEVNULL,
            # A process group of its own: killing it also kills its Tesseract and pdftoppm.
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        child_end.close()
        self.connection = Connection(parent_end.detach())

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.connection.close()

    def peak_memory_kb(self) -> int | None:
        """The child's VmHWM (for benchmarks and tests)."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None


class ExtractionPool:
    """A fixed number of reusable extraction processes with a hard timeout and a memory limit.

    Args:
        processes: How many children may run at once; callers beyond that wait for one.
        max_memory_mb: ``RLIMIT_AS`` of each child.
        niceness: CPU priority the children lower themselves by (0: as the parent).
        name: For messages ("fast", "slow").
        grace_seconds: How long past the limit a child may take to answer before it is killed.
    """

    def __init__(
        self,
        *,
        processes: int,
        max_memory_mb: int,
        niceness: int = 0,
        name: str = FAST,
        grace_seconds: float = GRACE_SECONDS,
    ) -> None:
        self.processes = processes
        self.grace_seconds = grace_seconds
        self.max_memory_mb = max_memory_mb
        self.niceness = niceness
        self.name = name
        self._idle: queue.LifoQueue[_Child | None] = queue.LifoQueue()
        for _ in range(processes):
            self._idle.put(None)  # started when first needed
        self._live: set[_Child] = set()
        self._lock = threading.Lock()

    def extract(
        self,
        source: Path | bytes,
        *,
        limits: ExtractionLimits,
        filename: str | None = None,
        content_type: str | None = None,
        wait_seconds: float | None = None,
    ) -> Extraction:
        """Extract in a child; kill it if it has not answered after ``wait_seconds``.

        Args:
            wait_seconds: How long to wait for the answer; default the limit plus a grace. When
                shorter than the limit and exceeded, :class:`NeedsSlowLane` is raised instead of
                a refusal.

        Raises:
            HeronError: the document cannot be read (the child's refusal, or ``limit_exceeded``
                when it overstayed or ran out of memory). NeedsSlowLane: see ``wait_seconds``.
        """
        hard_limit = limits.max_seconds + self.grace_seconds
        wait = hard_limit if wait_seconds is None else min(wait_seconds, hard_limit)
        child = self._take()
        try:
            try:
                child.connection.send(
                    (str(source) if isinstance(source, Path) else source, limits, filename, content_type)
                )
                answered = child.connection.poll(wait)
                reply = child.connection.recv() if answered else None
            except (EOFError, OSError):
                answered, reply = True, None  # the child died while working
            if not answered:
                self._discard(child)
                child = None
                if wait < hard_limit:
                    raise NeedsSlowLane(f"not finished within {wait:g} s")
                raise LimitExceeded(
                    f"Extraction took longer than the limit of {limits.max_seconds:g} s "
                    "(HERON_EXTRACTION_TIMEOUT_SECONDS); the parser was stopped."
                )
            if reply is None:
                code = self._discard(child)
                child = None
                raise self._death(code)
            return _result(reply, self.max_memory_mb)
        finally:
            if child is not None:
                self._idle.put(child)

    def start(self, count: int) -> None:
        """Start ``count`` children now (call before any extraction) rather than when first needed:
        a child imports the parsers before it answers, about 2 s that a document's fast-lane budget
        and its batch would otherwise pay."""
        children = [self._take() for _ in range(min(count, self.processes))]
        for child in children:
            self._idle.put(child)

    def peak_memory_kb(self) -> dict[int, int]:
        """VmHWM of every live child, by pid."""
        with self._lock:
            children = list(self._live)
        return {child.process.pid: kb for child in children if (kb := child.peak_memory_kb()) is not None}

    def close(self) -> None:
        with self._lock:
            children, self._live = list(self._live), set()
        for child in children:
            child.kill()

    def _take(self) -> _Child:
        child = self._idle.get()
        if child is not None and child.alive:
            return child
        if child is not None:
            self._discard(child)
        try:
            fresh = _Child(max_memory_mb=self.max_memory_mb, niceness=self.niceness)
        except BaseException:
            self._idle.put(None)
            raise
        with self._lock:
            self._live.add(fresh)
        return fresh

    def _discard(self, child: _Child) -> int | None:
        """Kill a child (and its process group) and free its slot; returns how it ended."""
        child.kill()
        with self._lock:
            self._live.discard(child)
        self._idle.put(None)
        return child.process.returncode

    def _death(self, returncode: int | None) -> HeronError:
        # A child dies mid-document only from the outside or from memory: SIGKILL (the kernel's OOM
        # killer), SIGSEGV/SIGABRT from a C library that could not allocate under RLIMIT_AS.
        log.warning(
            "%s-lane extraction process died (exit %s) while reading a document", self.name, returncode
        )
        return LimitExceeded(
            f"Reading the document needed more than the memory limit of {self.max_memory_mb} MB "
            f"(HERON_EXTRACTION_MAX_MEMORY_MB); the extraction process was stopped."
        )


class Extractor:
    """The two extraction lanes, fast and slow (see the module docstring for the rule)."""

    def __init__(self, limits: IsolationLimits) -> None:
        self.limits = limits
        self.fast = ExtractionPool(
            processes=limits.fast_processes, max_memory_mb=limits.max_memory_mb, name=FAST
        )
        self.slow = ExtractionPool(
            processes=limits.slow_processes,
            max_memory_mb=limits.max_memory_mb,
            niceness=SLOW_LANE_NICENESS,
            name=SLOW,
        )

    def extract(
        self,
        source: Path | bytes,
        *,
        limits: ExtractionLimits,
        filename: str | None = None,
        content_type: str | None = None,
        lane: str | None = None,
    ) -> Extraction:
        """Extract a document in a child process.

        Args:
            lane: ``fast`` — give up after ``fast_seconds`` with :class:`NeedsSlowLane`;
                ``slow`` — the slow lane's processes, the whole limit; None — the fast lane's
                processes with the whole limit (a person waiting for one document).

        Raises:
            HeronError: the document cannot be read. NeedsSlowLane: only with ``lane="fast"``.
        """
        if lane == SLOW:
            return self.slow.extract(source, limits=limits, filename=filename, content_type=content_type)
        wait = self.limits.fast_seconds if lane == FAST else None
        return self.fast.extract(
            source, limits=limits, filename=filename, content_type=content_type, wait_seconds=wait
        )

    def start(self, fast_children: int) -> None:
        """Start that many fast-lane processes now (see ExtractionPool.start); the slow lane's
        start when a document first needs them."""
        self.fast.start(fast_children)

    def peak_memory_kb(self) -> dict[int, int]:
        return {**self.fast.peak_memory_kb(), **self.slow.peak_memory_kb()}

    def close(self) -> None:
        self.fast.close()
        self.slow.close()


def _result(reply: tuple, max_memory_mb: int) -> Extraction:
    kind = reply[0]
    if kind == "ok":
        _, content_type, pages, warnings = reply
        return Extraction(
            content_type=content_type,
            pages=tuple(Page(number=n, text=t, method=m) for n, t, m in pages),
            warnings=tuple(warnings),
        )
    if kind == "memory":
        raise LimitExceeded(
            f"Reading the document needed more than the memory limit of {max_memory_mb} MB "
            "(HERON_EXTRACTION_MAX_MEMORY_MB)."
        )
    _, code, message = reply
    raise _error_for(code, message)


def _error_for(code: str, message: str) -> HeronError:
    """The HeronError subclass with this code (the child sends codes, not pickled exceptions)."""
    if not _ERROR_TYPES:
        import core.errors as errors

        for value in vars(errors).values():
            if isinstance(value, type) and issubclass(value, HeronError):
                _ERROR_TYPES.setdefault(value.code, value)
    return _ERROR_TYPES.get(code, CorruptFile)(message)


def _serve(connection: Connection, max_memory_mb: int) -> None:
    """The child's loop: a request in, an answer out, until the parent closes the socket."""
    from core.extract import extract

    while True:
        result = None
        try:
            source, limits, filename, content_type = connection.recv()
        except (EOFError, OSError):
            return
        try:
            result = extract(
                Path(source) if isinstance(source, str) else source,
                limits=limits,
                filename=filename,
                content_type=content_type,
            )
            reply: tuple = (
                "ok",
                result.content_type,
                [(page.number, page.text, page.method) for page in result.pages],
                list(result.warnings),
            )
        except MemoryError:
            reply = ("memory",)
        except HeronError as error:
            # core.extract turns a MemoryError inside a parser into LimitExceeded; name the setting.
            message = error.message
            if isinstance(error, LimitExceeded) and "more memory" in message:
                reply = ("memory",)
            else:
                reply = ("error", error.code, message)
        except BaseException as error:
            reply = ("error", CorruptFile.code, f"The document cannot be read ({type(error).__name__}).")
        result = None  # let the document's objects go before waiting for the next one
        connection.send(reply)


def _main(argv: list[str]) -> None:
    fd, max_memory_mb, niceness = int(argv[0]), int(argv[1]), int(argv[2])
    limit = max_memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if niceness:
        os.nice(niceness)
    # The parent decides when to give up; a Ctrl-C in the terminal is for the parent only.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _serve(Connection(fd), max_memory_mb)


if __name__ == "__main__":
    _main(sys.argv[1:])
