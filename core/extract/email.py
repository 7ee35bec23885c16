"""E-mail (.eml): the envelope, the body (plain text preferred, HTML converted) and attachments.

Attached documents are extracted like uploads (an attached PDF, a forwarded message, a ZIP),
one nesting level deeper; an attachment that cannot be read becomes a warning, not a failure.
Inline images (logos, signatures) are not OCR'd: they are decoration, not content.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage, Message

from core.errors import CorruptFile, HeronError, LimitExceeded
from core.extract.html import html_to_text
from core.extract.plain import decode_text
from core.extract.types import Context, Parsed, Source

_ENVELOPE = ("Subject", "From", "To", "Cc", "Date")
_MAX_ATTACHMENTS = 100


def extract_email(source: Source, context: Context) -> Parsed:
    """Page 1 is the envelope and body; each attachment's pages follow, headed by its name."""
    if context.depth + 1 > context.limits.max_depth:
        raise LimitExceeded(
            f"The e-mail is nested {context.depth + 1} containers deep; "
            f"the limit is {context.limits.max_depth}."
        )
    try:
        message = email.message_from_bytes(source.read(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        headers = {name: _header(message, name) for name in _ENVELOPE if name in message}
        envelope = [f"{name}: {value}" for name, value in headers.items() if value]
        body_part = _body(message)
        body = _part_text(body_part) if body_part is not None else ""
        attachments = [part for part in _walk(message) if _is_attachment(part, body_part)]
    except (LookupError, ValueError, TypeError, AttributeError, IndexError, AssertionError) as exc:
        raise CorruptFile(f"The e-mail cannot be read: {exc}") from exc
    parsed = Parsed(pages=[("\n".join([*envelope, "", body]).strip(), "email")])
    inner = context.inner()
    for part in attachments[:_MAX_ATTACHMENTS]:
        name = _filename(part) or f"attachment.{part.get_content_subtype()}"
        context.deadline.check(f"reading attachment {name!r}")
        try:
            payload = _payload(part)
            result = inner.read_nested(payload, filename=name, content_type=part.get_content_type())
        except HeronError as error:
            if context.deadline.remaining() <= 0:
                raise
            parsed.warnings.append(f"attachment {name!r} skipped: {error.message}")
            continue
        parsed.pages.extend((f"Attachment: {name}\n{page.text}" if i == 0 else page.text, page.method)
                            for i, page in enumerate(result.pages))  # fmt: skip
        parsed.warnings.extend(f"{name}: {warning}" for warning in result.warnings)
    if len(attachments) > _MAX_ATTACHMENTS:
        parsed.warnings.append(
            f"only the first {_MAX_ATTACHMENTS} of {len(attachments)} attachments were read"
        )
    return parsed


def _header(message: EmailMessage, name: str) -> str:
    try:
        return " ".join(str(message.get(name, "")).split())
    except (ValueError, TypeError, IndexError, AttributeError):
        # A header the modern parser cannot model (bad encoded-word, broken address list, an
        # encoded-word in UTF-7 that decodes to a lone surrogate): as it was written.
        return " ".join(_raw(message, name).split())


def _body(message: EmailMessage) -> Message | None:
    """The plain or HTML body; found by hand when the standard lookup trips over a part whose
    headers cannot be decoded (it reads every part's disposition on the way)."""
    try:
        return message.get_body(preferencelist=("plain", "html"))
    except (ValueError, TypeError, LookupError):
        for subtype in ("plain", "html"):
            for part in _walk(message):
                if (
                    not part.is_multipart()
                    and part.get_content_type() == f"text/{subtype}"
                    and _disposition(part) != "attachment"
                ):
                    return part
        return None


def _disposition(part: Message) -> str | None:
    """``attachment``, ``inline`` or None, read from the raw header when it cannot be decoded."""
    try:
        return part.get_content_disposition()
    except (ValueError, TypeError, LookupError):
        return _raw(part, "Content-Disposition").split(";", 1)[0].strip().lower() or None


def _raw(part: Message, name: str) -> str:
    """A header as it was written (undecoded), or ""."""
    return next((str(value) for key, value in part.raw_items() if key.lower() == name.lower()), "")


def _filename(part: Message) -> str | None:
    """An attachment's name; None when its header cannot be decoded (it made the e-mail corrupt)."""
    try:
        return part.get_filename()
    except (ValueError, TypeError, LookupError):
        return None


def _part_text(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except (LookupError, ValueError, KeyError, AssertionError):  # unknown charset or transfer encoding
        content = decode_text(part.get_payload(decode=True) or b"")
    if isinstance(content, bytes):
        content = decode_text(content)
    if not isinstance(content, str):
        return ""
    return html_to_text(content) if part.get_content_subtype() == "html" else content


def _walk(part: Message) -> list[Message]:
    """Every part, but not the parts of an attached message (that one is read as a whole)."""
    found = [part]
    if part.is_multipart() and part.get_content_type() != "message/rfc822":
        for child in part.get_payload():
            found.extend(_walk(child))
    return found


def _is_attachment(part: Message, body: Message | None) -> bool:
    if part is body:
        return False
    if part.get_content_type() == "message/rfc822":
        return True
    if part.is_multipart():
        return False
    disposition = _disposition(part)
    if part.get_content_maintype() == "image" and disposition != "attachment":
        return False
    if disposition == "attachment" or _filename(part):
        return True
    # A second text body (e.g. the HTML twin of the plain body) is the same content again.
    return part.get_content_maintype() not in ("text", "multipart")


def _payload(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        message = inner[0] if isinstance(inner, list) and inner else inner
        if isinstance(message, Message):
            return message.as_bytes(policy=email.policy.default)
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raise CorruptFile("The attachment has no readable content.")
    return payload
