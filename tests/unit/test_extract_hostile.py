"""Hostile and broken files end in a documented refusal — never a crash, a hang or a bomb."""

from __future__ import annotations

import io
import logging
import os
import struct
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import (
    CorruptFile,
    EmptyFile,
    EncryptedFile,
    HeronError,
    LimitExceeded,
    NoText,
    UnsupportedType,
)
from core.extract import Extraction, ExtractionLimits, extract, sniff
from tests.documents import (
    CLINICAL,
    FINANCE,
    OCR_LINES,
    docx_bytes,
    eml_bytes,
    encrypted_pdf_bytes,
    image_bytes,
    lone_surrogate_pdf_bytes,
    multipage_tiff_bytes,
    nested_zip_bytes,
    ole_bytes,
    pdf_bytes,
    png_bomb_bytes,
    pptx_bytes,
    scanned_pdf_bytes,
    text_image,
    utf7_eml_bytes,
    utf7_html_bytes,
    xlsx_bytes,
    zip_bomb_bytes,
    zip_bytes,
)

SUPPORTED_SENTENCE = "Heron reads PDF, Word (DOCX)"


def _refusal(data: bytes, **kwargs: object) -> HeronError:
    with pytest.raises(HeronError) as caught:
        extract(data, **kwargs)  # type: ignore[arg-type]
    assert caught.value.message and caught.value.code
    return caught.value


def test_empty_file_is_refused_as_empty() -> None:
    assert isinstance(_refusal(b""), EmptyFile)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(range(256)) * 4, "Windows executable"),
        (b"\x7fELF\x02\x01\x01" + bytes(500), "executable program"),
        (ole_bytes("WordDocument"), "legacy Word 97–2003 document (.doc)"),
        (ole_bytes("Workbook"), "legacy Excel 97–2003 workbook (.xls)"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(300), "audio"),
        (b"\x00\x00\x00\x18ftypmp42" + bytes(300), "video"),
        (b"\x1f\x8b\x08\x00" + bytes(100), "gzip archive"),
    ],
)
def test_unsupported_types_are_refused_with_a_sentence_listing_what_is_supported(
    data: bytes, named: str
) -> None:
    # When a file Heron does not read is extracted
    error = _refusal(data, filename="upload.bin")
    # Then it is refused as unsupported, saying what it is and what Heron does read
    assert isinstance(error, UnsupportedType)
    assert named in error.message and SUPPORTED_SENTENCE in error.message
    assert "'upload.bin'" in error.message


def test_random_bytes_named_pdf_are_judged_by_their_bytes() -> None:
    # Given random bytes that claim, by name and MIME type, to be a PDF
    data = os.urandom(4096)
    # Then the claim is ignored: they are not a format Heron recognises
    error = _refusal(data, filename="invoice.pdf", content_type="application/pdf")
    assert isinstance(error, UnsupportedType) and "not a format Heron recognises" in error.message


def test_password_protected_pdf_is_refused_as_encrypted() -> None:
    error = _refusal(encrypted_pdf_bytes(FINANCE, user_password="s3cret"))
    assert isinstance(error, EncryptedFile) and "password" in error.message


def test_password_protected_office_file_is_refused_as_encrypted() -> None:
    # An encrypted DOCX/XLSX is an OLE compound file holding an "EncryptedPackage" stream
    assert isinstance(_refusal(ole_bytes("EncryptedPackage")), EncryptedFile)


# Real files list their telling stream late: a .doc opens with 1Table, CompObj and the summary
# streams; an encrypted OOXML with \x06DataSpaces and EncryptionInfo. Four entries fill the first
# directory sector, so these sit in the second.
_LATER = ("\x01CompObj", "\x05DocumentSummaryInformation", "\x05SummaryInformation", "1Table", "Data")


