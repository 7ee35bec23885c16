from __future__ import annotations

import pytest

from core.services.documents import clean_filename


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\report.pdf", "report.pdf"),
        ("bad\x00name\x1b.txt", "badname.txt"),
        ("", "upload"),
        (None, "upload"),
        ("..", "upload"),
    ],
)
def test_file_names_are_display_names_only(raw: str | None, expected: str) -> None:
    assert clean_filename(raw) == expected


def test_very_long_names_are_cut_but_keep_their_extension() -> None:
    name = clean_filename("a" * 1000 + ".pdf")
    assert len(name) <= 255 and name.endswith(".pdf")
