"""A worker's batch costs the database a fixed number of statements, whatever its size: claiming,
reading the documents (with the active industries), storing answers, texts and vectors, and ending
the jobs are one statement each for the batch. Round trips are most of a small batch's cost on
PostgreSQL. (Real SQLite, real MiniLM, a Heron of its own.)"""

from __future__ import annotations

import numpy as np
from sqlalchemy import event
from sqlmodel import select

from core.db import session_scope
from core.db.tables import Document, Job, Prediction
from core.runtime import Runtime
from core.services.documents import submit_batch
from core.services.jobs import process_waiting
from tests.documents import CLINICAL, FINANCE, LEGAL


def _submit(runtime: Runtime, texts: list[str]) -> list[str]:
    return [
        submit_batch(
            engine=runtime.engine,
            blobs=runtime.blobs,
            chunks=iter([text.encode()]),
            filename=f"doc-{i}.txt",
            max_bytes=runtime.settings.max_upload_bytes,
        )
        .jobs[0]
        .id
        for i, text in enumerate(texts)
    ]


def _statements_to_classify(runtime: Runtime, texts: list[str]) -> tuple[list[str], list[str]]:
    job_ids = _submit(runtime, texts)
    statements: list[str] = []

    def count(_conn, _cursor, statement, _parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(" ".join(statement.split())[:80])

    event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        claimed = process_waiting(
            engine=runtime.engine,
            blobs=runtime.blobs,
            models=runtime.models,
            policy=runtime.policy,
            max_attempts=runtime.settings.max_attempts,
            limits=runtime.extraction_limits,
            batch_size=len(texts),
        )
    finally:
        event.remove(runtime.engine, "before_cursor_execute", count)
    assert claimed == len(texts)
    return job_ids, statements


def test_a_batch_of_six_takes_as_many_statements_as_a_batch_of_one(heron: Runtime) -> None:
    # Given the model is loaded (its first read is not the batch's cost)
    heron.models.active(heron.engine)
    # When one document is classified, then a batch of six
    _, one = _statements_to_classify(heron, [f"{FINANCE} Single {i}." for i in range(1)])
    texts = [f"{[FINANCE, CLINICAL, LEGAL][i % 3]} Batch {i}." for i in range(6)]
    job_ids, six = _statements_to_classify(heron, texts)
    # Then the six took the same statements as the one: claim, read, store, finish
    assert len(six) == len(one), (one, six)
    assert len(six) <= 7, six
    # And every job ended with one answer, its document's text and its vector stored
    with session_scope(heron.engine) as session:
        rows = session.exec(
            select(Job.status, Document.text, Document.vector, Document.extraction_method)
            .join(Document, Document.id == Job.document_id)
            .where(Job.id.in_(job_ids))
        ).all()
        answers = session.exec(select(Prediction.job_id).where(Prediction.job_id.in_(job_ids))).all()
    assert sorted(answers) == sorted(job_ids)
    for (status, text, vector, method), sent in zip(
        sorted(rows, key=lambda row: row[1]), sorted(texts), strict=True
    ):
        assert status == "COMPLETED"
        assert text.strip() == sent.strip() and method
        assert np.frombuffer(vector, dtype=np.float16).shape == (384,)