@pytest.mark.parametrize(
    ("stream", "kind"),
    [
        ("EncryptedPackage", "application/x-encrypted-office"),
        ("WordDocument", "application/msword"),
        ("Workbook", "application/vnd.ms-excel"),
        ("Book", "application/vnd.ms-excel"),
        ("PowerPoint Document", "application/vnd.ms-powerpoint"),
        ("__substg1.0_0037001F", "application/vnd.ms-outlook"),
    ],
)
def test_compound_files_are_named_by_any_directory_entry_not_only_the_first_sector(
    stream: str, kind: str
) -> None:
    # Given a compound file whose telling stream is its seventh directory entry
    data = ole_bytes(stream, before=_LATER)
    # When it is sniffed, Then it is named for what it is
    assert sniff(data) == kind
    # And an encrypted one is refused as encrypted, the others as unsupported with advice
    error = _refusal(data, filename="upload.bin")
    assert isinstance(error, EncryptedFile if kind.endswith("encrypted-office") else UnsupportedType)


def test_a_damaged_compound_file_is_refused_as_a_legacy_microsoft_file() -> None:
    assert sniff(ole_bytes("WordDocument", before=_LATER)[:700]) == "application/x-ole-storage"
    assert isinstance(_refusal(ole_bytes("WordDocument")[:700]), UnsupportedType)


@pytest.mark.parametrize(
    ("build", "cut"),
    [
        (lambda: docx_bytes([CLINICAL]), 0.5),
        (lambda: xlsx_bytes({"Sheet": [["a", 1]] * 50}), 0.5),
        (lambda: pptx_bytes([("Title", "Body", "Notes")]), 0.5),
        (lambda: image_bytes(text_image(OCR_LINES[:1]), "PNG"), 0.5),
        (lambda: image_bytes(text_image(OCR_LINES[:1]), "JPEG"), 0.3),
        (lambda: zip_bytes({"a.txt": b"x" * 5000, "b.txt": b"y" * 5000}), 0.6),
    ],
)
def test_truncated_files_are_refused_as_corrupt(build, cut: float) -> None:  # type: ignore[no-untyped-def]
    # Given a file cut short (an interrupted download)
    data = build()
    truncated = data[: int(len(data) * cut)]
    # Then it is refused as corrupt (or, for a JPEG that still decodes, read or found empty)
    error = _refusal(truncated)
    assert isinstance(error, CorruptFile | NoText)


def test_truncated_pdf_is_either_repaired_or_refused() -> None:
    # Given a PDF missing its last third (cross-reference table and trailer gone)
    data = pdf_bytes(FINANCE, CLINICAL)
    truncated = data[: len(data) * 2 // 3]
    # Then pypdf either rebuilds what is left or it is refused as corrupt — nothing else
    try:
        result = extract(truncated)
    except (CorruptFile, NoText):
        return
    assert "revenue" in result.text.lower()


def test_pdf_with_too_many_pages_is_refused() -> None:
    error = _refusal(pdf_bytes("a", "b", "c", "d"), limits=ExtractionLimits(max_pages=3))
    assert isinstance(error, LimitExceeded) and "4 pages" in error.message and "3" in error.message


def test_tiff_and_presentation_with_too_many_pages_are_refused() -> None:
    limits = ExtractionLimits(max_pages=2)
    tiff = multipage_tiff_bytes([OCR_LINES[:1]] * 3)
    slides = pptx_bytes([("One", "a", ""), ("Two", "b", ""), ("Three", "c", "")])
    assert isinstance(_refusal(tiff, limits=limits), LimitExceeded)
    assert isinstance(_refusal(slides, limits=limits), LimitExceeded)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(("width", "height"), [(12_000, 10_000), (100_000, 100_000)])
def test_decompression_bomb_images_are_refused_before_decoding(width: int, height: int) -> None:
    # Given a tiny PNG whose header claims a gigantic image
    data = png_bomb_bytes(width, height)
    assert len(data) < 1000
    # Then it is refused from the header alone
    error = _refusal(data)
    assert isinstance(error, LimitExceeded)


def test_zip_bomb_is_refused() -> None:
    # Given a ZIP whose single member inflates ~1000×
    error = _refusal(zip_bomb_bytes(5))
    assert isinstance(error, LimitExceeded) and "zip bomb" in error.message


def test_zip_over_the_total_size_limit_is_refused() -> None:
    data = zip_bytes({f"part{n}.txt": os.urandom(300_000) for n in range(4)})
    error = _refusal(data, limits=ExtractionLimits(zip_max_total_bytes=1_000_000))
    assert isinstance(error, LimitExceeded) and "uncompressed" in error.message


def test_zip_with_too_many_members_is_refused() -> None:
    data = zip_bytes({f"note{n}.txt": b"hello" for n in range(11)})
    error = _refusal(data, limits=ExtractionLimits(zip_max_members=10))
    assert isinstance(error, LimitExceeded) and "11 members" in error.message


def test_zip_nested_too_deep_is_refused() -> None:
    # Given text inside a ZIP inside a ZIP inside a ZIP (three levels; the default limit is two)
    data = nested_zip_bytes(3, {"deep.txt": b"deep down"})
    error = _refusal(data)
    assert isinstance(error, LimitExceeded) and "nested" in error.message
    # And two levels are fine
    assert extract(nested_zip_bytes(2, {"deep.txt": b"deep down"})).text == "deep down"


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "docs/../../escape.txt", "C:\\evil.txt"])
def test_zip_members_whose_names_climb_out_are_refused(name: str) -> None:
    error = _refusal(zip_bytes({"ok.txt": b"fine", name: b"gotcha"}))
    assert isinstance(error, CorruptFile) and "outside the archive" in error.message


