"""Every supported format, built in code from known text, comes back as that text."""

from __future__ import annotations

import pytest

from core.extract import extract
from core.extract.sniff import (
    CSV,
    DOCX,
    EML,
    HTML,
    MARKDOWN,
    PDF,
    PPTX,
    TEXT,
    TSV,
    XLSX,
    ZIP,
)
from tests.documents import (
    FINANCE,
    LEGAL,
    docx_bytes,
    eml_bytes,
    encrypted_pdf_bytes,
    pdf_bytes,
    pptx_bytes,
    xlsx_bytes,
    zip_bytes,
)


def test_pdf_text_layer_is_read_page_by_page() -> None:
    # Given a three-page PDF with a text layer
    data = pdf_bytes("Page one: the invoice.", "Page two: the payment terms.", "Page three: signatures.")
    # When it is extracted
    result = extract(data)
    # Then each page keeps its own text, read from the text layer, and nothing was OCR'd
    assert result.content_type == PDF
    assert [page.number for page in result.pages] == [1, 2, 3]
    assert "payment terms" in result.pages[1].text
    assert result.method == "text_layer" and result.ocr_pages == [] and result.warnings == ()


def test_pdf_encrypted_with_an_empty_user_password_is_opened() -> None:
    # Given a PDF that is encrypted but opens without a password (owner restrictions only)
    data = encrypted_pdf_bytes(FINANCE, user_password="")
    # When it is extracted
    result = extract(data)
    # Then its text is read as usual
    assert "dividend" in result.text


def test_docx_reads_headers_body_tables_row_by_row_and_footers_in_order() -> None:
    # Given a Word document with a header, paragraphs, a table and a footer
    data = docx_bytes(
        ["Tenancy agreement between the parties.", "The tenant pays rent monthly."],
        table=[["Item", "Amount"], ["Rent", "900"], ["Deposit", "1800"]],
        header="ACME Lettings Ltd",
        footer="Page footer: confidential",
    )
    # When it is extracted
    result = extract(data)
    text = result.text
    # Then everything is there, in reading order, one table row per line
    assert result.content_type == DOCX and result.method == "docx"
    assert (
        text.index("ACME Lettings")
        < text.index("Tenancy agreement")
        < text.index("Item | Amount")
        < text.index("Rent | 900")
        < text.index("Deposit | 1800")
        < text.index("confidential")
    )


def test_pptx_reads_every_slide_with_its_notes() -> None:
    # Given a presentation with two slides, one with speaker notes
    data = pptx_bytes(
        [
            ("Quarterly results", "Revenue grew 12 percent", "Mention the dividend increase"),
            ("Outlook", "Guidance raised for next year", ""),
        ]
    )
    # When it is extracted
    result = extract(data)
    # Then each slide is a page holding its title, body and notes
    assert result.content_type == PPTX and result.page_count == 2
    assert "Quarterly results" in result.pages[0].text
    assert "Notes: Mention the dividend increase" in result.pages[0].text
    assert "Guidance raised" in result.pages[1].text


def test_xlsx_reads_every_sheet_row_by_row_with_its_name() -> None:
    # Given a workbook with two sheets of mixed values
    data = xlsx_bytes(
        {
            "January": [["Client", "Hours", "Rate"], ["Northwind", 12, 95.5], ["Contoso", 3.0, 120]],
            "February": [["Client", "Hours"], ["Fabrikam", 7]],
        }
    )
    # When it is extracted
    result = extract(data)
    # Then each sheet is a page that starts with its name, one row per line
    assert result.content_type == XLSX and result.page_count == 2
    assert result.pages[0].text.splitlines() == [
        "Sheet: January",
        "Client | Hours | Rate",
        "Northwind | 12 | 95.5",
        "Contoso | 3 | 120",
    ]
    assert result.pages[1].text.splitlines()[0] == "Sheet: February"
    assert "Fabrikam | 7" in result.pages[1].text


@pytest.mark.parametrize(
    ("data", "filename", "expected_type"),
    [
        # Comma-separated, quoted fields with commas inside
        (b'client,amount,note\n"Smith, John",100,"paid, thanks"\nDoe,200,due\n', "export.csv", CSV),
        # The European dialect: semicolons, decimal commas, CP1252
        ("client;amount;note\nMüller;100,50;bezahlt\nDoe;200,00;offen\n".encode("cp1252"), "export.csv", CSV),
        (b"client\tamount\tnote\nSmith, John\t100\tpaid\n", "export.tsv", TSV),
    ],
)
def test_csv_dialects_are_sniffed_and_rows_become_lines(
    data: bytes, filename: str, expected_type: str
) -> None:
    # When a delimited file is extracted (its name says it is a table)
    result = extract(data, filename=filename)
    lines = result.text.splitlines()
    # Then the dialect is recognised: three columns per row, quoted delimiters kept inside cells
    assert result.content_type == expected_type
    assert lines[0] == "client | amount | note"
    assert all(line.count(" | ") == 2 for line in lines)
    assert lines[1].startswith(("Smith, John | 100", "Müller | 100,50"))


