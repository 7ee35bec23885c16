"""Office Open XML documents."""

from __future__ import annotations

import io
import zipfile

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def docx_text(data: bytes) -> str:
    """Headers, body paragraphs and tables in document order, then footers."""
    import docx  # python-docx is slow to import; only pay for it when a DOCX arrives
    from docx.opc.exceptions import PackageNotFoundError

    from core.errors import CorruptFile

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise CorruptFile(f"The DOCX cannot be read: {exc}") from exc
    parts: list[str] = []
    for section in document.sections:
        parts.extend(p.text for p in section.header.paragraphs if p.text.strip())
    for block in document.element.body.iterchildren():
        tag = block.tag.rsplit("}", 1)[-1]
        if tag == "p":
            text = "".join(node.text or "" for node in block.iter() if node.tag.endswith("}t"))
            if text.strip():
                parts.append(text)
        elif tag == "tbl":
            for row in block.iter():
                if row.tag.endswith("}tr"):
                    cells = [
                        "".join(t.text or "" for t in cell.iter() if t.tag.endswith("}t")).strip()
                        for cell in row.iterchildren()
                        if cell.tag.endswith("}tc")
                    ]
                    if any(cells):
                        parts.append(" | ".join(cells))
    for section in document.sections:
        parts.extend(p.text for p in section.footer.paragraphs if p.text.strip())
    return "\n".join(parts)
