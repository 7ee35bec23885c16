"""A worker's batch costs the database a fixed number of statements, whatever its size: claiming,
reading the documents (with the active industries), storing answers, texts and vectors, and ending
the jobs are one statement each for the batch. Round trips are most of a small batch's cost on
PostgreSQL. (Real SQLite, real MiniLM, a Heron of its own.)"""

from __future__ import annotations

import contextlib
from datetime import timedelta

import numpy as np
from sqlalchemy import event
from sqlmodel import select

from core.db import session_scope
from core.db.tables import Document, Job, JobStatus, Prediction, utcnow
from core.runtime import Runtime
from core.services.documents import submit_batch
from core.services.jobs import process_job, process_waiting
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


def _work(runtime: Runtime, **overrides) -> int:  # type: ignore[no-untyped-def]
    return process_waiting(
        engine=runtime.engine,
        blobs=runtime.blobs,
        models=runtime.models,
        policy=runtime.policy,
        max_attempts=runtime.settings.max_attempts,
        limits=runtime.extraction_limits,
        **overrides,
    )


def _statements_to_classify(runtime: Runtime, texts: list[str]) -> tuple[list[str], list[str]]:
    job_ids = _submit(runtime, texts)
    statements: list[str] = []

    def count(_conn, _cursor, statement, _parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(" ".join(statement.split())[:80])

    event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        claimed = _work(runtime, batch_size=len(texts))
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
    # Then the six took the same statements as the one: claim, read (documents and industries),
    # store (answers, documents' texts and vectors), finish
    assert len(six) == len(one), (one, six)
    assert len(six) <= 6, six
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


def _statuses(runtime: Runtime, job_ids: list[str]) -> list[str]:
    with session_scope(runtime.engine) as session:
        by_id = dict(session.exec(select(Job.id, Job.status).where(Job.id.in_(job_ids))).all())
    return [by_id[job_id] for job_id in job_ids]


def test_a_message_job_is_claimed_first_in_the_batch_transaction(heron: Runtime) -> None:
    # Given three waiting jobs, the message naming the newest
    heron.models.active(heron.engine)
    oldest, middle, newest = _submit(heron, [f"{FINANCE} Queue {i}." for i in range(3)])
    commits: list[int] = []

    def counted(_connection) -> None:  # type: ignore[no-untyped-def]
        commits.append(1)

    event.listen(heron.engine, "commit", counted)
    try:
        # When a worker claims a batch of two for that message
        claimed = _work(heron, batch_size=2, first=newest, lease_seconds=60)
    finally:
        event.remove(heron.engine, "commit", counted)
    # Then its job went first, then the oldest; the other still waits
    assert claimed == 2
    assert _statuses(heron, [oldest, middle, newest]) == ["COMPLETED", "PENDING", "COMPLETED"]
    # And the message cost no transaction of its own: claim with the batch's read, then store, as
    # any batch
    assert len(commits) == 2, commits
    # When a message names a job another worker already took (here: finished), the batch is the rest
    assert _work(heron, batch_size=2, first=newest, lease_seconds=60) == 1
    assert _statuses(heron, [middle]) == ["COMPLETED"]


def test_a_message_reclaims_its_job_only_once_the_lease_ran_out(heron: Runtime) -> None:
    # Given a job whose worker died mid-way (PROCESSING, last touched 10 minutes ago)
    heron.models.active(heron.engine)
    (job_id,) = _submit(heron, [f"{LEGAL} Abandoned."])
    with session_scope(heron.engine) as session:
        job = session.get(Job, job_id)
        job.status, job.attempts = JobStatus.PROCESSING, 1
        job.updated_at = utcnow() - timedelta(minutes=10)
    # When a drain without a lease meets it, it is left alone; with a longer lease too
    assert _work(heron, batch_size=4, first=job_id) == 0
    assert _work(heron, batch_size=4, first=job_id, lease_seconds=3600) == 0
    # Then a message for it, once the lease (5 minutes) ran out, takes it over and finishes it
    assert _work(heron, batch_size=4, first=job_id, lease_seconds=300) == 1
    with session_scope(heron.engine) as session:
        job = session.get(Job, job_id)
        assert (job.status, job.attempts) == ("COMPLETED", 2)


def test_a_job_run_twice_keeps_its_first_answer(heron: Runtime) -> None:
    # Given a job classified once
    heron.models.active(heron.engine)
    (job_id,) = _submit(heron, [f"{CLINICAL} Twice."])
    assert _work(heron, batch_size=1) == 1
    with session_scope(heron.engine) as session:
        first = session.exec(
            select(Prediction.id, Prediction.created_at).where(Prediction.job_id == job_id)
        ).all()
        job = session.get(Job, job_id)
        job.status = JobStatus.PENDING  # as if its message came again after a lost commit reply
    # When it is classified again
    assert (
        process_job(
            engine=heron.engine,
            blobs=heron.blobs,
            models=heron.models,
            job_id=job_id,
            policy=heron.policy,
            lease_seconds=60,
            max_attempts=heron.settings.max_attempts,
        )
        == "COMPLETED"
    )
    # Then it still has exactly the one answer it had
    with session_scope(heron.engine) as session:
        again = session.exec(
            select(Prediction.id, Prediction.created_at).where(Prediction.job_id == job_id)
        ).all()
    assert again == first and len(first) == 1


def test_a_document_that_breaks_classification_fails_alone_not_with_its_batch(
    heron: Runtime, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # Given a bug nobody foresaw: classifying one document raises (as a text the tokenizer
    # refused did), and three ordinary documents waiting beside it
    from core.services import jobs

    real = jobs._classify_and_store

    def breaks_on_one(engine, models, policy, batch) -> None:  # type: ignore[no-untyped-def]
        if any("UNFORESEEN" in text for text in batch.texts.values()):
            raise TypeError("TextInputSequence must be str")
        real(engine, models, policy, batch)

    monkeypatch.setattr(jobs, "_classify_and_store", breaks_on_one)
    texts = [f"{FINANCE} One.", f"{CLINICAL} UNFORESEEN.", f"{LEGAL} Three.", f"{FINANCE} Four."]
    job_ids = _submit(heron, texts)
    # When workers take them in batches until nothing waits (each retry is another batch)
    for _ in range(heron.settings.max_attempts + 1):
        with contextlib.suppress(TypeError):  # a batch of the broken one alone raises to its queue
            _work(heron, batch_size=len(texts))
    # Then the ordinary documents are answered, and only the broken one fails, after its attempts
    with session_scope(heron.engine) as session:
        ended = [session.get(Job, job_id) for job_id in job_ids]
        assert [job.status for job in ended] == [
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.COMPLETED,
            JobStatus.COMPLETED,
        ]
        assert [job.attempts for job in ended] == [1, heron.settings.max_attempts, 1, 1]
        assert ended[1].error_code == "internal_error"
