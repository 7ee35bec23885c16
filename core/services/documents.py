"""Uploading documents: keep the original first, then create the job(s) that classify it.

A ZIP is a batch: the upload keeps it and answers at once with the batch id; a worker unpacks it
within the extraction limits (an ``unpack`` task), and every member Heron can read becomes its own
document and job, all sharing that ``batch_id``. The ZIP itself is kept too.
"""

from __future__ import annotations

import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

from sqlalchemy import Engine, bindparam, insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from core.blobs import CHUNK_SIZE, BlobStore, StoredBlob
from core.db import outside_transactions, session_scope
from core.db.tables import AuditEvent, Document, Job, RefusedUpload, Task, TaskStatus, new_id, utcnow
from core.errors import EmptyFile, HeronError, NotFound, UnsupportedType
from core.events import JOB_EVENTS
from core.extract import ExtractionLimits, is_supported, sniff, unsupported_message
from core.extract.archive import unpack
from core.extract.sniff import SUPPORTED_DESCRIPTION, ZIP
from core.extract.types import Source
from core.services import audit, tasks
from core.services.jobs import JobView, job_views, new_job_view
from core.work import WorkSender

MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class Skipped:
    """A ZIP member that did not become a job, and why (a stable code and a sentence)."""

    filename: str
    code: str
    message: str


@dataclass(frozen=True)
class Submission:
    """What an upload became: one job, or for a ZIP the task that will unpack it into jobs."""

    jobs: list[JobView]
    batch_id: str | None = None
    skipped: list[Skipped] = field(default_factory=list)
    unpack_task_id: str | None = None


@dataclass(frozen=True)
class BatchView:
    """A batch as clients follow it: its jobs so far, and its ZIPs still being unpacked.

    ``status`` is UNPACKING while a ZIP of the batch waits for or is in its worker, else READY
    (the jobs then carry their own statuses). A ZIP refused as a whole is listed in ``skipped``
    under its own name, with the code (``limit_exceeded``, ``corrupt``, ``unsupported_type``...).
    """

    batch_id: str
    status: str
    job_ids: list[str]
    jobs: list[JobView]
    skipped: list[Skipped]
    archives: list[dict[str, Any]]


def new_batch_id() -> str:
    """An id for documents uploaded together (several files in one request)."""
    return new_id()


def upload(
    *,
    engine: Engine,
    blobs: BlobStore,
    work: WorkSender,
    stream: BinaryIO,
    filename: str | None,
    client_content_type: str | None = None,
    max_bytes: int,
    submitted_by: str | None = None,
    batch_id: str | None = None,
) -> Submission:
    """Store one upload (read from ``stream``) and create its job, or for a ZIP its unpack task, and
    send it to a worker once committed: what the API's upload routes and the console's Classify
    page do. Raises as :func:`submit_batch` does."""
    submission = submit_batch(
        engine=engine,
        blobs=blobs,
        chunks=iter(lambda: stream.read(CHUNK_SIZE), b""),
        filename=filename,
        client_content_type=client_content_type,
        max_bytes=max_bytes,
        submitted_by=submitted_by,
        batch_id=batch_id,
    )
    for job in submission.jobs:
        JOB_EVENTS.remember(job.id, job)  # the client's first polls need no query
        work.send_classify(job.id)
    if submission.unpack_task_id:
        work.send_task(submission.unpack_task_id, "unpack")
    return submission


@dataclass(frozen=True)
class Upload:
    """One file of a multi-file upload: its bytes, and what the client called it."""

    stream: BinaryIO
    filename: str | None
    content_type: str | None = None


@dataclass(frozen=True)
class Uploads:
    """What a multi-file upload became: one batch (``None`` when nothing of it was kept), its jobs so
    far, the ZIPs a worker is unpacking into it, and what was not queued: files refused (empty, too
    large, of an unsupported type …) and the members of ZIPs read at upload that were skipped."""

    batch_id: str | None
    jobs: list[JobView]
    skipped: list[Skipped]
    unpacking: int


