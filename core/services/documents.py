"""Uploading documents: keep the original first, then create the job(s) that classify it.

A ZIP is a batch: it is unpacked within the extraction limits, and every member Heron can read
becomes its own document and job, all sharing one ``batch_id``. The ZIP itself is kept too.
"""

from __future__ import annotations

import tempfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.blobs import BlobStore, StoredBlob
from core.db import session_scope
from core.db.tables import Document, Job, new_id
from core.errors import EmptyFile, UnsupportedType
from core.extract import ExtractionLimits, is_supported, sniff, unsupported_message
from core.extract.archive import unpack
from core.extract.sniff import SUPPORTED_DESCRIPTION, ZIP
from core.extract.types import Source
from core.services import audit

MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class Skipped:
    """A ZIP member that did not become a job, and why (a stable code and a sentence)."""

    filename: str
    code: str
    message: str


@dataclass(frozen=True)
class Submission:
    """What an upload became: one job, or for a ZIP one job per readable member."""

    jobs: list[Job]
    batch_id: str | None = None
    skipped: list[Skipped] = field(default_factory=list)


def submit_upload(
    *,
    engine: Engine,
    blobs: BlobStore,
    chunks: Iterable[bytes],
    filename: str | None,
    client_content_type: str | None = None,
    max_bytes: int,
    submitted_by: str | None = None,
    limits: ExtractionLimits | None = None,
) -> Job:
    """Store an upload and create a PENDING job for it; for a ZIP, the first member's job.

    Callers that accept ZIPs should use :func:`submit_batch` to get (and send) every job.
    """
    return submit_batch(
        engine=engine,
        blobs=blobs,
        chunks=chunks,
        filename=filename,
        client_content_type=client_content_type,
        max_bytes=max_bytes,
        submitted_by=submitted_by,
        limits=limits,
    ).jobs[0]


def submit_batch(
    *,
    engine: Engine,
    blobs: BlobStore,
    chunks: Iterable[bytes],
    filename: str | None,
    client_content_type: str | None = None,
    max_bytes: int,
    submitted_by: str | None = None,
    limits: ExtractionLimits | None = None,
) -> Submission:
    """Store an upload and create its PENDING job(s), committed before anyone is told.

    Only cheap checks run here (size, emptiness, type from the first bytes, a ZIP's directory);
    reading the document is the job's work.

    Raises:
        EmptyFile, TooLarge: nothing is kept.
        UnsupportedType: the original is kept, but no job is created.
        LimitExceeded, CorruptFile, EncryptedFile: a ZIP that is refused as a whole (a bomb,
            too many members, nested too deep, names that climb out of it); the ZIP is kept.
    """
    blob = blobs.put_stream(chunks, max_bytes=max_bytes)
    name = clean_filename(filename)
    content_type = sniff(blobs.path(blob.key), filename=name, content_type=client_content_type)
    with session_scope(engine) as session:
        document = _document_for(session, blob, name, content_type)
    if content_type == ZIP:
        return _submit_archive(
            engine=engine,
            blobs=blobs,
            archive=blob,
            name=name,
            limits=limits or ExtractionLimits(),
            submitted_by=submitted_by,
        )
    if not is_supported(content_type):
        raise UnsupportedType(unsupported_message(name, content_type))
    with session_scope(engine) as session:
        job = _new_job(session, document, name, (client_content_type or content_type), submitted_by, blob)
    return Submission(jobs=[job])


def _submit_archive(
    *,
    engine: Engine,
    blobs: BlobStore,
    archive: StoredBlob,
    name: str,
    limits: ExtractionLimits,
    submitted_by: str | None,
) -> Submission:
    accepted: list[tuple[str, StoredBlob, str]] = []
    skipped: list[Skipped] = []
    incoming = blobs.root / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    # Members are unpacked to files named by a counter in a private directory, then moved into
    # the content-addressed store: their names never reach the filesystem.
    with tempfile.TemporaryDirectory(dir=incoming, prefix="zip-") as workdir:
        members = unpack(Source(path=blobs.path(archive.key)), limits=limits, workdir=Path(workdir))
        for member in members:
            member_name = clean_filename(member.name)
            if member.size == 0:
                skipped.append(Skipped(member.name, EmptyFile.code, "The member is empty (0 bytes)."))
                continue
            member_type = sniff(member.path, filename=member_name)
            if not is_supported(member_type) or member_type == ZIP:
                skipped.append(
                    Skipped(member.name, UnsupportedType.code, unsupported_message(member.name, member_type))
                )
                continue
            with open(member.path, "rb") as handle:
                accepted.append((member_name, blobs.put_file(handle), member_type))
    if not accepted:
        raise UnsupportedType(
            f"The ZIP {name!r} contains no document Heron can read ({len(skipped)} members skipped). "
            f"{SUPPORTED_DESCRIPTION}"
        )
    batch_id = new_id()
    jobs = []
    with session_scope(engine) as session:
        for member_name, blob, member_type in accepted:
            document = _document_for(session, blob, member_name, member_type)
            jobs.append(_new_job(session, document, member_name, member_type, submitted_by, blob, batch_id))
        audit.record(
            session,
            action="batch.uploaded",
            subject_type="batch",
            subject_id=batch_id,
            actor=submitted_by,
            sha256=archive.sha256,
            size=archive.size,
            jobs=len(jobs),
            skipped=len(skipped),
        )
    return Submission(jobs=jobs, batch_id=batch_id, skipped=skipped)


def _new_job(
    session: Session,
    document: Document,
    name: str,
    content_type: str,
    submitted_by: str | None,
    blob: StoredBlob,
    batch_id: str | None = None,
) -> Job:
    job = Job(
        document_id=document.id,
        original_filename=name,
        file_content_type=content_type[:100],
        submitted_by=submitted_by,
        batch_id=batch_id,
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


def group_as_batch(*, engine: Engine, job_ids: list[str]) -> str:
    """Give jobs uploaded together one batch id (jobs from a ZIP keep theirs if alone)."""
    from sqlalchemy import update

    batch_id = new_id()
    with session_scope(engine) as session:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(batch_id=batch_id))
    return batch_id
