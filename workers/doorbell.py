"""One set of workers per machine with the in-process queue: other processes ring their doorbell.

With the in-process queue, the process that runs the worker threads (`heron api`, which `heron up`
starts beside the console) also listens on a Unix datagram socket in the data directory. A process
started beside it (the console) does not start workers of its own, nor load MiniLM: it sends each
job or task id to that socket, and the worker process puts it on its queue. If nobody answers —
the API was stopped, or the console runs alone — the sending process starts its own workers then
(whose sweeper re-sends whatever was waiting), so work is never stranded; a datagram lost between
two processes is re-sent by the sweeper like any lost message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from core.work import WorkSender
from workers.sender import QueueSender

log = logging.getLogger(__name__)
_MAX_DATAGRAM = 4096


def socket_path(data_dir: Path) -> Path:
    return data_dir / "run" / "workers.sock"


def ring(path: Path, message: dict) -> None:
    """Send one message to the worker process listening at ``path``; OSError if none listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as bell:
        bell.sendto(json.dumps(message).encode(), str(path))


def answers(path: Path) -> bool:
    """Whether a worker process listens at ``path``."""
    try:
        ring(path, {"ping": True})
    except OSError:
        return False
    return True


class DoorbellSender:
    """Core's WorkSender for a process beside the workers: ring the worker process; if none
    answers, start this process's own workers (``start_own``) and send to them from then on."""

    def __init__(self, path: Path, start_own: Callable[[], WorkSender]) -> None:
        self.path = path
        self.start_own = start_own
        self._own: WorkSender | None = None
        self._lock = threading.Lock()
        # One socket for every ring (making one per message cost more than sending it).
        self._bell = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def send_classify(self, job_id: str) -> None:
        self._send({"job": job_id}, lambda sender: sender.send_classify(job_id))

    def send_task(self, task_id: str, kind: str) -> None:
        self._send({"task": task_id, "kind": kind}, lambda sender: sender.send_task(task_id, kind))

    def _send(self, message: dict, locally: Callable[[WorkSender], None]) -> None:
        if self._own is None:
            try:
                self._bell.sendto(json.dumps(message).encode(), str(self.path))
                return
            except OSError as error:
                with self._lock:
                    if self._own is None:
                        log.warning("no worker answers at %s (%s): workers start here", self.path, error)
                        self._own = self.start_own()
        locally(self._own)


class Doorbell:
    """The listening side, in the process that runs the worker threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._inode: int | None = None

    def open(self) -> bool:
        """Listen at ``path`` (taking it over from a process that is gone); False if it cannot."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            listening = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            listening.bind(str(self.path))
            os.chmod(self.path, 0o600)
            self._inode = self.path.stat().st_ino
        except OSError as error:  # e.g. a path longer than a socket address allows
            log.warning("cannot listen at %s (%s): other processes run their own workers", self.path, error)
            return False
        listening.settimeout(1.0)
        self._socket = listening
        self._thread = threading.Thread(target=self._serve, name="heron-doorbell", daemon=True)
        self._thread.start()
        return True

    def _serve(self) -> None:
        sender = QueueSender(coalesce=True)  # the drains run in this process
        while self._socket is not None:
            try:
                data = self._socket.recv(_MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            try:
                message = json.loads(data)
                if "job" in message:
                    sender.send_classify(str(message["job"]))
                elif "task" in message:
                    sender.send_task(str(message["task"]), str(message["kind"]))
            except Exception:
                log.exception("ignored a doorbell message that could not be sent on: %r", data[:200])

    def close(self) -> None:
        listening, self._socket = self._socket, None
        if listening is not None:
            listening.close()
            with contextlib.suppress(OSError):
                if self.path.stat().st_ino == self._inode:  # not a successor's socket
                    self.path.unlink()
        if self._thread is not None:
            self._thread.join(timeout=5)