def upload_several(
    *,
    engine: Engine,
    blobs: BlobStore,
    work: WorkSender,
    files: Sequence[Upload],
    max_bytes: int,
    submitted_by: str | None = None,
) -> Uploads:
    """Store several uploads as one batch, as :func:`upload` stores one. A file Heron refuses does
    not stop the others; the batch keeps its name and reason, so following the batch later says
    what this answer said."""
    batch_id = new_batch_id()
    queued: list[JobView] = []
    skipped: list[Skipped] = []
    refused: list[Skipped] = []
    unpacking = 0
    for file in files:
        try:
            submission = upload(
                engine=engine,
                blobs=blobs,
                work=work,
                stream=file.stream,
                filename=file.filename,
                client_content_type=file.content_type,
                max_bytes=max_bytes,
                submitted_by=submitted_by,
                batch_id=batch_id,
            )
        except HeronError as error:
            refused.append(Skipped(clean_filename(file.filename), error.code, error.message))
            continue
        queued.extend(submission.jobs)
        skipped.extend(submission.skipped)
        unpacking += submission.unpack_task_id is not None
    if not queued and not unpacking:
        return Uploads(batch_id=None, jobs=[], skipped=skipped + refused, unpacking=0)
    if refused:
        with session_scope(engine) as session:
            session.add_all(
                RefusedUpload(batch_id=batch_id, filename=item.filename, code=item.code, message=item.message)
                for item in refused
            )
    return Uploads(batch_id=batch_id, jobs=queued, skipped=skipped + refused, unpacking=unpacking)


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
) -> JobView:
    """Store an upload and create a PENDING job for it (not for ZIPs: use :func:`submit_batch`).

    Raises:
        UnsupportedType: the upload is a ZIP, whose jobs only exist once a worker unpacked it.
    """
    submission = submit_batch(
        engine=engine,
        blobs=blobs,
        chunks=chunks,
        filename=filename,
        client_content_type=client_content_type,
        max_bytes=max_bytes,
        submitted_by=submitted_by,
        limits=limits,
    )
    if not submission.jobs:
        raise UnsupportedType("A ZIP is unpacked by a worker into a batch of jobs; use submit_batch.")
    return submission.jobs[0]


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
    batch_id: str | None = None,
) -> Submission:
    """Store an upload and create its PENDING job, or for a ZIP its ``unpack`` task, committed
    before anyone is told.

    Only cheap checks run here (size, emptiness, type from the first bytes); reading the document,
    or unpacking the ZIP, is a worker's job: send the job (or the task) after this returns.

    Args:
        batch_id: The batch the job (or the ZIP's members) join; a ZIP gets a new one if None.

    Raises:
        EmptyFile, TooLarge: nothing is kept.
        UnsupportedType: the original is kept, but no job is created.
    """
    del limits  # the worker applies them when it reads (or unpacks) the upload
    blob = blobs.put_stream(chunks, max_bytes=max_bytes)
    name = clean_filename(filename)
    content_type = sniff(blobs.path(blob.key), filename=name, content_type=client_content_type)
    if content_type != ZIP and not is_supported(content_type):
        with session_scope(engine) as session:
            _document_for(session, blob, name, content_type)
        raise UnsupportedType(unsupported_message(name, content_type))
    if content_type != ZIP and engine.dialect.name == "postgresql":
        made = _insert_new_upload(
            engine, blob, name, content_type, client_content_type or content_type, submitted_by, batch_id
        )
        if made is not None:
            return Submission(jobs=[new_job_view(*made)], batch_id=batch_id)
    with session_scope(engine) as session:
        document = _document_for(session, blob, name, content_type)
        if content_type == ZIP:
            batch_id = batch_id or new_id()
            task = tasks.create_task(
                session,
                kind="unpack",
                params={"batch_id": batch_id, "document_id": document.id, "filename": name},
                requested_by=submitted_by,
            )
            return Submission(jobs=[], batch_id=batch_id, unpack_task_id=task.id)
        job = _new_job(
            session, document, name, (client_content_type or content_type), submitted_by, blob, batch_id
        )
        # A new job has no prediction nor correction yet: its view needs no query.
        return Submission(jobs=[new_job_view(job, document)], batch_id=batch_id)


