"""The progress line of long CLI commands: count, rate and time left, only on a terminal."""

from __future__ import annotations

import io

from cli.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_sees_count_rate_and_time_left() -> None:
    # Given a command reading 10 files, 2 s into it with 4 read
    terminal, clock = Terminal(), Clock()
    progress = Progress("reading files", stream=terminal, clock=clock)
    clock.now += 2
    progress(4, 10)
    # Then the line says how far, how fast and how long still
    assert terminal.getvalue().endswith("reading files: 4/10, 2.0/s, ~3 s left")
    # And when done it says so and the line is closed
    clock.now += 3
    progress(10, 10)
    progress.close()
    assert terminal.getvalue().rstrip().endswith("reading files: 10/10, 2.0/s")
    assert terminal.getvalue().endswith("\n")


def test_redraws_are_throttled_but_the_last_one_is_not() -> None:
    terminal, clock = Terminal(), Clock()
    progress = Progress("classifying files", stream=terminal, clock=clock, every=1.0)
    clock.now += 1
    progress(1, 3)
    progress(2, 3)  # the same instant: not redrawn
    assert "2/3" not in terminal.getvalue()
    progress(3, 3)  # the end always is
    assert "3/3" in terminal.getvalue()


def test_a_pipe_sees_nothing() -> None:
    pipe = io.StringIO()
    progress = Progress("reading files", stream=pipe)
    progress(1, 2)
    progress.close()
    assert pipe.getvalue() == ""
