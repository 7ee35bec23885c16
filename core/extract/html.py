"""HTML: the text a reader sees — no scripts, styles or markup."""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

from core.extract.plain import decode_text
from core.extract.types import Context, Parsed, Source

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_INVISIBLE = frozenset({"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "head"})
# Inside <head>, only the title is shown to a reader (in the tab), and it names the document well.
_SHOWN_IN_HEAD = frozenset({"title"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "title", "tr", "ul",
    }
)  # fmt: skip
_CELLS = frozenset({"td", "th"})


def extract_html(source: Source, context: Context) -> Parsed:
    """The visible text of the page, decoded by its declared or detected charset."""
    return Parsed(pages=[(html_to_text(decode_html(source.read())), "html")])


def decode_html(data: bytes) -> str:
    """Decode by BOM, then the page's own ``<meta charset>``, then detection."""
    if not data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        declared = _META_CHARSET.search(data[:4096])
        if declared:
            try:
                encoding = codecs.lookup(declared.group(1).decode("ascii")).name
            except (LookupError, UnicodeDecodeError):
                encoding = ""
            if encoding and not encoding.startswith("utf-16"):
                return data.decode(encoding, errors="replace")
    return decode_text(data)


def html_to_text(markup: str) -> str:
    parser = _VisibleText()
    parser.feed(markup)
    parser.close()
    return parser.text()


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._hidden: dict[str, int] = {}
        self._shown_in_hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._hidden.pop("head", None)  # an unclosed <head> ends where the body starts
        if tag in _INVISIBLE:
            self._hidden[tag] = self._hidden.get(tag, 0) + 1
        elif tag in _SHOWN_IN_HEAD:
            self._shown_in_hidden += 1
        if tag in _BLOCKS:
            self._parts.append("\n")
        elif tag in _CELLS:
            self._parts.append(" | ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._hidden.get(tag):
            self._hidden[tag] -= 1
        elif tag in _SHOWN_IN_HEAD and self._shown_in_hidden:
            self._shown_in_hidden -= 1
        if tag in _BLOCKS:
            self._parts.append("\n")

    def handle_data(self, data: str) -> None:
        hidden = any(self._hidden.values())
        only_head = {tag for tag, count in self._hidden.items() if count} == {"head"}
        if not hidden or (only_head and self._shown_in_hidden):
            self._parts.append(data)

    def text(self) -> str:
        joined = "".join(self._parts)
        lines = (" ".join(line.split()).strip(" |") for line in joined.split("\n"))
        return "\n".join(line for line in lines if line)
