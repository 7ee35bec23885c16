"""An upgrade from before documents kept their vectors and answers their evidence: `heron prepare`
fills both in, so the documents a user already has take part in "more like this" and show why.
(Real SQLite, real MiniLM, a Heron of its own.)"""

from __future__ import annotations

import pytest
from sqlalchemy import null, update

from core.db import session_scope
from core.db.tables import Document, Job, Prediction
from core.errors import NotClassified
from core.runtime import Runtime, is_prepared
from core.services.backfill import backfill_annotation, needs_backfill
from core.services.jobs import get_job, job_text
from core.services.similar import similar_documents
from tests.conftest import classify_now
from tests.documents import CLINICAL, FINANCE


def _classified(runtime: Runtime, name: str, text: str) -> str:
    job_id = classify_now(runtime, text, name)
    assert get_job(engine=runtime.engine, job_id=job_id).status == "COMPLETED"
    return job_id


def test_documents_classified_before_the_upgrade_get_their_vectors_and_evidence(heron: Runtime) -> None:
    # Given three classified documents, as a Heron from before migration 0006 left them: no vector,
    # no evidence
    jobs = [
        _classified(heron, "ledger-1.txt", f"{FINANCE} Ledger one."),
        _classified(heron, "ledger-2.txt", f"{FINANCE} Ledger two."),
        _classified(heron, "ward.txt", f"{CLINICAL} Ward note."),
    ]
    before = {job_id: get_job(engine=heron.engine, job_id=job_id) for job_id in jobs}
    with session_scope(heron.engine) as session:
        session.execute(update(Document).values(vector=None))
        session.execute(update(Prediction).values(evidence=null()))  # SQL NULL, as 0006 added it
    assert needs_backfill(heron.engine) and not is_prepared(heron.settings)
    with pytest.raises(NotClassified):
        similar_documents(engine=heron.engine, job_id=jobs[0])
    # When prepare fills them in
    seen: list[int] = []
    assert (
        backfill_annotation(engine=heron.engine, models=heron.models, batch=2, on_progress=seen.append) == 3
    )
    # Then every answer has evidence, real spans of its text, for the answer it gave (unchanged)
    assert seen == [2, 3]
    for job_id in jobs:
        view = get_job(engine=heron.engine, job_id=job_id)
        assert view.classification_result == before[job_id].classification_result
        assert view.confidence == before[job_id].confidence
        text = job_text(engine=heron.engine, job_id=job_id)
        assert text.evidence, job_id
        for passage in text.evidence:
            assert passage["text"] == text.text[passage["start"] : passage["end"]]
            assert passage["label"] == view.classification_result
    # ... and the other ledger is the most like the first
    similar = similar_documents(engine=heron.engine, job_id=jobs[0], limit=2)
    assert [item.job_id for item in similar] == [jobs[1], jobs[2]]
    # ... and nothing is left to do: the next start does not prepare again
    assert not needs_backfill(heron.engine) and is_prepared(heron.settings)
    assert backfill_annotation(engine=heron.engine, models=heron.models) == 0


def test_an_answer_that_has_its_evidence_keeps_it(heron: Runtime) -> None:
    # Given a classified document that lost only its vector
    job_id = _classified(heron, "ledger.txt", f"{FINANCE} Ledger.")
    with session_scope(heron.engine) as session:
        document_id = session.get(Job, job_id).document_id
        session.execute(update(Document).where(Document.id == document_id).values(vector=None))
        session.execute(update(Prediction).where(Prediction.job_id == job_id).values(evidence=[]))
    # When prepare fills it in
    assert backfill_annotation(engine=heron.engine, models=heron.models) == 1
    # Then it has its vector again, and its answer's evidence is the one it was given
    with session_scope(heron.engine) as session:
        assert session.get(Document, document_id).vector is not None
    assert job_text(engine=heron.engine, job_id=job_id).evidence == []
    assert backfill_annotation(engine=heron.engine, models=heron.models) == 0