def test_zip_member_larger_than_its_directory_entry_is_refused() -> None:
    # Given a ZIP whose directory claims a 2,000-byte member that really inflates to 200,000
    data = bytearray(zip_bytes({"big.txt": b"A" * 200_000}))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        position = data.index(signature)
        struct.pack_into("<I", data, position + offset, 2000)
    # Then it is refused, never inflated beyond what was promised
    error = _refusal(bytes(data))
    assert isinstance(error, CorruptFile | LimitExceeded)


def test_password_protected_zip_is_refused_as_encrypted() -> None:
    # Given a ZIP whose member carries the "encrypted" flag, as password-protected ZIPs do
    data = bytearray(zip_bytes({"secret.txt": b"\x00" * 40}))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        position = data.index(signature)
        data[position + offset] |= 0x1
    # Then it is refused as encrypted, not as unreadable
    error = _refusal(bytes(data))
    assert isinstance(error, EncryptedFile) and "password" in error.message


def test_xml_entity_bomb_in_a_docx_is_not_expanded() -> None:
    # Given a DOCX whose body declares a "billion laughs" entity
    data = docx_bytes(["placeholder"])
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        parts = {info.filename: source.read(info) for info in source.infolist()}
    laughs = "".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 10))
    body = parts["word/document.xml"].decode()
    parts["word/document.xml"] = body.replace(
        "<w:document", f'<!DOCTYPE d [<!ENTITY l0 "ha">{laughs}]><w:document', 1
    ).encode()
    # When it is extracted, it ends quickly in a result or a refusal, with no exponential blow-up
    try:
        result = extract(zip_bytes(parts))
    except HeronError:
        return
    assert len(result.text) < 10_000


def test_text_beyond_the_character_limit_is_dropped_with_a_warning() -> None:
    result = extract(("word " * 5000).encode(), limits=ExtractionLimits(max_chars=1000))
    assert 990 <= len(result.text) <= 1000
    assert any("truncated to 1000 characters" in warning for warning in result.warnings)


def test_extraction_that_runs_past_its_time_limit_is_refused() -> None:
    # Given a five-page scan and a wall-time budget far too small to OCR it
    data = scanned_pdf_bytes(*[OCR_LINES] * 5)
    # Then extraction stops with limit_exceeded instead of running on
    error = _refusal(data, limits=ExtractionLimits(max_seconds=0.3))
    assert isinstance(error, LimitExceeded) and "took longer than" in error.message


def test_a_document_without_text_is_no_text_not_a_guess() -> None:
    blank = image_bytes(text_image(()), "PNG")
    assert isinstance(_refusal(blank), NoText)
    assert isinstance(_refusal(b"   \n\n\t  "), NoText)


# --- Property: whatever the bytes, extract() returns a result or raises a HeronError. ---

