"""Training use cases on a real database: incremental updates, new industries, promotion."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlmodel import select

from core.classify.model import HeronModel
from core.db import session_scope
from core.db.tables import ExampleSource, ModelVersion, Split, TrainingExample
from core.errors import Invalid
from core.runtime import open_runtime
from core.services.industries import create_industry
from core.services.review import label_issue_queue
from core.services.tasks import get_task
from core.services.training import request_training, run_training_task, train_incremental
from tests.conftest import SentWork, classify_now, make_settings
from tests.documents import CLINICAL, FINANCE, LEGAL, OBVIOUS, REAL_ESTATE, TECHNOLOGY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh(prepared_dir: Path):  # type: ignore[no-untyped-def]
    runtime = open_runtime(make_settings(prepared_dir))
    yield runtime
    runtime.close()


def test_a_described_industry_is_predicted_before_it_has_any_example(fresh) -> None:  # type: ignore[no-untyped-def]
    # Given the starter model and a new industry with only a description, and the training run its
    # creation queues
    create_industry(
        engine=fresh.engine,
        name="Real estate",
        description=(
            "Property listings, house sales and lettings, estate agents, surveys, tenancies and mortgages."
        ),
    )
    outcome = train_incremental(engine=fresh.engine, policy=fresh.policy, encoder=fresh.training_encoder)
    assert outcome.activated, outcome.reason
    # When documents clearly about it arrive
    _, model = fresh.models.active(fresh.engine)
    verdicts = model.classify(REAL_ESTATE, fresh.policy, encoder=fresh.encoder)
    # Then most of them are predicted as the new industry, through the transformer tier
    assert sum(v.label == "real_estate" for v in verdicts) >= 6
    assert all(v.escalated for v in verdicts if v.label == "real_estate")
    # And obvious documents of the old industries keep their labels
    others = model.classify(list(OBVIOUS.values()), fresh.policy, encoder=fresh.encoder)
    assert sum(v.label == label for v, label in zip(others, OBVIOUS, strict=True)) >= 6


def test_incremental_training_learns_new_examples_in_seconds(fresh) -> None:  # type: ignore[no-untyped-def]
    # Given nothing new, an incremental run refuses with a reason
    with pytest.raises(Invalid, match="No training examples were added"):
        train_incremental(engine=fresh.engine, policy=fresh.policy, encoder=fresh.training_encoder)
    # Given a new industry and a few labelled examples of it
    create_industry(engine=fresh.engine, name="real_estate", description="Houses and property.")
    with session_scope(fresh.engine) as session:
        for i, text in enumerate(REAL_ESTATE):
            session.add(
                TrainingExample(
                    text=text,
                    content_hash=f"re{i}",
                    label="real_estate",
                    source=ExampleSource.feedback,
                    split=Split.train,
                    origin=f"test/{i}",
                )
            )
    # When the model is updated incrementally
    outcome = train_incremental(engine=fresh.engine, policy=fresh.policy, encoder=fresh.training_encoder)
    # Then a new incremental version exists, its fast tier knows the new industry
    assert outcome.seconds < 60
    with session_scope(fresh.engine) as session:
        version = session.get(ModelVersion, outcome.version_id)
        assert version.kind == "incremental" and version.parent_id == 1
        assert version.trained_on["new_examples"] == len(REAL_ESTATE)
        assert "real_estate" in version.labels
        statuses = {v.id: v.status for v in session.exec(select(ModelVersion))}
    assert outcome.activated == (statuses[outcome.version_id] == "active")


def test_once_the_examples_have_grown_enough_an_update_queues_a_full_run_with_fresh_label_issues(
    fresh,
) -> None:  # type: ignore[no-untyped-def]
    # Given 60 approved corrections since the starter model's full run (more than a tenth of what
    # it learned from), two of them finance reports wrongly labelled healthcare, and the
    # incremental update their approval queued
    given = [
        (text, label)
        for text, label in [
            (FINANCE, "finance"),
            (CLINICAL, "healthcare"),
            (LEGAL, "legal"),
            (TECHNOLOGY, "technology"),
        ]
        for _ in range(15)
    ]
    given = [(f"{text} Reference {i}.", label) for i, (text, label) in enumerate(given)]
    given[3] = (given[3][0], "healthcare")
    given[7] = (given[7][0], "healthcare")
    ids = _add_examples(fresh, given)
    update, _ = request_training(engine=fresh.engine, mode="incremental", actor="rita")
    sent = SentWork()
    # When a worker runs it
    run_training_task(
        engine=fresh.engine, task_id=update.id, policy=fresh.policy, encoder=fresh.training_encoder, work=sent
    )
    # Then the update itself is incremental (live in seconds), and it queued and sent a full run
    done = get_task(engine=fresh.engine, task_id=update.id)
    with session_scope(fresh.engine) as session:
        assert session.get(ModelVersion, done.result["version_id"]).kind == "incremental"
    refresh = done.result["full_run_task_id"]
    assert sent.tasks == [(refresh, "training")]
    assert get_task(engine=fresh.engine, task_id=refresh).params == {"mode": "full"}
    assert get_task(engine=fresh.engine, task_id=refresh).requested_by == "rita"
    # When the full run runs
    run_training_task(
        engine=fresh.engine, task_id=refresh, policy=fresh.policy, encoder=fresh.training_encoder, work=sent
    )
    # Then its label issues list the two wrong labels, suggesting finance, and it queued nothing more
    issues, _ = label_issue_queue(engine=fresh.engine, limit=100)
    flagged = {issue.example_id: issue for issue in issues}
    assert {ids[3], ids[7]} <= set(flagged), issues
    assert {flagged[ids[3]].suggested, flagged[ids[7]].suggested} == {"finance"}
    assert len(sent.tasks) == 1
    # ... and the model it served routes the people's kind of documents by their own confidences
    # (the starter model, which learned none of them, by the configured threshold alone)
    with session_scope(fresh.engine) as session:
        version = session.get(
            ModelVersion, get_task(engine=fresh.engine, task_id=refresh).result["version_id"]
        )
        full, shown = HeronModel.from_bytes(version.artifact), version.metrics
        starter = HeronModel.from_bytes(session.get(ModelVersion, 1).artifact)
    assert len(full.calibration.people) == 101 and starter.calibration.people == ()
    assert full.escalation_threshold(fresh.policy) > fresh.policy.escalation_threshold
    # ... which the version's metrics show (the API's model list and the Models page)
    assert shown["escalation_threshold"] == round(full.escalation_threshold(fresh.policy), 4)
    # When a few more are approved, their update queues no full run (too few since the last)
    _add_examples(fresh, [(f"{FINANCE} Ledger {i}.", "finance") for i in range(5)])
    again, _ = request_training(engine=fresh.engine, mode="incremental")
    run_training_task(
        engine=fresh.engine, task_id=again.id, policy=fresh.policy, encoder=fresh.training_encoder, work=sent
    )
    assert "full_run_task_id" not in get_task(engine=fresh.engine, task_id=again.id).result
    assert len(sent.tasks) == 1


def test_concurrent_training_requests_yield_one_run(fresh) -> None:  # type: ignore[no-untyped-def]
    import threading

    from core.errors import Conflict
    from core.services.training import train_full

    # Given two training requests at the same moment (two workers, or two machines on one database)
    outcomes: list[object] = []

    def run() -> None:
        try:
            outcomes.append(
                train_full(engine=fresh.engine, policy=fresh.policy, encoder=fresh.training_encoder)
            )
        except Conflict as busy:
            outcomes.append(busy)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then one trained and the other was told a run is in progress
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "TrainingOutcome"]
    with session_scope(fresh.engine) as session:
        assert len(session.exec(select(ModelVersion)).all()) == 2  # the starter model + one run


def test_a_worse_candidate_stays_a_candidate_and_rollback_restores_the_old_answers(fresh) -> None:  # type: ignore[no-untyped-def]
    from core.corpus import read_text_corpus
    from core.services.models import activate

    def answers() -> list[tuple[str, float]]:
        time.sleep(fresh.models.refresh_seconds + 0.1)  # what every process serves after its refresh
        _, model = fresh.models.active(fresh.engine)
        return [
            (v.label, round(v.confidence, 6))
            for v in model.classify(probe, fresh.policy, encoder=fresh.encoder)
        ]

    starter_id = 1
    finance = [item for item in read_text_corpus(ROOT / "data" / "starter") if item.label == "finance"]
    probe = [item.text for item in finance[40:50]] + list(OBVIOUS.values())
    before = answers()
    # Given approved "corrections" that are wrong: finance documents labelled legal
    _add_examples(fresh, [(item.text + " (relabelled)", "legal") for item in finance[:40]])
    # When the model is updated on them
    worse = train_incremental(engine=fresh.engine, policy=fresh.policy, encoder=fresh.training_encoder)
    # Then the candidate, worse on the holdout, is not promoted: it stays a candidate with its report
    assert not worse.activated, worse.reason
    assert "worse than active" in worse.reason
    with session_scope(fresh.engine) as session:
        assert session.get(ModelVersion, worse.version_id).status == "candidate"
        assert session.get(ModelVersion, starter_id).status == "active"
    assert answers() == before
    # Given an admin who overrides the gate and activates the candidate by hand
    with session_scope(fresh.engine) as session:
        activate(session, worse.version_id, actor="admin")
    overridden = answers()
    assert overridden != before
    # When the admin rolls back to the starter model
    from core.services.models import activate_version

    rolled = activate_version(engine=fresh.engine, version_id=starter_id, actor="admin")
    # Then every process serves exactly the old answers again
    assert answers() == before
    # And the admin is told that the rollback does not undo the approvals: the 40 examples stored
    # since the starter model are learned again by the next training run
    assert rolled.newer_examples == 40


def _add_examples(runtime, rows: list[tuple[str, str]]) -> list[int]:  # type: ignore[no-untyped-def]
    """Approved corrections, as a reviewer's approval stores them; their ids."""
    from core.corpus import content_hash

    with session_scope(runtime.engine) as session:
        added = [
            TrainingExample(
                text=text,
                content_hash=content_hash(text),
                label=label,
                source=ExampleSource.feedback,
                split=Split.train,
                origin=f"{'bad' if label == 'legal' else 'good'}/{i}",
            )
            for i, (text, label) in enumerate(rows)
        ]
        session.add_all(added)
        session.flush()
        return [example.id for example in added]


