"""Build test documents in code (no third-party files are committed)."""

from __future__ import annotations

import io
import textwrap


def pdf_bytes(*pages: str) -> bytes:
    """A PDF with a real text layer, one page per argument."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    for page in pages:
        y = 800
        for paragraph in page.split("\n"):
            for line in textwrap.wrap(paragraph, 90) or [""]:
                pdf.drawString(40, y, line)
                y -= 14
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def docx_bytes(
    paragraphs: list[str], table: list[list[str]] | None = None, header: str = "", footer: str = ""
) -> bytes:
    import docx

    document = docx.Document()
    if header:
        document.sections[0].header.paragraphs[0].text = header
    if footer:
        document.sections[0].footer.paragraphs[0].text = footer
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


CLINICAL = (
    "Discharge summary. The patient was admitted to the cardiology ward with acute chest pain. "
    "ECG showed ST elevation and troponin was raised. She underwent primary PCI with a stent to the "
    "LAD. Medication on discharge: aspirin 75 mg, ticagrelor 90 mg twice daily, atorvastatin 80 mg. "
    "Follow-up in the cardiology clinic in six weeks; the GP should review blood pressure."
)
FINANCE = (
    "Quarterly results. Revenue rose 12% year on year to $4.2 billion and operating margin expanded "
    "to 18%. Net interest income grew as the loan book expanded, while the bank's capital ratio "
    "stayed at 13.5%. The board declared a dividend of 40 cents per share and raised full-year "
    "guidance for earnings per share. Analysts expect the stock to re-rate."
)
LEGAL = (
    "IN THE HIGH COURT OF JUSTICE. Judgment. The claimant alleges breach of contract and seeks "
    "damages. The defendant denies liability and contends the limitation clause excludes the claim. "
    "Having considered the witness statements and counsel's submissions, the court finds the clause "
    "unenforceable under the statute and enters judgment for the claimant with costs."
)
EDUCATION = (
    "Course syllabus, BIO 101, Fall semester. Students attend two lectures and one lab each week. "
    "Grading: midterm exam 30%, final exam 40%, lab reports 20%, participation 10%. Office hours are "
    "Tuesdays. Assignments submitted late lose 10% per day. The course teaches students the basics "
    "of cell biology and prepares them for the second-year curriculum."
)
TECHNOLOGY = (
    "Release notes v2.4.0. The REST API now supports pagination on the /v2/orders endpoint. Fixed a "
    "memory leak in the worker process when the database connection pool was exhausted. Upgraded the "
    "Kubernetes deployment to use readiness probes. Breaking change: the Python SDK drops support for "
    "version 3.8. Run the migration script before deploying the new container image."
)
ENTERTAINMENT = (
    "Film review. The director's new thriller is a slow-burning delight, anchored by a magnetic lead "
    "performance. The screenplay twists nicely in the third act, the score is haunting, and the "
    "cinematography turns the city into a character. It premiered at the festival to a standing "
    "ovation and opens in cinemas on Friday before streaming later this year."
)
OTHER = (
    "Match report. The home side won 3-1 in a thrilling derby. The striker opened the scoring after "
    "ten minutes, the visitors equalised with a header before half-time, and two late goals sealed "
    "the points. The manager praised the fans and the team climbs to third in the league table "
    "ahead of next Saturday's away game."
)
OBVIOUS = {
    "healthcare": CLINICAL,
    "finance": FINANCE,
    "legal": LEGAL,
    "education": EDUCATION,
    "technology": TECHNOLOGY,
    "entertainment": ENTERTAINMENT,
    "other": OTHER,
}


# --- Builders for the ingestion tests: every format from known text, and hostile files. ---

OCR_LINES = (
    "Invoice number 4471 for consulting services",
    "delivered to Northwind Trading in March.",
    "Payment is due within thirty days of receipt.",
    "Please quote the invoice number with your transfer.",
)


def font_path() -> str:
    """Bitstream Vera, the TrueType font reportlab ships (no system font needed)."""
    from pathlib import Path

    import reportlab

    return str(Path(reportlab.__file__).parent / "fonts" / "Vera.ttf")


def text_image(lines: tuple[str, ...] | list[str] = OCR_LINES, *, width: int = 1700, size: int = 40):  # type: ignore[no-untyped-def]
    """A white page with black text in a TrueType font, like a clean scan at ~300 dpi."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path(), size)
    height = 160 + len(lines) * int(size * 1.8)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((80, 80 + number * int(size * 1.8)), line, font=font, fill=0)
    return image


