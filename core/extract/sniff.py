"""Decide what a file is from its bytes; the name and the client's MIME type are only hints.

Hints never override the bytes: a file of random bytes named ``report.pdf`` is still unknown.
They only choose between readings of the same bytes (CSV or plain text, Markdown or plain text).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path, PurePosixPath

from core.extract.types import Source

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSM = "application/vnd.ms-excel.sheet.macroEnabled.12"
ENCRYPTED_OFFICE = "application/x-encrypted-office"
TEXT = "text/plain"
MARKDOWN = "text/markdown"
CSV = "text/csv"
TSV = "text/tab-separated-values"
HTML = "text/html"
EML = "message/rfc822"
PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"
BMP = "image/bmp"
WEBP = "image/webp"
GIF = "image/gif"
ZIP = "application/zip"
UNKNOWN = "application/octet-stream"

IMAGE_TYPES = frozenset({PNG, JPEG, TIFF, BMP, WEBP, GIF})
TEXT_TYPES = frozenset({TEXT, MARKDOWN})
DOCUMENT_TYPES = frozenset({PDF, DOCX, PPTX, XLSX, XLSM, TEXT, MARKDOWN, CSV, TSV, HTML, EML, *IMAGE_TYPES})
# An encrypted Office file is accepted at upload so that its job ends FAILED with ``encrypted``
# (like a password-protected PDF) instead of a misleading "unsupported type".
SUPPORTED_TYPES = frozenset({*DOCUMENT_TYPES, ZIP, ENCRYPTED_OFFICE})
SUPPORTED_DESCRIPTION = (
    "Heron reads PDF, Word (DOCX), PowerPoint (PPTX), Excel (XLSX/XLSM), CSV/TSV, plain text and "
    "Markdown, HTML, e-mail (.eml), images (PNG, JPEG, TIFF, BMP, WebP, GIF) and ZIP archives of these."
)

# What an unsupported type is, and what the user can do about it.
_DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "application/x-msdownload": ("a Windows executable", ""),
    "application/x-executable": ("an executable program", ""),
    "application/x-mach-binary": ("a macOS executable", ""),
    "application/java-vm": ("a Java class file", ""),
    "application/msword": ("a legacy Word 97–2003 document (.doc)", "save it as .docx"),
    "application/vnd.ms-excel": ("a legacy Excel 97–2003 workbook (.xls)", "save it as .xlsx"),
    "application/vnd.ms-powerpoint": ("a legacy PowerPoint 97–2003 file (.ppt)", "save it as .pptx"),
    "application/vnd.ms-outlook": ("an Outlook message (.msg)", "save it as .eml"),
    "application/x-ole-storage": ("a legacy Microsoft compound file", ""),
    "application/vnd.oasis.opendocument": ("an OpenDocument file", "save it as DOCX, XLSX or PPTX"),
    "application/epub+zip": ("an e-book (EPUB)", ""),
    "application/rtf": ("a Rich Text Format file", "save it as .docx"),
    "application/gzip": ("a gzip archive", "only ZIP archives are opened"),
    "application/x-bzip2": ("a bzip2 archive", "only ZIP archives are opened"),
    "application/x-xz": ("an xz archive", "only ZIP archives are opened"),
    "application/x-tar": ("a tar archive", "only ZIP archives are opened"),
    "application/vnd.rar": ("a RAR archive", "only ZIP archives are opened"),
    "application/x-7z-compressed": ("a 7-Zip archive", "only ZIP archives are opened"),
    "image/heic": ("a HEIC photo", "export it as JPEG"),
    "image/svg+xml": ("an SVG drawing", ""),
    "image/x-icon": ("an icon", ""),
    "image/jp2": ("a JPEG 2000 image", "export it as PNG or JPEG"),
    "application/x-sqlite3": ("an SQLite database", ""),
    UNKNOWN: ("not a format Heron recognises", ""),
}

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"GIF87a", GIF),
    (b"GIF89a", GIF),
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (b"MZ", "application/x-msdownload"),
    (b"\x7fELF", "application/x-executable"),
    (b"\xfe\xed\xfa\xce", "application/x-mach-binary"),
    (b"\xfe\xed\xfa\xcf", "application/x-mach-binary"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xce\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xca\xfe\xba\xbe", "application/java-vm"),
    (b"\x1f\x8b", "application/gzip"),
    (b"BZh", "application/x-bzip2"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"{\\rtf", "application/rtf"),
    (b"SQLite format 3\x00", "application/x-sqlite3"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\x00\x00\x00\x0cjP  ", "image/jp2"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"MThd", "audio/midi"),
    (b"\x1aE\xdf\xa3", "video/webm"),
    (b"FLV\x01", "video/x-flv"),
)
_ZIP_HEADS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
# A PDF's header may follow up to 1 KB of junk (a mail or HTTP header saved with it), as readers
# allow; it has a line of its own and an object follows. A text that merely mentions "%PDF-1.7", or a
# ZIP that stores a PDF (its members' bytes start after the ZIP's own header), is not a PDF.
_PDF_AFTER_JUNK = re.compile(rb"^[\s\S]{0,1024}?[\r\n]%PDF-\d\.\d[^\r\n]{0,8}[\r\n][\s\S]*?\d+\s+\d+\s+obj\b")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_HTML_START = re.compile(
    rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S
)
_HTML_ANYWHERE = re.compile(rb"<(html|body)\b[^>]*>", re.I)
_SVG = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*(<!doctype\s+svg[^>]*>\s*)?<svg\b", re.I | re.S)
_HEADER_LINE = re.compile(rb"^([!-9;-~]+):[ \t]?")
_MAIL_HEADERS = {
    b"from",
    b"to",
    b"cc",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"received",
    b"return-path",
    b"delivered-to",
    b"reply-to",
    b"content-type",
}
_HEIC_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")


def sniff(
    source: bytes | Path | Source, *, filename: str | None = None, content_type: str | None = None
) -> str:
    """The MIME type the bytes really are; ``application/octet-stream`` if unknown.

    Args:
        source: The document (bytes, a path, or a :class:`Source`).
        filename: The client's file name: only tells CSV/TSV/Markdown from plain text.
        content_type: The client's MIME type: used the same way as ``filename``.
    """
    src = source if isinstance(source, Source) else Source.of(source)
    head = src.head(4096)
    if head.lstrip()[:5] == b"%PDF-":
        return PDF
    if head.startswith(_ZIP_HEADS):
        return _sniff_zip(src)
    if head[:4] == b"RIFF":
        return {b"WEBP": WEBP, b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}.get(head[8:12], UNKNOWN)
    if head[:2] == b"BM" and len(head) >= 26 and head[6:10] == b"\x00\x00\x00\x00":
        return BMP
    if head[4:8] == b"ftyp":
        return "image/heic" if head[8:12] in _HEIC_BRANDS else "video/mp4"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _sniff_ole(src)
    for signature, mime in _SIGNATURES:
        if head.startswith(signature):
            return mime
    if len(head) > 262 and head[257:262] == b"ustar":
        return "application/x-tar"
    if _PDF_AFTER_JUNK.search(head[: 1024 + 64]):
        return PDF
    if _looks_like_email(head):
        return EML  # its headers are text; a part after them may not be (8-bit UTF-16, binary)
    text_head = _as_text_head(head)
    if text_head is None:
        return UNKNOWN
    return _text_kind(text_head, filename, content_type)


def is_supported(content_type: str) -> bool:
    return content_type in SUPPORTED_TYPES


def describe(content_type: str) -> tuple[str, str]:
    """What an unsupported type is in a few words, and what the user can do (may be empty)."""
    if content_type in _DESCRIPTIONS:
        return _DESCRIPTIONS[content_type]
    if content_type.startswith("application/vnd.oasis.opendocument"):
        return _DESCRIPTIONS["application/vnd.oasis.opendocument"]
    family = content_type.split("/", 1)[0]
    if family in ("audio", "video"):
        return f"{family} ({content_type})", ""
    return content_type, ""


def unsupported_message(name: str | None, content_type: str) -> str:
    """The refusal sentence for a type Heron does not read, listing what it does read."""
    what, advice = describe(content_type)
    subject = repr(name) if name else "The file"
    remedy = f"; {advice}" if advice else ""
    return f"{subject} is {what}, which Heron cannot read{remedy}. {SUPPORTED_DESCRIPTION}"


def _sniff_zip(source: Source) -> str:
    try:
        with source.open() as stream, zipfile.ZipFile(stream) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                declared = archive.read("mimetype")[:100].decode("ascii", "replace").strip()
                if declared.startswith(("application/vnd.oasis.opendocument", "application/epub")):
                    return declared
            content_types = ""
            if "[Content_Types].xml" in names:
                info = archive.getinfo("[Content_Types].xml")
                if info.file_size < 1_000_000:
                    content_types = archive.read(info).decode("utf-8", "replace")
    except Exception:
        # Sniffing only names the bytes; a damaged ZIP is still a ZIP, and its reader (or the
        # upload's unpacking) reports the damage with a proper error — unless it is a damaged
        # Office document (a truncated download), which is reported as one, on its own job.
        return _damaged_package(source.head(65536))
    if "word/document.xml" in names:
        return DOCX
    if "ppt/presentation.xml" in names:
        return PPTX
    if "xl/workbook.xml" in names:
        return XLSM if "macroEnabled" in content_types else XLSX
    # The main part is where the package's relationships say, not always at the usual path; and a
    # package missing it is a damaged document, not an archive of its XML parts (it became one
    # junk job per part, "styles.xml" filed under technology).
    for marker, kind in _MAIN_PARTS:
        if marker in content_types:
            return kind
    if content_types:
        return _by_folder({name.split("/", 1)[0] for name in names})
    return ZIP


def _damaged_package(head: bytes) -> str:
    """The kind of a ZIP whose directory cannot be read, from the member names in its first local
    headers: Office writes ``[Content_Types].xml`` and its parts first."""
    names = re.findall(rb"PK\x03\x04.{26}((?:\[Content_Types\]\.xml)|(?:word|xl|ppt)/)", head, re.DOTALL)
    return _by_folder({name.decode("ascii").rstrip("/") for name in names})


def _by_folder(folders: set[str]) -> str:
    """An Office package's kind by the folder of its parts (ZIP when none is an Office folder)."""
    return next(
        (kind for folder, kind in (("word", DOCX), ("ppt", PPTX), ("xl", XLSX)) if folder in folders), ZIP
    )


