from __future__ import annotations

import pytest

from core.errors import CorruptFile, EmptyFile, NoText, UnsupportedType
from core.extract import extract, sniff
from tests.documents import docx_bytes, pdf_bytes


def test_pdf_text_layer_page_by_page() -> None:
    result = extract(pdf_bytes("First page about invoices.", "Second page about payments."))
    assert result.content_type == "application/pdf"
    assert result.page_count == 2
    assert "invoices" in result.pages[0].text and "payments" in result.pages[1].text
    assert result.method == "text_layer"


def test_docx_header_body_and_table_rows_in_order() -> None:
    data = docx_bytes(
        ["Tenancy agreement between the parties."],
        table=[["Rent", "Deposit"], ["900", "1800"]],
        header="ACME Lettings Ltd",
    )
    text = extract(data).text
    assert text.index("ACME Lettings") < text.index("Tenancy agreement") < text.index("Rent | Deposit")
    assert "900 | 1800" in text


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252"])
def test_plain_text_in_common_encodings(encoding: str) -> None:
    text = "Café résumé — naïve coöperation: €100 fee."
    assert extract(text.encode(encoding)).text == text


def test_type_comes_from_the_bytes_not_the_name() -> None:
    assert sniff(pdf_bytes("x")) == "application/pdf"
    assert sniff(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20) == "image/png"
    assert sniff(b"MZ\x90\x00" + b"\x00" * 100) == "application/x-msdownload"


def test_a_pdf_is_a_pdf_only_where_its_header_is_one() -> None:
    import io
    import zipfile

    pdf = pdf_bytes("Lease agreement between landlord and tenant.")
    # A PDF saved behind a mail header (readers allow up to 1 KB of junk) is a PDF
    assert sniff(b"From: clerk@example.com\nSubject: lease\n\n" + pdf) == "application/pdf"
    # A text that mentions the header is text, and a ZIP that stores a PDF first is a ZIP (it was
    # read as one PDF and its other members were lost)
    assert sniff(b"Every PDF file begins with the header %PDF-1.7, then objects: 1 0 obj.\n") == "text/plain"
    stored = io.BytesIO()
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("contract.pdf", pdf)
        archive.writestr("notes.txt", "Lease clause.")
    assert sniff(stored.getvalue()) == "application/zip"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", EmptyFile),
        (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(range(256)), UnsupportedType),
        (b"%PDF-1.7\n this is not really a pdf \x00\x01\x02", CorruptFile),
        (b"   \n\n\t  ", NoText),
    ],
)
def test_unreadable_input_raises_the_documented_error(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as caught:
        extract(data)
    assert caught.value.code and caught.value.message
