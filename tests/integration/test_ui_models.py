"""The Models page, driven by Streamlit's AppTest against the real database and queue."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.classify.model import HeronModel
from core.db import session_scope
from core.db.tables import ModelVersion
from core.services.audit import list_events
from core.services.models import active_version_id, list_versions, store_version
from core.services.tasks import list_tasks
from core.settings import get_settings

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")
CHART = "vega_lite_chart"


@pytest.fixture
def app(runtime, client, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    # The console reads its settings from the environment, like `heron ui` does; point it at the
    # database the session's worker threads serve.
    monkeypatch.setenv("HERON_DATA_DIR", str(runtime.settings.data_dir))
    get_settings.cache_clear()
    yield AppTest.from_file(APP, default_timeout=60)
    get_settings.cache_clear()


def _active(runtime) -> int | None:  # type: ignore[no-untyped-def]
    with session_scope(runtime.engine) as session:
        return active_version_id(session)


def _wait_until_no_training_runs(runtime, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    # Earlier tests may have queued training; a run finishing mid-test would move the active version.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [
            task
            for status in ("PENDING", "RUNNING")
            for task in list_tasks(engine=runtime.engine, kind="training", status=status)[0]
        ]
        if not busy:
            return
        time.sleep(0.5)


def _open_models_page(app: AppTest, name: str) -> AppTest:
    # The sidebar's name field, filled in before the first run (AppTest re-runs only the page after it).
    app.session_state["heron_user_name"] = name
    app.run()
    return app.switch_page("views/models.py").run()


def test_models_page_lists_versions_and_draws_the_report(app: AppTest, runtime) -> None:  # type: ignore[no-untyped-def]
    # Given the shared Heron and its trained versions
    versions = list_versions(engine=runtime.engine)
    # When the Models page is opened
    _open_models_page(app, "Ada")
    # Then every version is listed with its status, parent and holdout macro-F1 ...
    assert not app.exception
    table = app.dataframe[0].value
    assert set(table["version"]) == {version.id for version in versions}
    assert {"status", "parent", "trained at", "trained on", "macro-F1"} <= set(table.columns)
    # ... and where each one's fast tier stops answering alone (versions trained since it is recorded)
    recorded = {
        v.id: v.metrics["escalation_threshold"] for v in versions if "escalation_threshold" in v.metrics
    }
    assert recorded and all(
        table.loc[table["version"] == version, "escalates below"].item() == threshold
        for version, threshold in recorded.items()
    )
    # ... and why training promoted each one, or did not
    reasons = {v.id: v.promotion["reason"] for v in versions if v.promotion}
    assert reasons and all(
        table.loc[table["version"] == version, "promotion"].item() == reason
        for version, reason in reasons.items()
    )
    # ... and the active version's report is drawn: P/R/F1 bars, confusion matrix, reliability
    # diagram and accuracy at coverage (plus the learning curve once there are two versions)
    assert app.selectbox(key="models_report_version").value == _active(runtime)
    expected = 4 + (len([v for v in versions if v.metrics.get("macro_f1") is not None]) >= 2)
    assert len(app.get(CHART)) == expected
    assert [metric.label for metric in app.metric][:3] == ["Macro-F1", "Accuracy", "ECE"]


def test_every_dataset_offered_for_a_version_can_be_drawn(app: AppTest, runtime) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import select

    from core.db.tables import EvaluationReport

    # Given a candidate version whose full training run also listed the examples it doubts (the
    # label-issues report every full run stores beside its evaluations)
    with session_scope(runtime.engine) as session:
        active = session.get(ModelVersion, active_version_id(session))
        doubted = store_version(
            session,
            HeronModel.from_bytes(active.artifact),
            parent_id=active.id,
            kind="full",
            metrics=dict(active.metrics),
            trained_on=dict(active.trained_on),
        ).id
        issue = {"example_id": 1, "label": "legal", "suggested": "finance", "confidence": 0.97}
        session.add(
            EvaluationReport(
                model_version_id=doubted, dataset="label_issues", report={"n": 1, "issues": [issue]}
            )
        )
        for stored in session.exec(
            select(EvaluationReport).where(EvaluationReport.model_version_id == active.id)
        ):
            session.add(
                EvaluationReport(model_version_id=doubted, dataset=stored.dataset, report=stored.report)
            )
    # When its report is opened on the Models page
    _open_models_page(app, "Ada")
    app.selectbox(key="models_report_version").select(doubted).run()
    assert not app.exception
    # Then label issues are not offered as an evaluation (chosen, they crashed the page), and
    # every dataset offered draws
    chooser = [box for box in app.selectbox if box.key == "models_report_dataset"]
    offered = chooser[0].options if chooser else []
    assert "label_issues" not in offered
    for dataset in offered:
        app.selectbox(key="models_report_dataset").select(dataset).run()
        assert not app.exception, dataset
    assert [metric.label for metric in app.metric][:3] == ["Macro-F1", "Accuracy", "ECE"]


def test_promote_and_roll_back_take_effect_only_after_confirming(app: AppTest, runtime) -> None:  # type: ignore[no-untyped-def]
    # Given a second version (a stored copy of the active model, without a report of its own)
    _wait_until_no_training_runs(runtime)
    with session_scope(runtime.engine) as session:
        original = active_version_id(session)
        parent = session.get(ModelVersion, original)
        candidate, other = (
            store_version(
                session,
                HeronModel.from_bytes(parent.artifact),
                parent_id=original,
                kind="full",
                metrics=dict(parent.metrics),
                trained_on=dict(parent.trained_on),
            ).id
            for _ in range(2)
        )
    admin = f"Grace-{uuid.uuid4().hex[:6]}"
    _open_models_page(app, admin)
    # When an admin asks to promote one version, then picks another before confirming
    app.selectbox(key="models_target").select(other).run()
    app.button(key="models_activate").click().run()
    app.selectbox(key="models_target").select(candidate).run()
    # Then the question about the first is withdrawn: confirming never activates a version other
    # than the one shown
    assert not [w for w in app.warning if "Make **v" in w.value]
    assert not [b for b in app.button if b.key == "models_confirm"]
    # When an admin asks to promote it and then cancels
    app.selectbox(key="models_target").select(candidate).run()
    assert app.button(key="models_activate").label == f"Promote v{candidate}…"
    app.button(key="models_activate").click().run()
    assert "Make **v" in app.warning[0].value
    app.button(key="models_cancel").click().run()
    # Then nothing changed
    assert not app.exception
    assert _active(runtime) == original
    # When the admin asks again and confirms
    app.button(key="models_activate").click().run()
    app.button(key="models_confirm").click().run()
    # Then the candidate is active, and the admin's name is on the audit trail
    assert not app.exception
    assert _active(runtime) == candidate
    assert f"v{candidate} is now the active model" in app.success[0].value
    # ... and the evaluation report follows it
    assert app.selectbox(key="models_report_version").value == candidate
    # ... and its report view says it has no report of its own instead of failing
    app.selectbox(key="models_report_version").select(candidate).run()
    assert not app.exception
    assert "has no stored evaluation report" in app.info[0].value
    # When the admin rolls back to the original version and confirms
    app.selectbox(key="models_target").select(original).run()
    assert app.button(key="models_activate").label == f"Roll back to v{original}…"
    app.button(key="models_activate").click().run()
    app.button(key="models_confirm").click().run()
    # Then the original is active again
    assert not app.exception
    assert _active(runtime) == original
    events, _ = list_events(engine=runtime.engine, action="model.activated", actor=admin)
    assert sorted(int(event.subject_id) for event in events) == sorted([candidate, original])


def test_only_admins_see_promotion_controls(app: AppTest, runtime, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    # Given a console with API keys, and a reviewer's key
    monkeypatch.setenv("HERON_API_KEYS", "reviewer-key:reviewer,admin-key:admin")
    get_settings.cache_clear()
    app.session_state["heron_api_key"] = "reviewer-key"
    app.run()
    # When the reviewer opens the Models page
    app.switch_page("views/models.py").run()
    # Then they can read the versions and the report but cannot change the active version
    assert not app.exception
    assert app.dataframe
    assert not [button for button in app.button if button.key == "models_activate"]
    assert any("Only admins" in caption.value for caption in app.caption)


def test_the_report_follows_a_version_someone_else_promoted(app: AppTest, runtime) -> None:  # type: ignore[no-untyped-def]
    from core.services.models import activate

    # Given a reviewer reading the active version's report
    _wait_until_no_training_runs(runtime)
    original = _active(runtime)
    _open_models_page(app, f"Ada-{uuid.uuid4().hex[:6]}")
    assert app.selectbox(key="models_report_version").value == original
    # When another reviewer's approval promotes a new version
    with session_scope(runtime.engine) as session:
        parent = session.get(ModelVersion, original)
        newer = store_version(
            session,
            HeronModel.from_bytes(parent.artifact),
            parent_id=original,
            kind="incremental",
            metrics=dict(parent.metrics),
            trained_on=dict(parent.trained_on),
        ).id
        activate(session, newer, actor="someone else")
    try:
        app.run()
        # Then the report shows the new active version (it stayed on the old one)
        assert not app.exception
        assert app.selectbox(key="models_report_version").value == newer
        # But a version the reader picked on purpose stays picked when the active one changes again
        app.selectbox(key="models_report_version").select(original).run()
        with session_scope(runtime.engine) as session:
            activate(session, original, actor="someone else")
        app.run()
        assert app.selectbox(key="models_report_version").value == original
    finally:
        with session_scope(runtime.engine) as session:
            activate(session, original, actor="test")
