"""Decide what a file is from its bytes."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from core.extract.office import DOCX

SUPPORTED_TYPES = frozenset({"application/pdf", DOCX, "text/plain"})
SUPPORTED_DESCRIPTION = "Supported: PDF, DOCX and plain text (TXT/MD)."

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"BM", "image/bmp"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (b"MZ", "application/x-msdownload"),
    (b"\x7fELF", "application/x-executable"),
    (b"\x1f\x8b", "application/gzip"),
    (b"Rar!", "application/vnd.rar"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
)


def sniff(source: bytes | Path) -> str:
    """The MIME type the bytes (or the file) really are; ``application/octet-stream`` if unknown."""
    if isinstance(source, Path):
        with open(source, "rb") as handle:
            head = handle.read(2048)
    else:
        head = source[:2048]
    if b"%PDF-" in head[:1024]:
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return _sniff_zip(source if isinstance(source, Path) else io.BytesIO(source))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    for signature, mime in _SIGNATURES:
        if head.startswith(signature):
            return mime
    if _looks_like_text(head):
        return "text/plain"
    return "application/octet-stream"


def _sniff_zip(source: Path | io.BytesIO) -> str:
    try:
        with zipfile.ZipFile(source) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return "application/zip"
    if "word/document.xml" in names:
        return DOCX
    if any(name.startswith("ppt/") for name in names):
        return "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    if any(name.startswith("xl/") for name in names):
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return "application/zip"


def _looks_like_text(head: bytes) -> bool:
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True
    if b"\x00" in head:
        return False
    controls = sum(1 for byte in head if byte < 32 and byte not in b"\t\n\r\f\x0b")
    return controls <= len(head) * 0.01