# The content type of each Office package's main part ([Content_Types].xml), most specific first.
_MAIN_PARTS = (
    ("wordprocessingml.document.main+xml", DOCX),
    ("wordprocessingml.template.main+xml", DOCX),
    ("presentationml.presentation.main+xml", PPTX),
    ("presentationml.slideshow.main+xml", PPTX),
    ("presentationml.template.main+xml", PPTX),
    ("spreadsheetml.sheet.main+xml", XLSX),
    ("spreadsheetml.template.main+xml", XLSX),
    ("ms-excel.sheet.macroEnabled.main+xml", XLSM),
)


def _sniff_ole(source: Source) -> str:
    """Name a compound file (legacy Office, .msg, encrypted OOXML) from its top-level entries.

    olefile walks the whole directory (every sector of its chain), so a telling stream that is the
    fifth entry or later is found; only top-level names count, so a .msg carrying an attached .doc
    is still a .msg.
    """
    names = _ole_top_level_names(source)
    if "EncryptedPackage" in names or "EncryptionInfo" in names:
        return ENCRYPTED_OFFICE
    if "WordDocument" in names:
        return "application/msword"
    if "Workbook" in names or "Book" in names:
        return "application/vnd.ms-excel"
    if "PowerPoint Document" in names:
        return "application/vnd.ms-powerpoint"
    if any(name.startswith("__substg1.0_") for name in names):
        return "application/vnd.ms-outlook"
    return "application/x-ole-storage"