def test_a_training_request_a_later_run_already_covered_does_not_run_again(fresh) -> None:  # type: ignore[no-untyped-def]
    from core.services import tasks

    # Given two full retrains requested while a run was under way (the second made while the first
    # was briefly taken and put back, so it did not join it)
    with session_scope(fresh.engine) as session:
        first = tasks.create_task(session, kind="training", params={"mode": "full"}, total=4).id
        second = tasks.create_task(session, kind="training", params={"mode": "full"}, total=4).id
    with session_scope(fresh.engine) as session:
        versions = len(session.exec(select(ModelVersion)).all())
    # When the workers run both, the first starting a moment after both were requested
    time.sleep(1.1)
    run_training_task(engine=fresh.engine, task_id=first, policy=fresh.policy, encoder=fresh.training_encoder)
    run_training_task(
        engine=fresh.engine, task_id=second, policy=fresh.policy, encoder=fresh.training_encoder
    )
    # Then one trained, and the other says which run learned what it asked for
    with session_scope(fresh.engine) as session:
        assert len(session.exec(select(ModelVersion)).all()) == versions + 1
    done = tasks.get_task(engine=fresh.engine, task_id=second)
    assert done.status == "SUCCEEDED" and done.result["covered_by"] == first, done
    # Given a waiting request, a run that started after it was made, and then another request (an
    # approval) joining the waiting one while that run is under way
    with session_scope(fresh.engine) as session:
        waiting = tasks.create_task(session, kind="training", params={"mode": "full"}, total=4).id
    time.sleep(1.1)
    with session_scope(fresh.engine) as session:
        under_way = tasks.create_task(session, kind="training", params={"mode": "full"}, total=4)
        under_way.status, under_way.started_at = "SUCCEEDED", under_way.created_at
        session.add(under_way)
    joined, was_waiting = request_training(engine=fresh.engine, mode="full")
    assert (joined.id, was_waiting) == (waiting, True)
    # When the waiting one runs, then it trains: the run under way may have read the examples
    # before that approval
    run_training_task(
        engine=fresh.engine, task_id=waiting, policy=fresh.policy, encoder=fresh.training_encoder
    )
    with session_scope(fresh.engine) as session:
        assert len(session.exec(select(ModelVersion)).all()) == versions + 2
    assert "covered_by" not in tasks.get_task(engine=fresh.engine, task_id=waiting).result