def run_unpack_task(
    *,
    engine: Engine,
    blobs: BlobStore,
    task_id: str,
    limits: ExtractionLimits,
    work: WorkSender | None = None,
) -> list[str]:
    """Unpack a ZIP upload into one PENDING job per readable member (the worker's side of a ZIP),
    and send each to a worker once they are committed (given ``work``; ``heron classify`` runs
    them itself).

    Runs in a worker, not in the upload request. Members are streamed to files named by a counter
    in a private directory, within the ZIP limits (members, total bytes, ratio, nesting), and
    moved into the content-addressed store: their names never reach the filesystem. The jobs and
    the task's ending are committed together, so running it twice creates the jobs once.

    Returns the ids of the jobs created, or an empty list when the task
    was not PENDING, or the ZIP was refused as a whole (the task then ends FAILED with the code).
    """
    with tasks.running(engine, task_id) as task:
        return [] if task is None else _unpack_task(engine, blobs, task, limits, work)


def _unpack_task(
    engine: Engine, blobs: BlobStore, task: Task, limits: ExtractionLimits, work: WorkSender | None
) -> list[str]:
    task_id, params = task.id, task.params
    batch_id, name = params["batch_id"], params.get("filename", "upload.zip")
    try:
        with session_scope(engine) as session:
            archive = session.get(Document, params["document_id"])
            if archive is None:
                raise NotFound(f"The ZIP of batch {batch_id} is no longer stored.")
            archive_key, archive_sha256, archive_size = archive.storage_key, archive.sha256, archive.size
        accepted, skipped = _unpack_members(blobs, archive_key, limits)
        if not accepted:
            raise UnsupportedType(
                f"The ZIP {name!r} contains no document Heron can read ({len(skipped)} members skipped). "
                f"{SUPPORTED_DESCRIPTION}"
            )
    except HeronError as error:
        tasks.finish(
            engine,
            task_id,
            TaskStatus.FAILED,
            result={"batch_id": batch_id, "job_ids": [], "skipped": []},
            error_code=error.code,
            error_message=error.message,
        )
        return []
    except Exception:
        # A disk or database hiccup: waiting again, so the queue's retry (or the sweeper) runs it.
        tasks.put_back(engine, task_id, stage="unpacking failed; waiting to run again")
        raise
    with session_scope(engine) as session:
        current = session.get(Task, task_id)
        if current is None or current.status != TaskStatus.RUNNING:
            return []  # another delivery of the same message got here first
        jobs = []
        for member_name, blob, member_type in accepted:
            document = _document_for(session, blob, member_name, member_type)
            jobs.append(
                _new_job(session, document, member_name, member_type, task.requested_by, blob, batch_id)
            )
        audit.record(
            session,
            action="batch.uploaded",
            subject_type="batch",
            subject_id=batch_id,
            actor=task.requested_by,
            sha256=archive_sha256,
            size=archive_size,
            jobs=len(jobs),
            skipped=len(skipped),
        )
        now = utcnow()
        current.status = TaskStatus.SUCCEEDED
        current.result = {
            "batch_id": batch_id,
            "job_ids": [job.id for job in jobs],
            "skipped": [{"filename": i.filename, "code": i.code, "message": i.message} for i in skipped],
        }
        current.done = current.total = len(jobs)
        current.stage = "succeeded"
        current.finished_at = current.updated_at = now
        session.add(current)
        job_ids = [job.id for job in jobs]
    if work is not None:
        for job_id in job_ids:  # committed by now; a lost message is re-sent by the sweeper
            work.send_classify(job_id)
    return job_ids


