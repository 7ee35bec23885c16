"""An upload on PostgreSQL: one statement for new bytes (document, job and audit event), the general
path for bytes stored before; either way the same rows a client and an auditor see."""

from __future__ import annotations

from pathlib import Path

from psycopg.pq import TransactionStatus
from sqlalchemy import event
from sqlmodel import select

from core.blobs import BlobStore
from core.db import make_engine, migrate, session_scope
from core.db.tables import AuditEvent, Document, Job
from core.services.documents import submit_batch
from core.services.jobs import get_job
from tests.conftest import needs_services, postgres_schema
from tests.documents import LEGAL


@needs_services("PostgreSQL")
def test_new_bytes_are_stored_in_one_statement_and_stored_bytes_get_a_second_job(tmp_path: Path) -> None:
    with postgres_schema("heron_upload") as url:
        engine = make_engine(url)
        blobs = BlobStore(tmp_path / "blobs")
        try:
            migrate(engine)
            seen: list[tuple[str, object]] = []

            def statement(conn, _cursor, text, *_args) -> None:  # type: ignore[no-untyped-def]
                seen.append(
                    (" ".join(text.split())[:30], conn.connection.dbapi_connection.info.transaction_status)
                )

            def upload(who: str) -> str:
                return (
                    submit_batch(
                        engine=engine,
                        blobs=blobs,
                        chunks=iter([LEGAL.encode()]),
                        filename="ruling.txt",
                        client_content_type="text/plain",
                        max_bytes=1_000_000,
                        submitted_by=who,
                    )
                    .jobs[0]
                    .id
                )

            # When a client uploads bytes Heron has not stored before
            event.listen(engine, "after_cursor_execute", statement)
            try:
                first = upload("ada")
            finally:
                event.remove(engine, "after_cursor_execute", statement)
            # Then one statement stored it, with no transaction around it (no BEGIN and COMMIT)
            assert len(seen) == 1 and seen[0][0].startswith("WITH new_document"), seen
            assert seen[0][1] == TransactionStatus.IDLE
            # When another client uploads the same bytes
            second = upload("bob")
            # Then both jobs wait on the one document, each named in the audit log with its uploader
            with session_scope(engine) as session:
                documents = session.exec(select(Document)).all()
                jobs = {job.id: job for job in session.exec(select(Job)).all()}
                uploads = select(AuditEvent).where(AuditEvent.action == "document.uploaded")
                events = session.exec(uploads).all()
            assert len(documents) == 1 and documents[0].content_type == "text/plain"
            assert {job.document_id for job in jobs.values()} == {documents[0].id}
            assert jobs[first].submitted_by == "ada" and jobs[first].status == "PENDING"
            assert {(e.subject_id, e.actor) for e in events} == {(first, "ada"), (second, "bob")}
            stored = {"sha256": documents[0].sha256, "size": documents[0].size}
            assert all(e.details == stored for e in events)
            # And a client reading the first job sees what it uploaded
            view = get_job(engine=engine, job_id=first)
            assert (view.status, view.original_filename, view.file_content_type) == (
                "PENDING",
                "ruling.txt",
                "text/plain",
            )
        finally:
            engine.dispose()