def test_an_approval_that_joined_the_gold_set_says_so_instead_of_training(fresh) -> None:  # type: ignore[no-untyped-def]
    # Given an approved correction that landed in the gold set (judged on, never trained on), then
    # an imported file that did
    for text, label, source, origin, said in (
        (FINANCE, "finance", ExampleSource.feedback, "feedback/test", "approved document"),
        (LEGAL, "legal", ExampleSource.import_, "mine/legal/one.txt", "imported file"),
    ):
        with session_scope(fresh.engine) as session:
            session.add(
                TrainingExample(
                    text=text,
                    content_hash=f"gold-{label}",
                    label=label,
                    source=source,
                    split=Split.holdout,
                    origin=origin,
                )
            )
        # When the incremental run it queued looks for something new to learn
        with pytest.raises(Invalid) as nothing:
            train_incremental(engine=fresh.engine, policy=fresh.policy, encoder=fresh.training_encoder)
        # Then it says why nothing was trained
        assert f"The newest {said} went to the gold set" in nothing.value.message


def test_a_training_run_cancelled_while_under_way_stores_and_activates_nothing(fresh) -> None:  # type: ignore[no-untyped-def]
    from core.services import tasks

    # Given a training run asked to cancel just as a worker took it
    with session_scope(fresh.engine) as session:
        task = tasks.create_task(session, kind="training", params={"mode": "full"}, total=4)
        task.cancel_requested = True
        session.add(task)
        task_id = task.id
    # When the worker runs it, it stops at its next stage: no version stored, none activated
    _runs_cancelled_storing_nothing(fresh, task_id)