def _unpack_members(
    blobs: BlobStore, archive_key: str, limits: ExtractionLimits
) -> tuple[list[tuple[str, StoredBlob, str]], list[Skipped]]:
    accepted: list[tuple[str, StoredBlob, str]] = []
    skipped: list[Skipped] = []
    incoming = blobs.root / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=incoming, prefix="zip-") as workdir:
        members = unpack(Source(path=blobs.path(archive_key)), limits=limits, workdir=Path(workdir))
        for member in members:
            member_name = clean_member_name(member.name)
            if member.size == 0:
                skipped.append(Skipped(member_name, EmptyFile.code, "The member is empty (0 bytes)."))
                continue
            member_type = sniff(member.path, filename=member_name)
            if not is_supported(member_type) or member_type == ZIP:
                skipped.append(
                    Skipped(member_name, UnsupportedType.code, unsupported_message(member_name, member_type))
                )
                continue
            with open(member.path, "rb") as handle:
                accepted.append((member_name, blobs.put_file(handle), member_type))
    return accepted, skipped


def get_batch(*, engine: Engine, batch_id: str) -> BatchView:
    """A batch's jobs (oldest first) and the state of its ZIPs.

    Raises:
        NotFound: no job and no ZIP has this batch id.
    """
    with session_scope(engine) as session:
        return _batch(session, batch_id)


def _batch(session: Session, batch_id: str) -> BatchView:
    archives = session.exec(
        select(Task)
        .where(Task.kind == "unpack", Task.params["batch_id"].as_string() == batch_id)
        .order_by(Task.created_at)
    ).all()
    jobs = session.exec(select(Job).where(Job.batch_id == batch_id).order_by(Job.created_at, Job.id)).all()
    if not jobs and not archives:
        raise NotFound(f"Batch {batch_id!r} does not exist.")
    skipped = [
        Skipped(row.filename, row.code, row.message)
        for row in session.exec(
            select(RefusedUpload).where(RefusedUpload.batch_id == batch_id).order_by(RefusedUpload.id)
        )
    ]
    for archive in archives:
        name = archive.params.get("filename", "upload.zip")
        if archive.status == TaskStatus.FAILED:
            skipped.append(Skipped(name, archive.error_code or "error", archive.error_message or ""))
        for item in (archive.result or {}).get("skipped", []):
            skipped.append(Skipped(item["filename"], item["code"], item["message"]))
    unpacking = any(archive.status in (TaskStatus.PENDING, TaskStatus.RUNNING) for archive in archives)
    return BatchView(
        batch_id=batch_id,
        status="UNPACKING" if unpacking else "READY",
        job_ids=[job.id for job in jobs],
        jobs=job_views(session, jobs),
        skipped=skipped,
        archives=[
            {
                "filename": archive.params.get("filename"),
                "task_id": archive.id,
                "status": archive.status,
                "error_code": archive.error_code,
            }
            for archive in archives
        ],
    )


def _new_job(
    session: Session,
    document: Document,
    name: str,
    content_type: str,
    submitted_by: str | None,
    blob: StoredBlob,
    batch_id: str | None = None,
) -> Job:
    job, uploaded = _job_and_event(document.id, name, content_type, submitted_by, blob, batch_id)
    session.add(job)  # its id is made here, so it and its audit event are flushed together
    session.add(uploaded)
    return job


def _job_and_event(
    document_id: int | None,
    name: str,
    content_type: str,
    submitted_by: str | None,
    blob: StoredBlob,
    batch_id: str | None,
) -> tuple[Job, AuditEvent]:
    """A new job for a stored upload, and the audit event that records who uploaded it."""
    job = Job(
        document_id=document_id,
        original_filename=name,
        file_content_type=content_type[:100],
        submitted_by=submitted_by,
        batch_id=batch_id,
    )
    uploaded = audit.event(
        action="document.uploaded",
        subject_type="job",
        subject_id=job.id,
        actor=submitted_by,
        sha256=blob.sha256,
        size=blob.size,
    )
    return job, uploaded


