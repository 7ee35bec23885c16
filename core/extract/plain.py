"""Plain text and Markdown: detect the encoding, decode, tidy the whitespace."""

from __future__ import annotations

import re
import unicodedata

from core.extract.sniff import utf16_order
from core.extract.types import Context, Parsed, Source

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# Encodings a Western single-byte text is read as when detection cannot tell them apart; for
# bytes 0xA0-0xFF they agree with Latin-1, and CP1252 also gives 0x80-0x9F their printable
# meaning (€, curly quotes, dashes) that Latin-1 leaves as control codes.
_WESTERN = "cp1252"
_TIE = 0.1
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_SURROGATES = re.compile("[\ud800-\udfff]")


def extract_text(source: Source, context: Context) -> Parsed:
    """The whole file as one page, its encoding detected (see :func:`decode_text`)."""
    text = decode_text(source.read())
    return Parsed(pages=[(text, "plain")])


def decode_text(data: bytes) -> str:
    """Decode bytes of unknown encoding by detection, not by trial and error.

    A BOM decides; then BOM-less UTF-16 (every other byte NUL); then strict UTF-8 (which random
    single-byte text almost never passes); then charset-normalizer's statistical detection, which
    tells CP1251 from Shift-JIS from CP1252 but cannot separate the Western code pages on short
    texts — there CP1252 (a superset of Latin-1's printable range) is preferred when it fits as well.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    utf16 = utf16_order(data[:4096])
    if utf16:
        return data[: len(data) // 2 * 2].decode(utf16, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return data.decode(detect_single_byte_encoding(data), errors="replace")


def detect_single_byte_encoding(data: bytes) -> str:
    """The encoding of non-UTF-8 text, by charset-normalizer with one correction.

    On short Western texts charset-normalizer's scores cannot separate CP1252 from CP1250, CP1257
    or CP775 (they differ only in a few accented letters), and its first choice is then close to
    arbitrary: "naïve" comes back as "naďve". So when its best reading is in Latin script and
    CP1252 reads the bytes about as cleanly, CP1252 — by far the most common of them — wins.
    Texts in other scripts (Cyrillic, Greek, Japanese…) keep the detected encoding.
    """
    from charset_normalizer import from_bytes  # imported on demand: only non-UTF-8 text needs it

    matches = list(from_bytes(data[:200_000]))
    if not matches:
        return _WESTERN if _fits(data, _WESTERN) else "latin-1"
    best = matches[0]
    if not _latin_script(str(best)):
        return best.encoding
    for match in matches:
        if _WESTERN in (match.encoding, *match.could_be_from_charset) and match.chaos <= best.chaos + _TIE:
            return _WESTERN
    return best.encoding


def _latin_script(text: str) -> bool:
    letters = [character for character in text if ord(character) > 127 and character.isalpha()]
    latin = sum(1 for character in letters if unicodedata.name(character, "").startswith("LATIN"))
    return latin >= len(letters) / 2


def _fits(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def normalise_whitespace(text: str) -> str:
    text = _without_surrogates(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = _CONTROLS.sub("", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def _without_surrogates(text: str) -> str:
    """Text that can be encoded: a pair of surrogates joined into its character, a lone one
    replaced by U+FFFD. Decoders hand them over (pypdf's ToUnicode maps, UTF-7 e-mail parts and
    pages); the tokenizer, hashing and the database refuse them, and a job holding one failed
    its whole batch."""
    if not _SURROGATES.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