def _ole_top_level_names(source: Source) -> set[str]:
    import olefile

    try:
        with source.open() as stream, olefile.OleFileIO(stream) as ole:
            return {path[0] for path in ole.listdir(streams=True, storages=True) if path}
    except Exception:
        # A damaged compound file is still one; it is refused as a legacy Microsoft file.
        return set()


def _as_text_head(head: bytes) -> bytes | None:
    """The head re-encoded as ASCII-compatible bytes if it is text, else None."""
    if head.startswith(b"\xef\xbb\xbf"):
        return head[3:]
    if head.startswith(_UTF16_BOMS) or _looks_like_utf16(head):
        encoding = "utf-16" if head.startswith(_UTF16_BOMS) else utf16_order(head)
        return head[: len(head) // 2 * 2].decode(encoding, "replace").encode("utf-8", "replace")
    if not head or b"\x00" in head:
        return None
    controls = sum(1 for byte in head if byte < 32 and byte not in b"\t\n\r\f\x0b\x1b")
    return head if controls <= len(head) * 0.01 else None


def _looks_like_utf16(head: bytes) -> bool:
    return utf16_order(head) is not None


def utf16_order(head: bytes) -> str | None:
    """``utf-16-le``/``-be`` when (nearly) every other byte is NUL, as in BOM-less UTF-16 text."""
    sample = head[: len(head) // 2 * 2][:2048]
    if len(sample) < 8:
        return None
    even_zero = sum(1 for byte in sample[0::2] if byte == 0) / (len(sample) / 2)
    odd_zero = sum(1 for byte in sample[1::2] if byte == 0) / (len(sample) / 2)
    if odd_zero > 0.7 and even_zero < 0.1:
        return "utf-16-le"
    if even_zero > 0.7 and odd_zero < 0.1:
        return "utf-16-be"
    return None


def _text_kind(head: bytes, filename: str | None, content_type: str | None) -> str:
    suffix = PurePosixPath((filename or "").replace("\\", "/")).suffix.lower()
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if _SVG.match(head):
        return "image/svg+xml"
    if _HTML_START.match(head) or _HTML_ANYWHERE.search(head[:1024]):
        return HTML
    if _looks_like_email(head) or ((suffix == ".eml" or mime == EML) and _HEADER_LINE.match(head)):
        return EML
    if suffix in (".html", ".htm", ".xhtml") or mime in (HTML, "application/xhtml+xml"):
        return HTML
    if suffix == ".csv" or mime in (CSV, "application/csv", "text/comma-separated-values"):
        return CSV
    if suffix in (".tsv", ".tab") or mime == TSV:
        return TSV
    if suffix in (".md", ".markdown") or mime in (MARKDOWN, "text/x-markdown"):
        return MARKDOWN
    return TEXT


def _looks_like_email(head: bytes) -> bool:
    """RFC 5322 headers at the very top, including at least two that every mail carries."""
    header_block = re.split(rb"\r?\n\r?\n", head, maxsplit=1)[0]
    if b"\x00" in header_block:
        return False
    lines = header_block.splitlines()
    if not lines or not _HEADER_LINE.match(lines[0]):
        return False
    known = set()
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            continue  # a folded continuation of the previous header
        match = _HEADER_LINE.match(line)
        if match is None:
            return False
        known.add(match.group(1).lower())
    return len(known & _MAIL_HEADERS) >= 2 and bool(known & {b"from", b"subject", b"received"})
