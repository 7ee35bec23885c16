"""Uploading documents: keep the original first, then create the job that classifies it."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from pathlib import PurePosixPath, PureWindowsPath

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.blobs import BlobStore, StoredBlob
from core.db import session_scope
from core.db.tables import Document, Job
from core.errors import UnsupportedType
from core.extract import SUPPORTED_TYPES, sniff
from core.extract.sniff import SUPPORTED_DESCRIPTION
from core.services import audit

MAX_NAME_LENGTH = 255


def submit_upload(
    *,
    engine: Engine,
    blobs: BlobStore,
    chunks: Iterable[bytes],
    filename: str | None,
    client_content_type: str | None = None,
    max_bytes: int,
    submitted_by: str | None = None,
) -> Job:
    """Store an upload and create a PENDING job for it (committed before anyone is told).

    Raises:
        EmptyFile, TooLarge: nothing is kept.
        UnsupportedType: the original is kept, but no job is created.
    """
    blob = blobs.put_stream(chunks, max_bytes=max_bytes)
    name = clean_filename(filename)
    content_type = sniff(blobs.path(blob.key))
    with session_scope(engine) as session:
        document = _document_for(session, blob, name, content_type)
    if content_type not in SUPPORTED_TYPES:
        raise UnsupportedType(f"{name!r} is {content_type}, which Heron cannot read. {SUPPORTED_DESCRIPTION}")
    with session_scope(engine) as session:
        job = Job(
            document_id=document.id,
            original_filename=name,
            file_content_type=(client_content_type or content_type)[:100],
            submitted_by=submitted_by,
        )
        session.add(job)
        session.flush()
        audit.record(
            session,
            action="document.uploaded",
            subject_type="job",
            subject_id=job.id,
            actor=submitted_by,
            sha256=blob.sha256,
            size=blob.size,
        )
    return job


def _document_for(session: Session, blob: StoredBlob, name: str, content_type: str) -> Document:
    existing = session.exec(select(Document).where(Document.sha256 == blob.sha256)).first()
    if existing:
        return existing
    document = Document(
        sha256=blob.sha256,
        original_name=name,
        content_type=content_type,
        size=blob.size,
        storage_key=blob.key,
    )
    try:
        with session.begin_nested():
            session.add(document)
    except IntegrityError:  # the same bytes arrived in another process at the same moment
        return session.exec(select(Document).where(Document.sha256 == blob.sha256)).one()
    return document


def clean_filename(filename: str | None) -> str:
    """A display name only: last path component, no control characters, bounded length.

    File names never become paths (originals are stored by their hash), so this is about
    showing the name safely, not about the filesystem.
    """
    raw = filename or ""
    base = PureWindowsPath(PurePosixPath(raw).name).name
    printable = "".join(ch for ch in unicodedata.normalize("NFC", base) if unicodedata.category(ch)[0] != "C")
    printable = printable.strip().strip(".") or "upload"
    if len(printable) > MAX_NAME_LENGTH:
        _, dot, suffix = printable.rpartition(".")
        keep = suffix if dot and len(suffix) <= 10 else ""
        printable = printable[: MAX_NAME_LENGTH - len(keep) - 1] + ("." + keep if keep else "…")
    return printable