def image_bytes(image, fmt: str, **save_options: object) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_options)
    return buffer.getvalue()


def rotated_jpeg_bytes(lines: tuple[str, ...] = OCR_LINES) -> bytes:
    """A JPEG stored sideways with EXIF Orientation=6, as phones save portrait photos."""
    from PIL import Image

    upright = text_image(lines).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the sensor recorded
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    return image_bytes(stored, "JPEG", quality=90, exif=exif.tobytes())


def multipage_tiff_bytes(pages: list[tuple[str, ...]]) -> bytes:
    images = [text_image(lines) for lines in pages]
    return image_bytes(images[0], "TIFF", save_all=True, append_images=images[1:], compression="tiff_lzw")


def scanned_pdf_bytes(*pages: tuple[str, ...] | str) -> bytes:
    """A PDF whose pages are images only (no text layer); a ``str`` page gets a real text layer."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    width, height = A4
    for page in pages:
        if isinstance(page, str):
            pdf.drawString(40, 800, page)
        else:
            image = text_image(page)
            shown_width = width - 60
            shown_height = shown_width * image.height / image.width
            pdf.drawImage(ImageReader(image), 30, height - 30 - shown_height, shown_width, shown_height)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def encrypted_pdf_bytes(text: str, *, user_password: str, owner_password: str = "owner") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(text))))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def pptx_bytes(slides: list[tuple[str, str, str]]) -> bytes:
    """One slide per (title, body, speaker notes)."""
    from pptx import Presentation

    presentation = Presentation()
    for title, body, notes in slides:
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def xlsx_bytes(sheets: dict[str, list[list[object]]]) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def eml_bytes(
    *,
    subject: str,
    body: str,
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
) -> bytes:
    """An e-mail; ``attachments`` are (file name, MIME type, bytes)."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = "Alice Example <alice@example.com>"
    message["To"] = "accounts@example.org"
    message["Date"] = "Mon, 02 Mar 2026 09:30:00 +0000"
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for name, mime, data in attachments:
        maintype, subtype = mime.split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()


def zip_bytes(members: dict[str, bytes], *, compression: int | None = None) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(
        buffer, "w", compression if compression is not None else zipfile.ZIP_DEFLATED
    ) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_bomb_bytes(uncompressed_mb: int = 20) -> bytes:
    """A small ZIP with one member of zeros that inflates ~1000×."""
    import zipfile

    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("payload.txt", "w", force_zip64=True) as member,
    ):
        chunk = b"\0" * (1024 * 1024)
        for _ in range(uncompressed_mb):
            member.write(chunk)
    return buffer.getvalue()


def nested_zip_bytes(depth: int, inner: dict[str, bytes]) -> bytes:
    """``inner`` wrapped in ``depth`` ZIPs (depth 1 = a plain ZIP of ``inner``)."""
    data = zip_bytes(inner)
    for level in range(depth - 1):
        data = zip_bytes({f"level{depth - level - 1}.zip": data})
    return data


