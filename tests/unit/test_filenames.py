from __future__ import annotations

import pytest

from core.services.documents import clean_filename, clean_member_name


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


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("acme/2024/invoice.pdf", "acme/2024/invoice.pdf"),
        ("inner.zip/a.txt", "inner.zip/a.txt"),
        ("win\\dir\\a.txt", "win/dir/a.txt"),
        ("./a//b/./c.txt", "a/b/c.txt"),
        ("dir\x00/\u202ex\x07.txt", "dir/x.txt"),
        ("/", "upload"),
    ],
)
def test_zip_members_are_named_by_their_path_in_the_archive(raw: str, expected: str) -> None:
    assert clean_member_name(raw) == expected


def test_a_member_path_too_long_keeps_its_innermost_folders_and_name() -> None:
    shown = clean_member_name("/".join(["folder" * 10] * 10) + "/report.pdf")
    assert len(shown) <= 255 and shown.startswith("…/") and shown.endswith("folder/report.pdf")
    assert clean_member_name("d/" + "a" * 1000 + ".pdf").endswith(".pdf")


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("[Sign in](https://evil.example).pdf", "\\[Sign in\\](https:\\/\\/evil.example).pdf"),
        ("www.evil-login.example.txt", "www\\.evil-login.example.txt"),
        (
            "__urgent__ *now* `x` <b> $1$ ~~y~~ a|b",
            "\\_\\_urgent\\_\\_ \\*now\\* \\`x\\` \\<b\\> \\$1\\$ \\~\\~y\\~\\~ a\\|b",
        ),
        ("# heading.txt", "\\# heading.txt"),
        ("q3-report.final.pdf", "q3-report.final.pdf"),
    ],
)
def test_a_name_shown_in_the_console_is_never_markup(name: str, shown: str) -> None:
    # (a file named like a link became a link on the Review page; a bare address is linked too)
    from ui.widgets import literal

    assert literal(name) == shown


@pytest.mark.parametrize(
    ("value", "limit", "shown"),
    [
        (0.49588, 0.5, ("49.6%", "50.0%")),  # was "confidence 50% is below the threshold of 50%"
        (0.3, 0.5, ("30%", "50%")),
        (0.0996, 0.1, ("9.96%", "10.00%")),
    ],
)
def test_a_review_reason_never_says_a_number_is_below_itself(
    value: float, limit: float, shown: tuple
) -> None:
    from ui.widgets import percents

    assert percents(value, limit) == shown