def test_the_same_bytes_without_a_table_name_are_plain_text() -> None:
    # Given CSV bytes named .txt: the name is only a hint, but it is the only difference
    data = b"client,amount\nSmith,100\n"
    # Then it is read as plain text, unchanged
    result = extract(data, filename="notes.txt")
    assert result.content_type == TEXT and result.text == "client,amount\nSmith,100"


TEXT_SAMPLES = {
    "utf-8": "Café résumé — naïve coöperation: €100 fee, “quoted”.",
    "utf-16": "Café résumé — naïve coöperation: €100 fee, “quoted”.",  # with a BOM
    "utf-16-le": "Café résumé naïve coöperation: 100 fee.",  # no BOM
    "latin-1": "Le garçon a mangé à côté de l'hôtel; voilà un reçu.",
    "cp1252": "Café résumé — naïve coöperation: €100 fee, “quoted”.",
}


@pytest.mark.parametrize("encoding", sorted(TEXT_SAMPLES))
def test_plain_text_encodings_are_detected(encoding: str) -> None:
    # Given the same kind of accented text saved in a common encoding
    text = TEXT_SAMPLES[encoding]
    # When it is extracted
    result = extract(text.encode(encoding))
    # Then it decodes to exactly the original characters
    assert result.content_type == TEXT and result.method == "plain"
    assert result.text == text


def test_non_western_single_byte_text_is_detected_too() -> None:
    # Given Cyrillic text in CP1251 (which CP1252 would turn into accented gibberish)
    text = "Счёт на оплату услуг связи за март месяц. Итого к оплате 1200 рублей."
    # Then detection, not a fixed fallback, decodes it
    assert extract(text.encode("cp1251")).text == text


def test_markdown_is_text_named_by_its_extension() -> None:
    result = extract(b"# Release notes\n\n- Fixed the *login* bug\n", filename="CHANGELOG.md")
    assert result.content_type == MARKDOWN and "Fixed the *login* bug" in result.text


def test_html_keeps_visible_text_only() -> None:
    # Given a page with a title, styles, scripts, a hidden template and entities
    page = b"""<!DOCTYPE html><html><head><title>Invoice 4471</title>
    <meta charset="windows-1252"><style>body { color: red }</style>
    <script>var secret = "do not index me";</script></head>
    <body><h1>Invoice</h1><p>Total due: \x80 1,200 &amp; VAT</p>
    <table><tr><td>Consulting</td><td>1,000</td></tr></table>
    <template><p>never shown</p></template><noscript>enable JavaScript</noscript>
    <script type="application/ld+json">{"@type": "Invoice"}</script></body></html>"""
    # When it is extracted
    result = extract(page)
    # Then only what a reader sees remains (the page's declared charset decodes the euro sign)
    assert result.content_type == HTML
    assert "Invoice 4471" in result.text and "Total due: € 1,200 & VAT" in result.text
    assert "Consulting | 1,000" in result.text
    for hidden in ("color: red", "do not index me", "never shown", "enable JavaScript", "@type"):
        assert hidden not in result.text


def test_email_reads_envelope_body_and_attached_documents() -> None:
    # Given an e-mail with a plain body, an HTML twin and a PDF and a DOCX attached
    data = eml_bytes(
        subject="Invoice 4471 for March",
        body="Please find our invoice attached.",
        html="<p>Please find our <b>invoice</b> attached.</p><script>track()</script>",
        attachments=[
            ("invoice.pdf", "application/pdf", pdf_bytes(FINANCE)),
            ("judgment.docx", "application/octet-stream", docx_bytes([LEGAL])),
        ],
    )
    # When it is extracted
    result = extract(data)
    # Then the envelope and the plain body come first, then each attachment's text
    assert result.content_type == EML
    first = result.pages[0].text
    assert "Subject: Invoice 4471 for March" in first and "From: Alice Example <alice@example.com>" in first
    assert "To: accounts@example.org" in first and "Please find our invoice attached." in first
    assert "track()" not in result.text
    assert "Attachment: invoice.pdf" in result.text and "dividend" in result.text
    assert "Attachment: judgment.docx" in result.text and "limitation clause" in result.text
    assert result.method == "docx+email+text_layer"


def test_html_only_email_is_converted_and_a_bad_attachment_is_a_warning() -> None:
    # Given an HTML-only e-mail with an attachment Heron cannot read
    data = eml_bytes(
        subject="Statement",
        body="",
        attachments=[("setup.exe", "application/octet-stream", b"MZ\x90\x00" + bytes(200))],
    )
    data = data.replace(b"Content-Type: text/plain", b"Content-Type: text/html", 1)
    # When it is extracted
    result = extract(data)
    # Then the message is still read and the attachment is named in a warning
    assert "Subject: Statement" in result.text
    assert any("setup.exe" in warning and "executable" in warning for warning in result.warnings)


def test_zip_given_to_extract_yields_the_text_of_its_members() -> None:
    # Given a ZIP of a text file and a PDF (uploads split ZIPs into jobs; e-mail attachments do not)
    data = zip_bytes({"notes/readme.txt": b"Read me first.", "contract.pdf": pdf_bytes(LEGAL)})
    # When it is extracted
    result = extract(data)
    # Then both members' text is there
    assert result.content_type == ZIP
    assert "Read me first." in result.text and "limitation clause" in result.text
