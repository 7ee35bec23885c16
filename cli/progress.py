"""Progress of a long command (count, rate, time left) on one rewritten stderr line.

Silent when stderr is not a terminal, so pipes, logs and scripts see only the command's output.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """Call it with ``(done, total)`` as work advances; ``close()`` ends the line.

    Args:
        label: What is being counted, e.g. ``"extracting"``.
        stream: Where to write (stderr by default); nothing is written unless it is a terminal.
        clock: Seconds, monotonic (a parameter so tests can drive it).
        every: Least time between two redraws, in seconds.
    """

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        every: float = 0.2,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.every = every
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = clock()
        self.drawn_at: float | None = None
        self.width = 0

    def __call__(self, done: int, total: int, note: str = "") -> None:
        if not self.enabled:
            return
        now = self.clock()
        if done < total and self.drawn_at is not None and now - self.drawn_at < self.every:
            return
        self.drawn_at = now
        line = self.line(done, total, now - self.started) + (f" — {note}" if note else "")
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def line(self, done: int, total: int, elapsed: float) -> str:
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{self.label}: {done}/{total}"
        if rate > 0:
            text += f", {rate:.1f}/s"
            if done < total:
                text += f", ~{_duration((total - done) / rate)} left"
        return text

    def close(self) -> None:
        if self.enabled and self.drawn_at is not None:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, whole = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {whole:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