SEEDS = [
    pdf_bytes("Seed PDF with a text layer."),
    docx_bytes(["Seed document"], table=[["a", "b"]], header="h"),
    xlsx_bytes({"S": [["x", 1], ["y", 2]]}),
    pptx_bytes([("Seed", "slide", "notes")]),
    image_bytes(text_image(("Seed",), width=300, size=30), "PNG"),
    image_bytes(text_image(("Seed",), width=300, size=30), "GIF"),
    zip_bytes({"a.txt": b"alpha", "b.csv": b"x,y\n1,2\n"}),
    eml_bytes(subject="Seed", body="Body", attachments=[("a.txt", "text/plain", b"attached")]),
    b"<html><body><p>Seed &amp; page</p><script>x()</script></body></html>",
    "Plain text seed, café.".encode("cp1252"),
]
# Small limits keep every example fast even when a mutation still decodes to an image.
FAST = ExtractionLimits(max_seconds=10, max_ocr_pages=1, max_pages=20, zip_max_total_bytes=2_000_000)


class _SafetyNetWatch(logging.Handler):
    """Counts the times extract() had to turn an unforeseen exception into ``corrupt``."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.caught: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("unexpected error extracting"):
            self.caught.append(f"{record.getMessage()}: {record.exc_info[1]!r}" if record.exc_info else "")


def _outcome(data: bytes) -> None:
    watch = _SafetyNetWatch()
    logger = logging.getLogger("core.extract")
    logger.addHandler(watch)
    try:
        result = extract(data, limits=FAST)
    except HeronError:
        result = None
    finally:
        logger.removeHandler(watch)
    # Only documented outcomes — and each failure was foreseen by the format's own reader
    # (the catch-all in extract() is a safety net, not how formats report damage).
    assert watch.caught == []
    assert result is None or (isinstance(result, Extraction) and result.text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_only_ever_give_a_result_or_a_documented_error(data: bytes) -> None:
    _outcome(data)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    edits=st.lists(
        st.tuples(
            st.floats(0, 1),
            st.sampled_from(["flip", "cut", "insert", "zero"]),
            st.binary(min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_documents_only_ever_give_a_result_or_a_documented_error(seed: int, edits: list) -> None:
    data = bytearray(SEEDS[seed])
    for where, how, payload in edits:
        position = min(int(where * len(data)), max(len(data) - 1, 0))
        if how == "flip" and data:
            data[position] ^= payload[0] or 0xFF
        elif how == "cut":
            del data[position:]
        elif how == "insert":
            data[position:position] = payload
        else:
            data[position : position + len(payload)] = bytes(len(payload))
    _outcome(bytes(data))


def test_sniffing_needs_only_the_head_of_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A path is sniffed from its first bytes (and a ZIP's directory), the same as the bytes are
    path = tmp_path / "scan.pdf"
    path.write_bytes(pdf_bytes("x"))
    assert sniff(path) == sniff(path.read_bytes()) == "application/pdf"


@pytest.mark.parametrize(
    "make",
    [lone_surrogate_pdf_bytes, utf7_eml_bytes, utf7_html_bytes],
    ids=["pdf-tounicode", "utf7-email", "utf7-page"],
)
def test_text_with_a_lone_surrogate_is_read_as_text_that_can_be_stored(make) -> None:  # type: ignore[no-untyped-def]
    # Given a document whose decoder hands over a lone surrogate (U+D800)
    extraction = extract(make("The bank loan payment and the mortgage interest rate are due"))
    # Then its text keeps the words, and the surrogate becomes U+FFFD: the tokenizer, hashing
    # and the database take it (a surrogate failed the job, and every job of its batch)
    assert "mortgage interest rate" in extraction.text
    extraction.text.encode("utf-8")
    assert "\ufffd" in extraction.text


def _repacked(data: bytes, change) -> bytes:  # type: ignore[no-untyped-def]
    """The package with ``change(name, bytes)`` applied to each member (None drops it)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            changed = change(info.filename, source.read(info))
            if changed is not None:
                target.writestr(changed[0], changed[1])
    return out.getvalue()


def test_a_word_document_whose_main_part_is_elsewhere_is_read_as_one() -> None:
    # Given a valid DOCX whose main part is word/main.xml (its relationships say so)
    def move(name: str, body: bytes):  # type: ignore[no-untyped-def]
        body = body.replace(b"word/document.xml", b"word/main.xml").replace(b'"document.xml"', b'"main.xml"')
        return ("word/main.xml" if name == "word/document.xml" else name), body

    moved = _repacked(docx_bytes([FINANCE]), move)
    # Then it is a Word document with its text, not an archive of its XML parts
    extraction = extract(moved, filename="moved.docx")
    assert extraction.content_type.endswith("wordprocessingml.document")
    assert "interest" in extraction.text.lower()


