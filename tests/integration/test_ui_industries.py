"""The Industries page, driven by Streamlit's AppTest against the real database and queue."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.corpus import content_hash
from core.db import session_scope
from core.db.tables import TrainingExample
from core.services.examples import decide_examples, list_examples
from core.services.industries import IndustryView, list_industries, retire_industry
from core.services.tasks import list_tasks
from core.services.taxonomy import add_industry
from core.settings import get_settings
from tests.conftest import wait_for_job

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")

BEEKEEPING = (
    "Beekeeping: keeping honey bee colonies in hives, apiaries and bee yards; honey harvests and "
    "extraction; queen bees, brood, swarms and splits; varroa mites and hive inspections."
)
HIVE_NOTES = [
    "Hive inspection, apiary 3: the queen is laying well, five frames of capped brood, two supers of "
    "honey. Treated the colony for varroa mites with oxalic acid; swarm cells removed.",
    "Spring honey harvest: we extracted 42 kg of honey from the bee yard by the orchard, requeened two "
    "weak hives and split the strongest colony to prevent swarming.",
]
QUESTION = (
    "Our bees swarmed from the second hive yesterday; the beekeeper caught the swarm and the queen in a "
    "box. Should we feed the colony sugar syrup and check the brood frames for varroa before the honey flow?"
)


@pytest.fixture
def app(runtime, client, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # The console reads its settings from the environment, like `heron ui` does; point it at the
    # database the session's worker threads serve.
    monkeypatch.setenv("HERON_DATA_DIR", str(runtime.settings.data_dir))
    get_settings.cache_clear()
    yield AppTest.from_file(APP, default_timeout=60)
    get_settings.cache_clear()


def _industries(runtime) -> dict[str, IndustryView]:  # type: ignore[no-untyped-def]
    return {industry.name: industry for industry in list_industries(engine=runtime.engine)}


def _open_industries_page(app: AppTest, name: str) -> AppTest:
    # The sidebar's name field, filled in before the first run (AppTest re-runs only the page after it).
    app.session_state["heron_user_name"] = name
    app.run()
    return app.switch_page("views/industries.py").run()


def test_an_industry_added_on_the_page_is_listed_and_predicted(app: AppTest, runtime, client) -> None:  # type: ignore[no-untyped-def]
    # Given the Industries page, which lists the industries with their example counts and F1
    run = uuid.uuid4().hex[:6]
    name = f"beekeeping_{run}"
    _open_industries_page(app, f"Grace-{run}")
    assert not app.exception
    table = app.dataframe[0].value
    assert {"finance", "legal"} <= set(table["industry"])
    assert {"starter", "import", "feedback", "synthetic", "F1", "status"} <= set(table.columns)
    assert table.set_index("industry").loc["finance", "F1"] > 0.5
    # When a reviewer adds an industry with a description, two example files and synthetic documents
    app.text_input(key="industries_new_name").input(f"Beekeeping {run}")
    app.text_area(key="industries_new_description").input(BEEKEEPING)
    for i, text in enumerate(HIVE_NOTES):
        app.file_uploader(key="industries_new_files").upload(f"hive{i}.txt", text.encode(), "text/plain")
    # (no LLM is configured in the tests: synthetic documents cannot be asked for, and the page says why)
    assert app.number_input(key="industries_new_synthetic").disabled
    assert any("No LLM is configured" in caption.value for caption in app.caption)
    app.button(key="industries_add_submit").click().run(timeout=120)
    # Then the page says it was added and follows its training task to its end
    assert not app.exception
    assert app.success[0].value.startswith(f"Added {name!r} with 2 example file(s)")
    bars = app.get("progress")
    assert len(bars) == 1 and bars[0].value == 100  # percent
    assert any("Model v" in success.value for success in app.success)
    assert not [warning for warning in app.warning if "not predicted yet" in warning.value]
    # ... and once read, the progress can be dismissed
    app.button(key="industries_dismiss").click().run()
    assert not app.get("progress")
    # ... it is listed, with its examples, in the reviewer's name
    listed = _industries(runtime)[name]
    assert listed.status == "active" and listed.examples == {"import": 2}
    assert not [
        t
        for t in list_tasks(engine=runtime.engine, kind="synthesis", limit=50)[0]
        if t.params["industry"] == name
    ]
    assert name in set(app.dataframe[0].value["industry"])
    # ... and a document about it is classified into it
    time.sleep(runtime.models.refresh_seconds + 0.5)
    job_id = client.post("/api/classify_file", files={"file": ("swarm.txt", QUESTION.encode())}).json()[
        "job_id"
    ]
    assert wait_for_job(client, job_id)["classification_result"] == name
    # (the session's Heron is shared: stop predicting it so later tests see the usual industries)
    retire_industry(engine=runtime.engine, name=name, actor="test")


def test_an_industry_whose_training_is_not_promoted_is_said_to_be_not_predicted(
    app: AppTest, runtime, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # Given a Heron whose promotion rule refuses every candidate (as contradictory gold labels can)
    from core.services import training

    decide = training.promotion_decision

    def refuse(**reports):  # type: ignore[no-untyped-def]
        return {**decide(**reports), "activated": False, "reason": "refused for this test"}

    monkeypatch.setattr(training, "promotion_decision", refuse)
    run = uuid.uuid4().hex[:6]
    _open_industries_page(app, f"Grace-{run}")
    # When a reviewer adds an industry from its description
    app.text_input(key="industries_new_name").input(f"Apiary {run}")
    app.text_area(key="industries_new_description").input(BEEKEEPING)
    app.button(key="industries_add_submit").click().run(timeout=120)
    # Then the page does not claim it is predicted: the training's version was not promoted, and
    # the page says the industry is not predicted yet and where to go
    assert not app.exception
    assert any("was not activated (refused for this test)" in warning.value for warning in app.warning), [
        (e.type, e.value) for e in (*app.warning, *app.info, *app.success, *app.error)
    ]
    assert any(f"'apiary_{run}' is not predicted yet" in warning.value for warning in app.warning)
    # And the industries table says so too, to everyone who opens the page (not only in the box of
    # the session that added it)
    app.run()
    assert any(f"does not predict 'apiary_{run}'" in warning.value for warning in app.warning)
    retire_industry(engine=runtime.engine, name=f"apiary_{run}", actor="test")


def test_rename_and_retire_from_the_page(app: AppTest, runtime) -> None:  # type: ignore[no-untyped-def]
    # Given an industry
    run = uuid.uuid4().hex[:6]
    old, new = f"orchards_{run}", f"fruit_growing_{run}"
    add_industry(
        engine=runtime.engine,
        work=runtime.work,
        settings=runtime.settings,
        name=old,
        description="Apple and pear orchards, pruning, harvests.",
    )
    _open_industries_page(app, f"Grace-{run}")
    # When a reviewer renames and redescribes it
    app.selectbox(key="industries_edit_target").select(old).run()
    app.text_input(key=f"industries_edit_name_{old}").input(new.replace("_", " ").title())
    app.text_area(key=f"industries_edit_description_{old}").input(
        "Fruit farms: orchards, soft fruit, harvests."
    )
    app.button(key="industries_edit_submit").click().run()
    # Then it is listed under its new name with its new description
    assert not app.exception
    assert app.success[0].value.startswith(f"Renamed {old!r} to {new!r}; its examples and corrections follow")
    assert f"saved the description of {new!r}" in app.success[0].value
    listed = _industries(runtime)
    assert old not in listed and listed[new].description == "Fruit farms: orchards, soft fruit, harvests."
    assert app.selectbox(key="industries_edit_target").value == new
    # ... and the page follows the training run the change queued, as for an added industry
    assert any(header.value == f"Learning the change to {new}" for header in app.subheader)
    # When the reviewer saves without changing anything
    app.button(key="industries_edit_submit").click().run()
    # Then the page says so in its own words (it showed the API's "send a new name … or catch_all")
    assert any(info.value.startswith("Nothing changed") for info in app.info)
    # When the reviewer makes it the catch-all from the page, then gives the role back to 'other'
    app.checkbox(key=f"industries_edit_catch_all_{new}").check()
    app.button(key="industries_edit_submit").click().run()
    assert not app.exception and f"{new!r} is now the catch-all" in app.success[0].value
    assert _industries(runtime)[new].catch_all and not _industries(runtime)["other"].catch_all
    table = next(frame.value for frame in app.dataframe if "catch-all" in frame.value.columns)
    assert list(table.loc[table["catch-all"], "industry"]) == [new]
    app.selectbox(key="industries_edit_target").select("other").run()
    app.checkbox(key="industries_edit_catch_all_other").check()
    app.button(key="industries_edit_submit").click().run()
    assert _industries(runtime)["other"].catch_all and not _industries(runtime)[new].catch_all
    # When the reviewer retires it
    app.selectbox(key="industries_retire_target").select(new).run()
    assert any("Nothing is deleted" in warning.value for warning in app.warning)
    app.button(key="industries_retire").click().run()
    # Then it is retired (still listed, with its data) and no longer offered for retirement
    assert not app.exception
    assert app.success[0].value == f"Retired {new!r}."
    assert _industries(runtime)[new].status == "retired"
    assert new not in app.selectbox(key="industries_retire_target").options
    assert app.dataframe[0].value.set_index("industry").loc[new, "status"] == "retired"
    # When the reviewer restores it, then it is active again and offered for retirement once more
    app.selectbox(key="industries_restore_target").select(new).run()
    app.button(key="industries_restore").click().run()
    assert not app.exception
    assert app.success[0].value.startswith(f"Restored {new!r}")
    assert _industries(runtime)[new].status == "active"
    assert new in app.selectbox(key="industries_retire_target").options


def test_synthetic_documents_wait_for_review_and_train_once_approved(app: AppTest, runtime) -> None:  # type: ignore[no-untyped-def]
    # Given an industry with three synthetic documents waiting for review (as a synthesis run
    # stores them), one of which the active model places in another industry
    run = uuid.uuid4().hex[:6]
    name = f"apiculture_{run}"
    add_industry(
        engine=runtime.engine, work=runtime.work, settings=runtime.settings, name=name, description=BEEKEEPING
    )
    texts = [*HIVE_NOTES, "Quarterly results: revenue rose and the board declared a dividend per share."]
    usual = {"genre": "hive inspection notes", "predicted": name, "confidence": 0.8}
    odd = {**usual, "predicted": "finance", "confidence": 0.93, "flag": "looks_like"}
    with session_scope(runtime.engine) as session:
        session.add_all(
            TrainingExample(
                text=f"{text} ({run})",
                content_hash=content_hash(f"{text} ({run})"),
                label=name,
                source="synthetic",
                split="train",
                status="pending",
                origin=f"synthetic/test/{i}",
                meta=odd if i == 2 else usual,
            )
            for i, text in enumerate(texts)
        )
        # (and one of another industry, waiting too)
        elsewhere = TrainingExample(
            text=f"Quarterly dividend notes ({run})",
            content_hash=content_hash(f"Quarterly dividend notes ({run})"),
            label="finance",
            source="synthetic",
            split="train",
            status="pending",
            origin=f"synthetic/test/{run}",
            meta=usual,
        )
        session.add(elsewhere)
        session.flush()
        elsewhere_id = elsewhere.id
    reviewer = f"Grace-{run}"
    _open_industries_page(app, reviewer)
    # When the reviewer shows that industry's waiting documents
    app.selectbox(key="industries_synthetic_industry").select(name).run()
    # Then they are listed with their genre, and the odd one out is flagged
    assert not app.exception
    table = app.data_editor[0].value
    assert len(table) == 3 and set(table["industry"]) == {name}
    assert set(table["genre"]) == {"hive inspection notes"}
    flagged = table[table["model says"].str.startswith("looks like", na=False)]
    assert list(flagged["model says"]) == ["looks like finance (93%)"]
    assert app.dataframe[0].value.set_index("industry").loc[name, "awaiting review"] == 3
    # When the reviewer rejects the flagged one and approves the other two
    editor_key = app.data_editor[0].key
    app.session_state[editor_key] = {
        "edited_rows": {int(flagged.index[0]): {"select": True}},
        "added_rows": [],
        "deleted_rows": [],
    }
    app.run()
    app.button(key="synthetic_reject").click().run()
    assert not app.exception
    assert app.success[0].value == f"Rejected 1 synthetic document as {reviewer}."
    app.selectbox(key="industries_synthetic_industry").select(name).run()
    next(box for box in app.checkbox if box.key.startswith("synthetic_confirm_all")).check().run()
    app.button(key="synthetic_approve_all").click().run(timeout=120)
    # Then only the approved ones may train, the page follows the training they queued to its end,
    # and nothing is left waiting
    assert not app.exception
    assert app.success[0].value.startswith(f"Approved 2 synthetic documents as {reviewer}.")
    decided, _ = list_examples(engine=runtime.engine, source="synthetic", label=name, limit=10)
    assert sorted(example.status for example in decided) == ["approved", "approved", "rejected"]
    assert [bar.value for bar in app.get("progress")] == [100]  # percent
    # (a model trained on them, or none needed: a run another approval queued learned them first)
    ends = [element.value for element in (*app.success, *app.info)]
    assert any("Model v" in end or end.startswith("Training had nothing new to learn") for end in ends), ends
    assert list_examples(engine=runtime.engine, source="synthetic", status="pending", label=name)[1] == 0
    # And the confirmation is asked afresh: it is not left ticked, arming "Approve all" for the
    # documents the page shows next (other industries', never looked at)
    assert [box.value for box in app.checkbox if box.key.startswith("synthetic_confirm_all")] == [False]
    assert not any(button.key == "synthetic_approve_all" for button in app.button)
    decide_examples(engine=runtime.engine, work=runtime.work, ids=[elsewhere_id], approve=False)
    retire_industry(engine=runtime.engine, name=name, actor="test")


def test_a_refused_industry_keeps_what_was_typed_and_an_added_one_clears_the_form(
    app: AppTest, runtime
) -> None:  # type: ignore[no-untyped-def]
    run = uuid.uuid4().hex[:6]
    _open_industries_page(app, f"Grace-{run}")
    # When a reviewer adds an industry under a name that is taken
    app.text_input(key="industries_new_name").input("finance")
    app.text_area(key="industries_new_description").input(BEEKEEPING)
    app.button(key="industries_add_submit").click().run(timeout=120)
    # Then the refusal is shown and the description is still there to correct the name beside
    assert not app.exception
    assert any("already exists" in error.value for error in app.error)
    assert app.text_area(key="industries_new_description").value == BEEKEEPING
    assert app.text_input(key="industries_new_name").value == "finance"
    # When the name is corrected
    app.text_input(key="industries_new_name").input(f"Hives {run}")
    app.button(key="industries_add_submit").click().run(timeout=120)
    # Then the industry is added and the form is empty for the next one
    assert not app.exception
    assert app.text_input(key="industries_new_name").value == ""
    assert app.text_area(key="industries_new_description").value == ""
    retire_industry(engine=runtime.engine, name=f"hives_{run}", actor="test")
