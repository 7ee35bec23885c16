"""Two people changing the same thing at the same moment, on SQLite and on PostgreSQL: two reviewers
deciding corrections, several hands changing the industries, several admins asking for training.
Each outcome is one they could have reached one after the other."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from core.db import make_engine, migrate, session_scope
from core.db.tables import Document, ExampleSource, ExampleStatus, Job, TrainingExample
from core.errors import Conflict
from core.services import feedback, industries
from core.services.feedback import decide, submit_feedback
from core.services.industries import create_industry, list_industries, retire_industry, update_industry
from tests.conftest import needs_services, postgres_schema

TEXT = "Quarterly results: revenue rose, the board settled the lawsuit and the bank raised its loan."


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_services("PostgreSQL"))])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        made = make_engine(f"sqlite:///{tmp_path / 'heron.db'}")
        migrate(made)
        yield made
        made.dispose()
        return
    with postgres_schema("heron_races") as url:
        made = make_engine(url)
        migrate(made)
        yield made
        made.dispose()


def _one_job(engine: Engine) -> str:
    for name in ("finance", "legal"):
        create_industry(engine=engine, name=name, description=f"Documents about {name}.")
    with session_scope(engine) as session:
        document = Document(
            sha256="ab" * 32, original_name="q.txt", size=len(TEXT), storage_key="ab/q", text=TEXT
        )
        session.add(document)
        session.flush()
        job = Job(document_id=document.id, original_filename="q.txt", file_content_type="text/plain")
        session.add(job)
        session.flush()
        return job.id


def _together(monkeypatch: pytest.MonkeyPatch, *calls: Callable[[], object]) -> list[object]:
    """Run ``calls`` in threads that have all read what they decide on before any of them writes
    (they meet after the checks, the moment two reviewers' clicks would cross); what each returned
    or raised."""
    meeting = threading.Barrier(len(calls), timeout=20)
    checked = feedback._check_approvable

    def check_then_meet(*args):  # type: ignore[no-untyped-def]
        checked(*args)
        meeting.wait()

    monkeypatch.setattr(feedback, "_check_approvable", check_then_meet)
    return _in_threads(*calls)


def _in_threads(*calls: Callable[[], object]) -> list[object]:
    """Run ``calls`` at the same moment, a thread each; what each returned or raised."""
    outcomes: list[object] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            outcomes[index] = calls[index]()
        except Exception as error:  # the outcome under test
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def _lingering(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> None:
    """``module.name`` lingers after it returns, as on a busy server: without turns, every caller
    running at the same moment reads before any of them writes (or commits)."""
    original = getattr(module, name)

    def slowly(*args, **kwargs):  # type: ignore[no-untyped-def]
        found = original(*args, **kwargs)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(module, name, slowly)


def _approved_labels(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        return sorted(
            session.exec(
                select(TrainingExample.label).where(
                    TrainingExample.source == ExampleSource.feedback,
                    TrainingExample.status == ExampleStatus.approved,
                )
            ).all()
        )


def test_one_correction_approved_twice_at_once_is_approved_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a correction waiting for review
    job = _one_job(engine)
    correction = submit_feedback(engine=engine, job_id=job, label="finance", author="ann")
    # When two reviewers approve it at the same moment
    outcomes = _together(
        monkeypatch,
        lambda: decide(engine=engine, feedback_ids=[correction.id], approve=True, reviewer="rob"),
        lambda: decide(engine=engine, feedback_ids=[correction.id], approve=True, reviewer="sue"),
    )
    # Then one of them decides it and the other is told it was decided meanwhile
    conflicts = [outcome for outcome in outcomes if isinstance(outcome, Conflict)]
    assert len(conflicts) == 1, outcomes
    assert "meanwhile" in str(conflicts[0])
    assert _approved_labels(engine) == ["finance"]


def test_two_corrections_of_one_document_approved_at_once_leave_it_one_label(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two annotators' different labels for one document
    job = _one_job(engine)
    first = submit_feedback(engine=engine, job_id=job, label="finance", author="ann")
    second = submit_feedback(engine=engine, job_id=job, label="legal", author="bob")
    # When two reviewers each approve one of them at the same moment
    outcomes = _together(
        monkeypatch,
        lambda: decide(engine=engine, feedback_ids=[first.id], approve=True, reviewer="rob"),
        lambda: decide(engine=engine, feedback_ids=[second.id], approve=True, reviewer="sue"),
    )
    # Then both are approved, as one after the other would be, and the later one is the document's
    # only label to learn from: it never trains on both
    assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)], outcomes
    assert len(_approved_labels(engine)) == 1


def _all_at_once(monkeypatch: pytest.MonkeyPatch, *calls: Callable[[], object]) -> list[object]:
    """Run ``calls`` in threads, each lingering after it reads an industry or the active ones."""
    for reader in ("_named", "active_industry_names"):
        _lingering(monkeypatch, industries, reader)
    return _in_threads(*calls)


NAMES = ("finance", "legal", "health", "media", "travel")


def test_industries_retired_all_at_once_leave_two_active(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given five industries
    for name in NAMES:
        create_industry(engine=engine, name=name, description=f"Documents about {name}.")
    # When someone retires every one of them at the same moment
    outcomes = _all_at_once(
        monkeypatch, *[lambda name=name: retire_industry(engine=engine, name=name) for name in NAMES]
    )
    # Then three are retired and the last two are refused: two always stay active
    refused = [outcome for outcome in outcomes if isinstance(outcome, Conflict)]
    assert len(refused) == 2 and all("two industries" in str(outcome) for outcome in refused), outcomes
    assert len([i for i in list_industries(engine=engine) if i.status == "active"]) == 2


def test_industries_changed_at_once_keep_one_catch_all_and_unique_names(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in NAMES:
        create_industry(engine=engine, name=name, description=f"Documents about {name}.")
    # When three people each make a different industry the catch-all at the same moment
    _all_at_once(
        monkeypatch,
        *[lambda name=name: update_industry(engine=engine, name=name, catch_all=True) for name in NAMES[:3]],
    )
    # Then there is one catch-all, the one set last
    assert len([i for i in list_industries(engine=engine) if i.catch_all]) == 1
    # And when three industries are renamed to one name at the same moment, one gets it and the
    # others are told it exists (never a database error)
    outcomes = _all_at_once(
        monkeypatch,
        *[lambda name=name: update_industry(engine=engine, name=name, new_name="same") for name in NAMES[2:]],
    )
    assert len([o for o in outcomes if isinstance(o, Conflict)]) == 2, outcomes
    assert [i.name for i in list_industries(engine=engine)].count("same") == 1


def test_training_asked_for_by_several_people_at_once_runs_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.services import tasks, training

    # Given requests that each linger after looking for a training run already waiting
    _lingering(monkeypatch, tasks, "find_waiting")
    # When three admins ask for a full retrain at the same moment
    outcomes = _in_threads(
        *[
            lambda index=index: training.request_training(engine=engine, mode="full", actor=f"admin{index}")
            for index in range(3)
        ]
    )
    # Then one training task is queued and the other two requests join it
    assert len({task.id for task, _ in outcomes}) == 1, outcomes  # type: ignore[misc]
    assert sorted(joined for _, joined in outcomes) == [False, True, True]  # type: ignore[misc]


def test_a_correction_and_an_example_file_of_one_text_at_once_leave_it_one_label(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.extract import ExtractionLimits
    from core.services import datasets

    # Given a correction of a document to finance, waiting for approval
    job = _one_job(engine)
    correction = submit_feedback(engine=engine, job_id=job, label="finance", author="ann")
    # ... and label-giving that lingers after it looked for the text's other labels
    for module in (feedback, datasets):
        _lingering(monkeypatch, module, "supersede_other_labels")  # before its transaction commits
    # When the reviewer approves it while someone adds the same text as an example of legal
    outcomes = _in_threads(
        lambda: decide(engine=engine, feedback_ids=[correction.id], approve=True, reviewer="rob"),
        lambda: datasets.add_example_files(
            engine=engine, industry="legal", files=[("q.txt", TEXT.encode())], limits=ExtractionLimits()
        ),
    )
    # Then the text trains under one label, whichever came last, never under both
    with session_scope(engine) as session:
        labels = session.exec(
            select(TrainingExample.label).where(TrainingExample.status == ExampleStatus.approved)
        ).all()
    failed = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert len(labels) == 1 and not failed, (labels, outcomes)


def test_an_item_whose_claim_ran_out_claimed_by_two_at_once_goes_to_one(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from core.db.tables import ReviewClaim, utcnow
    from core.services import review

    # Given an item whose earlier claim ran out
    job = _one_job(engine)
    with session_scope(engine) as session:
        session.add(ReviewClaim(job_id=job, claimed_by="bob", expires_at=utcnow() - timedelta(seconds=1)))
    # When two annotators claim it at the same moment
    _lingering(monkeypatch, review, "existing_job")
    outcomes = _in_threads(
        lambda: review.claim(engine=engine, job_id=job, annotator="alice", seconds=300),
        lambda: review.claim(engine=engine, job_id=job, annotator="carol", seconds=300),
    )
    # Then one holds it and the other is told so (both were told they held it, and one could then
    # neither see it nor give it back)
    held = [outcome.claimed_by for outcome in outcomes if isinstance(outcome, review.Claim)]
    assert len(held) == 1 and sum(isinstance(o, Conflict) for o in outcomes) == 1, outcomes
    with session_scope(engine) as session:
        assert session.get(ReviewClaim, job).claimed_by == held[0]


def test_versions_activated_at_once_leave_exactly_one_active(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.db.tables import ModelVersion
    from core.services import models
    from core.services.models import activate_version, active_version_id

    # Given three stored versions that can serve the active industries
    with session_scope(engine) as session:
        session.add(ModelVersion(status="active", artifact=b"", artifact_sha256="0" * 64, kind="full"))
    for name in ("finance", "legal"):
        create_industry(engine=engine, name=name, description=f"Documents about {name}.")
    monkeypatch.setattr(models.HeronModel, "format_of", staticmethod(lambda artifact: models.MODEL_FORMAT))
    monkeypatch.setattr(models, "_check_servable", lambda version, active, renamed: None)
    with session_scope(engine) as session:
        for _ in range(2):
            session.add(ModelVersion(status="candidate", artifact=b"", artifact_sha256="0" * 64, kind="full"))
    # When two admins activate different versions at the same moment
    _lingering(monkeypatch, models, "active_industry_names")
    outcomes = _in_threads(
        lambda: activate_version(engine=engine, version_id=2),
        lambda: activate_version(engine=engine, version_id=3),
    )
    # Then exactly one version is active, and it is one of theirs (they had left two, or none,
    # and every upload then failed)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    with session_scope(engine) as session:
        active = session.exec(select(ModelVersion.id).where(ModelVersion.status == "active")).all()
        assert len(active) == 1 and active[0] in (2, 3) and active_version_id(session) == active[0], active