def _insert_new_upload(
    engine: Engine,
    blob: StoredBlob,
    name: str,
    content_type: str,
    job_type: str,
    submitted_by: str | None,
    batch_id: str | None,
) -> tuple[Job, Document] | None:
    """PostgreSQL, bytes not stored before: the document, its job and the upload's audit event in
    one statement outside any transaction (atomic all the same), so one round trip instead of five
    (BEGIN, three INSERTs, COMMIT) on the path each client waits on before it can follow its job.
    None when a document with these bytes exists: nothing was written, and the caller takes the
    general path (:func:`_document_for`)."""
    values = _document_values(blob, name, content_type)
    job, uploaded = _job_and_event(None, name, job_type, submitted_by, blob, batch_id)
    new_document = (
        postgresql_insert(Document)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["sha256"])
        .returning(Document.id)
        .cte("new_document")
    )
    new_job = (
        _insert_taking(job, "document_id", new_document.c.id)
        .returning(Job.__table__.c.id, Job.__table__.c.document_id)
        .cte("new_job")
    )
    statement = _insert_taking(uploaded, "subject_id", new_job.c.id).returning(
        select(new_job.c.document_id).scalar_subquery()
    )
    with outside_transactions(engine) as connection:
        document_id = connection.execute(statement).scalar()
    if document_id is None:
        return None
    job.document_id = document_id
    return job, Document(id=document_id, **values)


def _insert_taking(row: Any, column: str, source: Any) -> Any:
    """``INSERT INTO <row's table> SELECT``: ``row``'s values, but ``column`` taken from ``source``
    (a column of an earlier CTE); columns ``row`` leaves to the database (a serial id) are left out."""
    table = type(row).__table__
    given = [
        c for c in table.columns if c.name != column and not (c.primary_key and getattr(row, c.name) is None)
    ]
    values = (bindparam(f"{table.name}_{c.name}", getattr(row, c.name), type_=c.type) for c in given)
    return insert(table).from_select([*(c.name for c in given), column], select(*values, source))


def _document_values(blob: StoredBlob, name: str, content_type: str) -> dict[str, Any]:
    return {
        "sha256": blob.sha256,
        "original_name": name,
        "content_type": content_type,
        "size": blob.size,
        "storage_key": blob.key,
        "extraction_warnings": [],
        "ocr_pages": [],
        "created_at": utcnow(),
    }


def _document_for(session: Session, blob: StoredBlob, name: str, content_type: str) -> Document:
    """The document row for these bytes: inserted unless it exists (also when the same bytes arrive
    in another process at the same moment), in one statement rather than a savepoint."""
    values = _document_values(blob, name, content_type)
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    inserted = session.execute(
        insert(Document)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["sha256"])
        .returning(Document.id)
    ).scalar()
    if inserted is None:
        return session.exec(select(Document).where(Document.sha256 == blob.sha256)).one()
    return Document(id=inserted, **values)  # what was just stored (not loaded into the session)


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


def clean_member_name(name: str) -> str:
    """A ZIP member's display name: its path inside the archive (``acme/2024/invoice.pdf``, or
    ``inner.zip/invoice.pdf`` in a nested ZIP), each part cleaned as :func:`clean_filename` cleans a
    file name. Folders are how people tell apart the ``invoice.pdf`` of each client; cut to its base
    name, every one of them read ``invoice.pdf`` in the results, the export and ``heron classify``."""
    parts = [clean_filename(part) for part in name.replace("\\", "/").split("/") if part.strip(" .")]
    shown = "/".join(parts) or "upload"
    while len(shown) > MAX_NAME_LENGTH and len(parts) > 1:  # too deep: keep the innermost folders
        parts = parts[1:]
        shown = "…/" + "/".join(parts)
    return shown if len(shown) <= MAX_NAME_LENGTH else clean_filename(parts[-1])


def group_as_batch(*, engine: Engine, job_ids: list[str]) -> str:
    """Give jobs uploaded together one batch id (jobs from a ZIP keep theirs if alone)."""
    from sqlalchemy import update

    batch_id = new_id()
    with session_scope(engine) as session:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(batch_id=batch_id))
    return batch_id