@pytest.mark.parametrize(
    ("make", "main", "named"),
    [
        (lambda: docx_bytes([FINANCE]), "word/document.xml", "Word"),
        (lambda: xlsx_bytes({"Q3": [["Revenue", 100]] * 200}), "xl/workbook.xml", "Excel"),
        (lambda: pptx_bytes([("Quarterly results", FINANCE, "notes")]), "ppt/presentation.xml", "PowerPoint"),
    ],
    ids=["docx", "xlsx", "pptx"],
)
def test_a_damaged_office_document_is_refused_as_one_not_unpacked_as_an_archive(make, main, named) -> None:  # type: ignore[no-untyped-def]
    whole = make()
    # Given the package without its main part, and the package cut short (a broken download)
    missing = _repacked(whole, lambda name, body: None if name == main else (name, body))
    for broken in (missing, whole[: len(whole) * 2 // 3]):
        # Then each is a corrupt document of its kind: one job that fails saying what it is, not
        # a batch of junk jobs (one per XML part) or a refused "ZIP"
        assert sniff(broken) != "application/zip"
        error = _refusal(broken)
        assert isinstance(error, CorruptFile) and named in error.message, error.message


def test_a_workbook_whose_rows_each_style_a_far_right_empty_cell_is_read_in_time() -> None:
    import openpyxl
    from openpyxl.styles import Font

    # Given 20,000 rows of one value each, every row also styling an empty cell in the last column
    # (XFD): openpyxl padded each row to 16,384 cells, and such a 5 MB file ran out the time limit
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in range(1, 20_001):
        sheet.cell(row=row, column=1, value=f"Invoice {row}")
        sheet.cell(row=row, column=16_384).font = Font(bold=True)
    sheet.cell(row=7, column=3, value="Paid")
    buffer = io.BytesIO()
    workbook.save(buffer)
    # When it is read with a 20-second limit
    extraction = extract(buffer.getvalue(), limits=ExtractionLimits(max_seconds=20))
    # Then every row is there, cells as laid out (an empty one between values kept), in time
    lines = extraction.text.splitlines()
    assert "Invoice 20000" in lines and "Invoice 7 | | Paid" in lines


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (
            b"From: a@example.com\nTo: b@example.com\nSubject: =?utf-7?q?+2AA-?=\nMIME-Version: 1.0\n"
            b"Content-Type: text/plain\n\nThe court ruled on the appeal.\n",
            "The court ruled on the appeal.",
        ),
        (
            b"From: a@example.com\nTo: b@example.com\nSubject: ruling\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\nThe court.\n"
            b"--B\nContent-Type: text/plain\n"
            b"Content-Disposition: attachment; filename*=utf-7''%2B2AA-.txt\n\n"
            b"The lawyer filed the appeal.\n--B--\n",
            "The lawyer filed the appeal.",
        ),
        (
            b"From: a@example.com\nTo: b@example.com\nSubject: memo\nMIME-Version: 1.0\n"
            b"Content-Type: text/plain; charset=utf-16-le\nContent-Transfer-Encoding: 8bit\n\n"
            + "The tenant signed the lease.".encode("utf-16-le"),
            "The tenant signed the lease.",
        ),
        (
            b"From: a@example.com\nTo: b@example.com\nSubject: deed\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/html\n\n"
            b"<p>The deed of the house is attached.</p>\n--B\nContent-Type: text/plain\n"
            b'Content-Disposition: attachment; filename="=?utf-7?Q?+2AA-.txt?="\n\n'
            b"The buyer paid the deposit.\n--B--\n",
            "The buyer paid the deposit.",
        ),
    ],
    ids=["utf7-subject", "utf7-attachment-name", "utf16-body", "html-body-utf7-attachment"],
)
def test_an_email_with_an_undecodable_header_or_a_utf16_part_is_read(data: bytes, says: str) -> None:
    # (the first two were refused as corrupt e-mails, the third as "not a format Heron recognises")
    extraction = extract(data, filename="mail.eml")
    assert extraction.content_type == "message/rfc822"
    assert says in extraction.text