def _runs_cancelled_storing_nothing(fresh, task_id: str) -> None:  # type: ignore[no-untyped-def]
    """Run the training task: it must end CANCELLED, with no version stored (none activated)."""
    from core.db.tables import Task

    with session_scope(fresh.engine) as session:
        versions = len(session.exec(select(ModelVersion)).all())
    outcome = run_training_task(
        engine=fresh.engine, task_id=task_id, policy=fresh.policy, encoder=fresh.training_encoder
    )
    assert outcome == "cancelled"
    with session_scope(fresh.engine) as session:
        assert len(session.exec(select(ModelVersion)).all()) == versions
        assert session.get(Task, task_id).status == "CANCELLED"


def test_a_training_run_cancelled_while_it_compares_with_the_active_model_stores_nothing(  # type: ignore[no-untyped-def]
    fresh, monkeypatch
) -> None:
    from core.services import tasks, training

    with session_scope(fresh.engine) as session:
        task = tasks.create_task(session, kind="training", params={"mode": "full"}, total=4)
        task_id = task.id
    compare = training.promotion_decision

    def cancelled_meanwhile(**kwargs):  # type: ignore[no-untyped-def]
        tasks.cancel(engine=fresh.engine, task_id=task_id, actor="ada")  # during its last stage
        return compare(**kwargs)

    monkeypatch.setattr(training, "promotion_decision", cancelled_meanwhile)
    # When the run is cancelled while it compares itself with the active model, it stores nothing
    # (the cancel was accepted, and the version was stored and went live)
    _runs_cancelled_storing_nothing(fresh, task_id)


