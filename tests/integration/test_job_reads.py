"""Clients polling a job that has not ended are answered from memory, and see its end at once."""

from __future__ import annotations

from sqlalchemy import event

from core.events import JOB_EVENTS, VIEW_SECONDS
from core.services.documents import upload
from tests.conftest import needs_services, postgres_schema
from tests.documents import LEGAL


def test_polling_a_waiting_job_costs_no_query_and_its_end_shows_at_once(client, runtime) -> None:  # type: ignore[no-untyped-def]
    import io
    import time

    # Given a job uploaded and not yet sent to a worker (its message is held back)
    class HeldBack:
        def send_classify(self, job_id: str) -> None:
            pass

        def send_task(self, task_id: str, kind: str) -> None:
            pass

    submission = upload(
        engine=runtime.engine,
        blobs=runtime.blobs,
        work=HeldBack(),
        stream=io.BytesIO(f"{LEGAL}\nPolled {time.time_ns()}".encode()),
        filename="polled.txt",
        max_bytes=runtime.settings.max_upload_bytes,
    )
    job_id = submission.jobs[0].id
    reads: list[str] = []  # views of jobs read from the database

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if "FROM jobs LEFT OUTER JOIN predictions" in statement:  # a job view
            reads.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        # When a client polls it ten times within a second
        started = time.monotonic()
        answers = [client.get(f"/api/jobs/{job_id}").json()["status"] for _ in range(10)]
        assert time.monotonic() - started < VIEW_SECONDS
        # Then it is PENDING each time, and the database was not asked
        assert answers == ["PENDING"] * 10
        assert reads == []
        # And once the job has been classified, the very next read says so
        runtime.work.send_classify(job_id)
        assert JOB_EVENTS.wait(job_id, 30)
        finished = client.get(f"/api/jobs/{job_id}").json()
        assert finished["status"] == "COMPLETED" and finished["classification_result"] == "legal"
        assert len(reads) == 1
        # And that read left out what a view does not show: the text, the vector, the page spans
        selected = reads[0].split(" FROM ", 1)[0]
        assert "documents.content_type" in selected
        assert not any(f"documents.{column}" in selected for column in ("text", "vector", "page_spans"))
    finally:
        event.remove(runtime.engine, "before_cursor_execute", count)


@needs_services("PostgreSQL")
def test_a_job_view_on_postgresql_is_read_outside_any_transaction() -> None:
    from psycopg.pq import TransactionStatus

    from core.db import make_engine, migrate, session_scope
    from core.db.tables import Document, Job
    from core.services.jobs import get_job

    # Given a job waiting in a PostgreSQL database
    with postgres_schema("heron_reads") as url:
        engine = make_engine(url)
        try:
            migrate(engine)
            with session_scope(engine) as session:
                document = Document(sha256="ab" * 32, original_name="a.txt", size=3, storage_key="ab/cd")
                session.add(document)
                session.flush()
                job = Job(document_id=document.id, original_filename="a.txt", file_content_type="text/plain")
                session.add(job)
            states: list[object] = []

            def state(conn, *_args) -> None:  # type: ignore[no-untyped-def]
                states.append(conn.connection.dbapi_connection.info.transaction_status)

            event.listen(engine, "after_cursor_execute", state)
            # When a client reads it (its view is not in memory: nothing has read it in this process)
            view = get_job(engine=engine, job_id=job.id)
            # Then one statement answered it, with no transaction around it: no BEGIN and COMMIT
            # round trips, which were two of the three a view took
            assert view.status == "PENDING" and view.original_filename == "a.txt"
            assert states == [TransactionStatus.IDLE]
        finally:
            engine.dispose()