def png_bomb_bytes(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid-looking PNG header claiming a huge 1-bit image, with almost no data behind it."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def ole_bytes(stream_name: str = "WordDocument", *, before: tuple[str, ...] = ()) -> bytes:
    """A valid compound file (the container of .doc, .xls, .msg, encrypted OOXML) with empty streams.

    Its directory lists ``before`` and then ``stream_name``, so the telling stream can sit in a
    later directory sector than the first (four entries fit in one), as in real files.
    """
    import struct

    sector = 512
    free, end_of_chain, fat_sector, no_stream = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
    names = ["Root Entry", *before, stream_name]
    directory_sectors = -(-len(names) // 4)
    header = bytearray(sector)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHHH", header, 24, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<I", header, 44, 1)  # one FAT sector
    struct.pack_into("<I", header, 48, 1)  # the directory starts at sector 1
    struct.pack_into("<I", header, 56, 4096)
    struct.pack_into("<III", header, 60, end_of_chain, 0, end_of_chain)
    struct.pack_into("<I", header, 76, 0)  # the FAT is sector 0
    header[80:sector] = b"\xff" * (sector - 80)
    fat = bytearray(struct.pack("<I", free) * (sector // 4))
    struct.pack_into("<I", fat, 0, fat_sector)
    for number in range(1, directory_sectors + 1):  # the directory's chain: 1 -> 2 -> ... -> end
        struct.pack_into("<I", fat, number * 4, number + 1 if number < directory_sectors else end_of_chain)
    directory = bytearray(directory_sectors * sector)
    for slot in range(directory_sectors * 4):
        struct.pack_into("<III", directory, slot * 128 + 68, no_stream, no_stream, no_stream)
    for slot, name in enumerate(names):
        encoded = (name + "\0").encode("utf-16-le")
        entry = slot * 128
        directory[entry : entry + len(encoded)] = encoded
        # The root's child is entry 1; the streams are chained as right siblings (a valid tree).
        right = slot + 1 if 0 < slot < len(names) - 1 else no_stream
        child = 1 if slot == 0 and len(names) > 1 else no_stream
        struct.pack_into("<HBB", directory, entry + 64, len(encoded), 5 if slot == 0 else 2, 1)
        struct.pack_into("<III", directory, entry + 68, no_stream, right, child)
        struct.pack_into("<II", directory, entry + 116, end_of_chain, 0)
    return bytes(header) + bytes(fat) + bytes(directory)


def word_recall(expected: str, found: str) -> float:
    """Share of the expected words (case-insensitive, punctuation ignored) that were found."""
    import re

    def words(text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+", text.lower())

    found_words = set(words(found))
    wanted = words(expected)
    return sum(word in found_words for word in wanted) / len(wanted)


REAL_ESTATE = [
    "For sale: three-bedroom semi-detached house with off-street parking and a south-facing garden. "
    "Asking price 425,000. Freehold, no onward chain, EPC rating C. Viewings through the estate agent.",
    "The letting agent confirmed the tenancy starts on 1 May; the landlord wants six weeks' deposit "
    "and a guarantor. The flat is unfurnished, two bedrooms, close to the station, 1,450 per month.",
    "Property market update: house prices in the region rose 3% this quarter while the number of "
    "listings fell. Estate agents report buyers competing for detached homes with large gardens.",
    "Survey report for 14 Mill Lane: the roof needs repointing, damp found in the cellar, the boiler "
    "is 15 years old. We recommend the buyer renegotiates the offer before exchange of contracts.",
    "Open house this Saturday! Renovated bungalow, new kitchen, two bathrooms, double garage, walking "
    "distance to schools. Offers over 310,000 invited. Contact the listing agent to book a slot.",
    "Commercial property to let: 2,400 sq ft ground-floor retail unit on the high street, ten-year "
    "lease, rent reviews every five years, service charge payable to the managing agent.",
    "We viewed eleven houses before making an offer on the cottage; the seller accepted, the conveyancer "
    "ran the searches and we finally got the keys on completion day after the survey came back clean.",
    "New-build development: phase two of 48 homes released, show home open daily, help-to-buy available, "
    "plots with sea views reserved quickly, completion expected next spring, parking for two cars.",
]


def _raw_pdf(content: bytes, *, filter_name: str | None = None, form: bytes | None = None) -> bytes:
    """A one-page PDF written by hand around a content stream (with correct xref offsets).

    With ``form``, the page's resources also name a Flate-compressed form XObject ``/X0``.
    """
    xobject = b" /XObject << /X0 6 0 R >>" if form is not None else b""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >>%s >> /Contents 4 0 R >>" % xobject,
        b"<< /Length %d%s >>\nstream\n" % (len(content), b" /Filter /FlateDecode" if filter_name else b"")
        + content
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if form is not None:
        objects.append(
            b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
            b"/Length %d /Filter /FlateDecode >>\nstream\n" % len(form) + form + b"\nendstream"
        )
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def text_operator_pdf_bytes(operators: int = 1_500_000, *, compress: bool = True) -> bytes:
    """A valid one-page PDF whose page holds ``operators`` text-showing operators (pypdf: minutes)."""
    import zlib

    content = b"BT /F1 1 Tf 0 0 Td " + b"(a)Tj " * operators + b"ET"
    return _raw_pdf(zlib.compress(content, 6), filter_name="FlateDecode") if compress else _raw_pdf(content)


def form_drawn_again_pdf_bytes(operators: int = 500_000, uses: int = 40) -> bytes:
    """A valid one-page, few-kB PDF pypdf needs minutes for, each step within its own safety budgets.

    The page draws one form XObject of ``operators`` text operators ``uses`` times; pypdf parses
    and walks the form again at every use (~4 s each for 500,000 operators on 2 cores).
    """
    import zlib

    form = zlib.compress(b"BT /F1 1 Tf 0 0 Td " + b"(a)Tj " * operators + b"ET", 6)
    return _raw_pdf(b" ".join([b"/X0 Do"] * uses), form=form)


def inflating_pdf_bytes(inflated_mb: int = 1536) -> bytes:
    """A valid one-page PDF whose Flate content stream inflates to ``inflated_mb`` MB of spaces."""
    import zlib

    squeezer = zlib.compressobj(9)
    chunk = b" " * (1 << 20)
    parts = [squeezer.compress(b"BT /F1 12 Tf 72 700 Td (")]
    parts.extend(squeezer.compress(chunk) for _ in range(inflated_mb))
    parts.append(squeezer.compress(b") Tj ET"))
    parts.append(squeezer.flush())
    return _raw_pdf(b"".join(parts), filter_name="FlateDecode")


def lone_surrogate_pdf_bytes(text: str) -> bytes:
    """A one-page PDF whose font's ToUnicode map sends the glyph "X" to U+D800, a lone surrogate,
    as broken generators write: pypdf hands the surrogate over (it decodes with surrogatepass)."""
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Adobe-Identity-UCS def"
        b" /CMapType 2 def 1 begincodespacerange <00> <FF> endcodespacerange 1 beginbfchar <58> <D800>"
        b" endbfchar endcmap CMapName currentdict /CMap defineresource pop end end"
    )
    content = b"BT /F1 12 Tf 50 700 Td (" + text.encode("latin-1") + b" X) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >>"
        b" /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(cmap), cmap),
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)


def utf7_eml_bytes(body: str) -> bytes:
    """An e-mail whose text part is declared UTF-7 and holds "+2AA-": decoded, a lone surrogate."""
    return (
        b"From: a@example.com\nTo: b@example.com\nSubject: payment\nMIME-Version: 1.0\n"
        b"Content-Type: text/plain; charset=utf-7\n\n" + body.encode("ascii") + b" +2AA- tomorrow.\n"
    )


def utf7_html_bytes(body: str) -> bytes:
    """A web page declared UTF-7, holding a lone surrogate once decoded."""
    return (
        b'<html><head><meta charset="utf-7"></head><body><p>'
        + body.encode("ascii")
        + b" +2AA-</p></body></html>"
    )