def test_a_rollback_while_a_run_trains_is_not_undone_by_it(fresh, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from core.services import training
    from core.services.models import activate_version, list_versions

    # Given a second version (a new industry learned), so that there is something to roll back to
    create_industry(engine=fresh.engine, name="real_estate", description="Houses and property.")
    first = train_incremental(engine=fresh.engine, policy=fresh.policy, encoder=fresh.training_encoder)
    assert first.activated
    create_industry(engine=fresh.engine, name="beekeeping", description="Bees, hives and honey.")
    # When an admin rolls back to the starter version while the next run is being judged
    judged = training.promotion_decision

    def rolled_back_meanwhile(**kwargs):  # type: ignore[no-untyped-def]
        activate_version(engine=fresh.engine, version_id=1, actor="admin")
        return judged(**kwargs)

    monkeypatch.setattr(training, "promotion_decision", rolled_back_meanwhile)
    outcome = train_incremental(engine=fresh.engine, policy=fresh.policy, encoder=fresh.training_encoder)
    # Then the run stores its version but does not undo the rollback, and says why
    assert not outcome.activated
    assert "v1 was made active while it trained" in outcome.reason
    listed = {v.id: v for v in list_versions(engine=fresh.engine)}
    assert listed[1].status == "active"
    assert listed[outcome.version_id].status == "candidate"
    assert listed[outcome.version_id].promotion["reason"] == outcome.reason


def _classified(runtime, text: str) -> dict:  # type: ignore[no-untyped-def]
    """An upload's job, classified as a worker does it: its answer, confidence, scores and reasons."""
    from core.services.jobs import get_job

    job = get_job(engine=runtime.engine, job_id=classify_now(runtime, text))
    return {
        "id": job.id,
        "label": job.classification_result,
        "confidence": job.confidence,
        "scores": job.scores,
        "reasons": job.review_reasons,
    }


def test_a_rollback_to_a_version_older_than_a_rename_answers_under_the_new_name(fresh) -> None:  # type: ignore[no-untyped-def]
    from core.services.industries import update_industry
    from core.services.models import activate_version

    starter_id = 1
    # Given "legal" renamed "law" (and renamed again, "law_and_courts"): until the training run the
    # rename asked for is live, the version that knew it as "legal" answers it under its new name
    update_industry(engine=fresh.engine, name="legal", new_name="law")
    update_industry(engine=fresh.engine, name="law", new_name="law_and_courts")
    time.sleep(fresh.models.refresh_seconds + 0.1)
    assert _classified(fresh, LEGAL + " Before.")["label"] == "law_and_courts"
    renamed = train_incremental(engine=fresh.engine, policy=fresh.policy, encoder=fresh.training_encoder)
    assert renamed.activated, renamed.reason
    assert _classified(fresh, LEGAL + " First.")["label"] == "law_and_courts"
    # When an admin rolls back to the starter version, trained while it was still "legal"
    rolled = activate_version(engine=fresh.engine, version_id=starter_id, actor="admin")
    # Then the rollback does not claim the renamed industry is lost ...
    assert rolled.not_predicted == []
    # ... and its documents are still filed under the industry's name today, not under the next best
    # industry (the version's "legal" is not an active industry any more)
    time.sleep(fresh.models.refresh_seconds + 0.1)
    answer = _classified(fresh, LEGAL + " Second.")
    assert answer["label"] == "law_and_courts", answer
    assert "legal" not in answer["scores"] and "law_and_courts" in answer["scores"]


def test_a_version_that_knows_few_of_the_active_industries_is_not_sure_of_what_it_cannot_tell(fresh) -> None:  # type: ignore[no-untyped-def]
    from core.services.industries import retire_industry

    # Given the taxonomy replaced under the active version (as `heron import --replace` does, or a
    # rollback): of today's industries it knows only finance and the catch-all
    create_industry(engine=fresh.engine, name="shipping", description="Ports, freight and vessels.")
    for name in ("legal", "healthcare", "technology", "education", "entertainment"):
        retire_industry(engine=fresh.engine, name=name)
    time.sleep(fresh.models.refresh_seconds + 0.1)
    # When a court judgment arrives before a version that knows the new taxonomy is live
    answer = _classified(fresh, LEGAL)
    # Then it is not filed as finance or "other" with a confidence shared out from the industries
    # the version weighed and that are gone: the answer says how little it resembles either, and a
    # person is asked
    assert answer["confidence"] < 0.5 and "low_confidence" in answer["reasons"], answer
    assert set(answer["scores"]) == {"finance", "other"} and sum(answer["scores"].values()) < 0.5
    # And a finance document, which the version can tell, keeps a sure answer
    sure = _classified(fresh, FINANCE)
    assert sure["label"] == "finance" and sure["confidence"] > 0.8 and not sure["reasons"], sure


def test_a_gold_document_sent_again_by_another_way_stays_gold(fresh, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core.corpus import content_hash, is_holdout
    from core.extract import ExtractionLimits
    from core.services.datasets import add_example_files, import_directory
    from core.services.feedback import decide, submit_feedback

    # Given a folder of the user's own documents imported, some of it kept as gold by file
    folder = tmp_path / "mine"
    texts = {}
    for label, base in (("finance", FINANCE), ("legal", LEGAL)):
        (folder / label).mkdir(parents=True)
        for number in range(8):
            text = f"{base} Reference {label}-{number}."
            (folder / label / f"{number}.txt").write_text(text)
            texts[f"mine/{label}/{number}.txt"] = (label, text)
    import_directory(engine=fresh.engine, root=folder, limits=ExtractionLimits())
    gold = [(label, text) for origin, (label, text) in texts.items() if is_holdout(origin)]
    assert gold, "no file of the folder went to the gold set"
    label, text = gold[0]
    # When one of the gold documents is uploaded, corrected to its label and approved ...
    job = _classified(fresh, text)
    feedback = submit_feedback(engine=fresh.engine, job_id=job["id"], label=label)
    decide(engine=fresh.engine, feedback_ids=[feedback.id], approve=True)
    # ... and sent again as an example file of its industry
    add_example_files(
        engine=fresh.engine, industry="legal", files=[("again.txt", text.encode())], limits=ExtractionLimits()
    )
    # Then every example of its text is gold: none of them trains, and the gold set stays fair
    with session_scope(fresh.engine) as session:
        rows = session.exec(
            select(TrainingExample).where(TrainingExample.content_hash == content_hash(text))
        ).all()
    assert len(rows) >= 2 and {row.split for row in rows} == {Split.holdout}, [
        (row.source, row.label, row.split) for row in rows
    ]


def test_a_text_both_trained_on_and_gold_is_only_judged_on(fresh) -> None:  # type: ignore[no-untyped-def]
    # Given a database from before a text's split was decided once: a gold document that was also
    # stored, by another way, as a training example
    def example(source: ExampleSource, split: Split, origin: str) -> TrainingExample:
        return TrainingExample(
            text=TECHNOLOGY + " Twice.",
            content_hash="twice",
            label="technology",
            source=source,
            split=split,
            origin=origin,
        )

    with session_scope(fresh.engine) as session:
        session.add(example(ExampleSource.import_, Split.holdout, "mine/technology/gold.txt"))
        session.add(example(ExampleSource.feedback, Split.train, "feedback/1"))
    # When a training run looks for something new to learn, it finds nothing: the model never
    # trains on a document the gold set judges it on
    with pytest.raises(Invalid, match="No training examples were added"):
        train_incremental(engine=fresh.engine, policy=fresh.policy, encoder=fresh.training_encoder)


def test_names_spelt_apart_only_by_dashes_or_underscores_are_one_industry(fresh, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core.errors import Conflict
    from core.extract import ExtractionLimits
    from core.services.datasets import import_directory
    from core.services.industries import list_industries, update_industry

    # Given an industry imported as "bank_statement"
    create_industry(engine=fresh.engine, name="bank_statement", description="Bank statements.")
    # When someone adds "Bank-Statement" or "bankstatement", or renames another industry so
    # Then it is refused as the industry that exists
    for spelling in ("Bank-Statement", "bankstatement"):
        with pytest.raises(Conflict, match="'bank_statement'"):
            create_industry(engine=fresh.engine, name=spelling)
    with pytest.raises(Conflict, match="'bank_statement'"):
        update_industry(engine=fresh.engine, name="finance", new_name="bank-statement")
    # When a folder spells it "bank-statement/" in an import
    folder = tmp_path / "types"
    for name, text in (("bank-statement", FINANCE), ("legal", LEGAL)):
        (folder / name).mkdir(parents=True)
        (folder / name / "one.txt").write_text(text + " Statement.")
    result = import_directory(engine=fresh.engine, root=folder, limits=ExtractionLimits())
    # Then its files are examples of that industry, and no second one is created
    assert result["created"] == [] and result["added"] == {"bank_statement": 1, "legal": 1}, result
    names = [industry.name for industry in list_industries(engine=fresh.engine)]
    assert "bank-statement" not in names and names.count("bank_statement") == 1
    # And importing the folder again adds nothing, and says of each file why (the counts add up)
    again = import_directory(engine=fresh.engine, root=folder, limits=ExtractionLimits())
    assert again["added"] == {} and [item["code"] for item in again["skipped"]] == ["duplicate", "duplicate"]
    # And two spellings of a new name in one folder make one industry
    twins = tmp_path / "twins"
    for name, text in (("cash-flow", FINANCE + " Cash A."), ("cash_flow", FINANCE + " Cash B.")):
        (twins / name).mkdir(parents=True)
        (twins / name / "one.txt").write_text(text)
    result = import_directory(engine=fresh.engine, root=twins, limits=ExtractionLimits())
    assert result["created"] == ["cash-flow"] and result["added"] == {"cash-flow": 2}, result


def test_an_approval_says_how_many_of_its_documents_went_to_the_gold_set(fresh) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    from core.corpus import is_holdout
    from core.services.feedback import decide, submit_feedback

    # Given two uploads, one of which the gold share takes (decided by the document's hash)
    def text(gold: bool) -> str:
        return next(
            candidate
            for n in range(1000)
            if is_holdout(
                f"document:{hashlib.sha256((candidate := f'{FINANCE} Note {n}.').encode()).hexdigest()}", 0.2
            )
            == gold
        )

    jobs = [_classified(fresh, text(gold)) for gold in (True, False)]
    ids = [submit_feedback(engine=fresh.engine, job_id=job["id"], label="legal").id for job in jobs]
    # When both are approved
    decided = decide(engine=fresh.engine, feedback_ids=ids, approve=True)
    # Then the reviewer is told one went to the gold set (judged on, never trained on)
    assert decided.gold == 1


def test_a_version_learning_a_newcomer_still_answers_once_another_industry_is_retired(fresh) -> None:  # type: ignore[no-untyped-def]
    from core.services.industries import retire_industry

    # Given a version that is learning a new industry (known from its description only) ...
    create_industry(engine=fresh.engine, name="shipping", description="Ports, freight, vessels and cargo.")
    learning = train_incremental(engine=fresh.engine, policy=fresh.policy, encoder=fresh.training_encoder)
    assert learning.activated, learning.reason
    # ... and an industry retired before the next version is trained
    retire_industry(engine=fresh.engine, name="education")
    time.sleep(fresh.models.refresh_seconds + 0.1)
    # When documents arrive, then they are answered (the verdicts of the version as it was before
    # the newcomer know no score for it: restricting them to today's industries failed every job)
    for text in (FINANCE, LEGAL + " Retired."):
        answer = _classified(fresh, text)
        assert answer["label"] in ("finance", "legal"), answer


def test_the_catch_all_an_import_retired_is_the_catch_all_again_once_restored(fresh, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core.extract import ExtractionLimits
    from core.services.datasets import import_directory
    from core.services.industries import list_industries, restore_industry

    # Given a taxonomy imported with --replace: "other", the catch-all, is retired and stops being it
    folder = tmp_path / "types"
    for name, text in (("invoices", FINANCE), ("contracts", LEGAL)):
        (folder / name).mkdir(parents=True)
        (folder / name / "one.txt").write_text(text + " Typed.")
    import_directory(engine=fresh.engine, root=folder, limits=ExtractionLimits(), replace=True)
    assert not {i.name: i for i in list_industries(engine=fresh.engine)}["other"].catch_all
    # When the user brings "other" back (no industry of the import holds the role)
    restore_industry(engine=fresh.engine, name="other")
    # Then it is the catch-all again: new industries are carved out of it, as before the import
    assert {i.name: i for i in list_industries(engine=fresh.engine)}["other"].catch_all


def test_a_retired_newcomer_is_learned_no_more_by_the_version_that_was_learning_it(fresh) -> None:  # type: ignore[no-untyped-def]
    from core.services.industries import active_names, retire_industry

    class Counting:
        """The runtime's encoder, counting the documents the transformer tier reads."""

        def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
            self.inner, self.embedded = inner, 0

        def embed(self, texts):  # type: ignore[no-untyped-def]
            self.embedded += len(texts)
            return self.inner.embed(texts)

        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(self.inner, name)

    # Given a version learning "shipping" from its description (every document goes to the
    # transformer tier, to ask whether it is shipping) ...
    create_industry(engine=fresh.engine, name="shipping", description="Ports, freight, vessels and cargo.")
    assert train_incremental(
        engine=fresh.engine, policy=fresh.policy, encoder=fresh.training_encoder
    ).activated
    _, model = fresh.models.active(fresh.engine)
    texts = list(OBVIOUS.values())
    learning = Counting(fresh.encoder)
    model.classify(texts, fresh.policy, encoder=learning, allowed=active_names(engine=fresh.engine))
    assert learning.embedded == len(texts)
    # When shipping is retired before a newer version is trained
    retire_industry(engine=fresh.engine, name="shipping")
    retired = Counting(fresh.encoder)
    verdicts = model.classify(texts, fresh.policy, encoder=retired, allowed=active_names(engine=fresh.engine))
    # Then documents the fast tier is sure of are answered by it alone again, and no answer is
    # queued for a person about an industry that is gone
    assert retired.embedded < len(texts), retired.embedded
    assert not [
        v.review_reasons for v in verdicts if any(r.startswith("new_industry") for r in v.review_reasons)
    ]


def test_a_newcomer_is_not_robbed_by_a_retired_industry_of_its_kind(fresh) -> None:  # type: ignore[no-untyped-def]
    from core.services.industries import active_names, retire_industry
    from core.services.models import industry_prototypes

    # Given "shipping" described, learned from its description, then retired, and "maritime" (the
    # same kind of documents) described in its place before any version knows it
    description = "Ports, container ships, freight forwarding, vessels, cargo manifests and bills of lading."
    create_industry(engine=fresh.engine, name="shipping", description=description)
    assert train_incremental(
        engine=fresh.engine, policy=fresh.policy, encoder=fresh.training_encoder
    ).activated
    retire_industry(engine=fresh.engine, name="shipping")
    create_industry(engine=fresh.engine, name="maritime", description=description)
    _, model = fresh.models.active(fresh.engine)
    model = model.with_prototypes(industry_prototypes(fresh.encoder, {"maritime": description}))
    # When a cargo manifest is classified among today's industries
    [verdict] = model.classify(
        [
            "Cargo manifest: 40 containers loaded at berth 7 of the port; bill of lading BL-2231 issued "
            "to the freight forwarder; the vessel sails for Rotterdam on Friday."
        ],
        fresh.policy,
        encoder=fresh.encoder,
        allowed=active_names(engine=fresh.engine),
    )
    # Then it is the newcomer's (the retired industry took it, and the model without the newcomer
    # filed it elsewhere with confidence)
    assert verdict.label == "maritime", verdict
