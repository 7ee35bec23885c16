"""PDF text layer, page by page."""

from __future__ import annotations

import io
import logging

from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PdfReadError

from core.errors import CorruptFile, EncryptedFile, LimitExceeded

logging.getLogger("pypdf").setLevel(logging.ERROR)


def page_texts(data: bytes, *, max_pages: int) -> list[str]:
    """The text layer of every page.

    Raises:
        EncryptedFile: the empty password does not open it.
        CorruptFile: pypdf cannot parse it.
        LimitExceeded: more than ``max_pages`` pages.
    """
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise EncryptedFile("The PDF is password-protected; remove the password and upload it again.")
        count = len(reader.pages)
        if count > max_pages:
            raise LimitExceeded(f"The PDF has {count} pages; the limit is {max_pages}.")
        return [page.extract_text() or "" for page in reader.pages]
    except FileNotDecryptedError as exc:
        raise EncryptedFile(
            "The PDF is password-protected; remove the password and upload it again."
        ) from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise CorruptFile(f"The PDF cannot be read: {exc}") from exc
