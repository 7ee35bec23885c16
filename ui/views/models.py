"""Models: every version Heron has trained, its evaluation report, and promotion or rollback."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import HeronError
from core.services.models import (
    VersionView,
    activate_version,
    list_versions,
    newer_examples,
    not_predicted,
    version_report,
)
from core.services.retraining import queue_training
from core.services.tasks import get_task
from core.services.training import HOLDOUT_DATASET, LABEL_ISSUES_DATASET
from ui import charts
from ui.state import current_user, runtime
from ui.tasks import follow_tasks, outcome, show

# Where a version's escalation threshold comes from (the table's column and the report's metric).
THRESHOLD_SOURCE = (
    "HERON_ESCALATION_THRESHOLD, raised once people's documents are learned so that "
    "HERON_ESCALATION_SHARE of documents like theirs still go to the transformer tier"
)

PENDING_KEY = "models_pending_activation"
FLASH_KEY = "models_flash"
TRAINING_KEY = "models_training_task"
REPORT_KEY = "models_report_version"


def _trained_on(version: VersionView) -> str:
    trained_on = version.trained_on
    examples = trained_on.get("examples")
    if examples is None:
        return ""
    text = f"{examples} examples"
    if trained_on.get("new_examples"):
        text += f" (+{trained_on['new_examples']} new)"
    return text


def _version_label(version: VersionView) -> str:
    macro_f1 = version.metrics.get("macro_f1")
    score = f", macro-F1 {macro_f1:.3f}" if macro_f1 is not None else ""
    return f"v{version.id} · {version.status} · {version.kind}{score}"


st.title("Models")
st.caption(
    "Every training run stores a version with its evaluation on the held-out documents (the starter "
    "holdout plus the gold share of approved corrections, never trained on). A new version goes live "
    "only if it is not worse; any version can be made active again."
)

rt = runtime()
user = current_user()
if flash := st.session_state.pop(FLASH_KEY, None):
    show(*flash)

versions = list_versions(engine=rt.engine)
if not versions:
    st.info(
        "No model has been trained yet. Heron trains the starter model when it first starts; "
        "run `heron train` if that did not happen."
    )
    st.stop()

by_id = {version.id: version for version in versions}
active = next((version for version in versions if version.status == "active"), None)
if active is None:
    st.warning("No version is active: documents cannot be classified until an admin activates one below.")

table = pd.DataFrame(
    [
        {
            "version": version.id,
            "status": version.status,
            "kind": version.kind,
            "parent": version.parent_id,
            "trained at": pd.Timestamp(version.created_at),
            "activated at": pd.Timestamp(version.activated_at) if version.activated_at else None,
            "trained on": _trained_on(version),
            "industries": len(version.labels),
            "holdout docs": version.metrics.get("n"),
            "macro-F1": version.metrics.get("macro_f1"),
            "accuracy": version.metrics.get("accuracy"),
            "ECE": version.metrics.get("ece"),
            "escalates below": version.metrics.get("escalation_threshold"),
            "promotion": (version.promotion or {}).get("reason"),
        }
        for version in versions
    ]
)
st.dataframe(
    table,
    hide_index=True,
    column_config={
        "parent": st.column_config.NumberColumn(format="v%d"),
        "version": st.column_config.NumberColumn(format="v%d"),
        "trained at": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        "activated at": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        "macro-F1": st.column_config.NumberColumn(
            format="%.3f",
            help="On the starter holdout (our own documents); the gold set of approvals is in each report.",
        ),
        "accuracy": st.column_config.NumberColumn(format="%.3f"),
        "ECE": st.column_config.NumberColumn(format="%.3f"),
        "escalates below": st.column_config.NumberColumn(
            format="%.2f",
            help=f"The fast tier answers alone from this confidence on: {THRESHOLD_SOURCE}.",
        ),
        "promotion": st.column_config.TextColumn(
            help="Why training promoted this version, or did not: the user's gold documents decide once "
            "there are enough of them; the starter holdout guards against collapse."
        ),
    },
)
if sum(version.metrics.get("macro_f1") is not None for version in versions) >= 2:
    st.altair_chart(charts.learning_curve(versions), width="stretch")
else:
    st.caption(
        "The learning curve appears once a second version has been trained (approve corrections to get one)."
    )

st.subheader("Promote or roll back")
if not user.can("admin"):
    st.caption(f"Only admins can change the active version; you are signed in as {user.role}.")
else:
    others = [version.id for version in versions if version.status != "active"]
    if not others:
        st.caption("There is only one version, and it is active. Training runs add more.")
    else:
        target = st.selectbox(
            "Version to make active",
            others,
            format_func=lambda version_id: _version_label(by_id[version_id]),
            key="models_target",
        )
        rollback = active is not None and target < active.id
        verb = "Roll back to" if rollback else "Promote"
        if st.button(f"{verb} v{target}…", key="models_activate"):
            st.session_state[PENDING_KEY] = target
        if st.session_state.get(PENDING_KEY) not in (None, target):
            st.session_state.pop(PENDING_KEY)  # another version was picked: confirm that one afresh
    pending = st.session_state.get(PENDING_KEY)
    if pending is not None and pending in by_id and by_id[pending].status != "active":
        current = f"v{active.id}" if active else "no version"
        unknown = not_predicted(engine=rt.engine, labels=by_id[pending].labels)
        cannot = (
            f" It never learned **{', '.join(unknown)}**: nothing will be filed there until a training "
            "run learns them."
            if unknown
            else ""
        )
        newer = newer_examples(engine=rt.engine, version_id=pending)
        relearn = (
            f" It never learned the {newer} approved example{'s' * (newer != 1)} stored since it was "
            "trained, and this does not undo their approval: the next training run (any approval or "
            "industry change) learns every approved example again, those included."
            if newer
            else ""
        )
        st.warning(
            f"Make **{_version_label(by_id[pending])}** the active model in place of {current}?{cannot}"
            f"{relearn} The API, the workers and this console switch to it within a few seconds; "
            "you can switch back at any time."
        )
        confirm, cancel = st.columns(2)
        if confirm.button("Yes, activate it", type="primary", key="models_confirm"):
            try:
                activated = activate_version(engine=rt.engine, version_id=pending, actor=user.name)
            except HeronError as error:
                st.error(error.message)
            else:
                st.session_state.pop(PENDING_KEY, None)
                st.session_state.pop(REPORT_KEY, None)  # the report shows the active version again
                message = f"v{pending} is now the active model (by {user.name})."
                if activated.not_predicted:
                    message += (
                        f" It cannot answer {', '.join(activated.not_predicted)} until a training run "
                        "learns them."
                    )
                st.session_state[FLASH_KEY] = ("warning" if activated.not_predicted else "success", message)
                st.rerun()
        if cancel.button("Cancel", key="models_cancel"):
            st.session_state.pop(PENDING_KEY, None)
            st.rerun()

st.subheader("Retrain")
if not user.can("admin"):
    st.caption(f"Only admins can start a full retrain; you are signed in as {user.role}.")
else:
    if st.button(
        "Retrain from all stored data",
        key="models_retrain",
        help="Approved corrections train incrementally by themselves; a full retrain refits everything. "
        "The new version goes live only if it is not worse on the held-out documents.",
    ):
        task = queue_training(engine=rt.engine, work=rt.work, actor=user.name, incremental=False)
        st.session_state[TRAINING_KEY] = task.id
    following = st.session_state.get(TRAINING_KEY)
    if following:
        if follow_tasks(rt, {"training": following}):
            # Ended: said once at the top of a page that lists the new version.
            st.session_state.pop(TRAINING_KEY)
            st.session_state.pop(REPORT_KEY, None)
            st.session_state[FLASH_KEY] = outcome("training", get_task(engine=rt.engine, task_id=following))
            st.rerun()
        st.button("Refresh", key="models_refresh")

st.subheader("Evaluation report")
ids = [version.id for version in versions]
# The report follows the active version when it changes (someone's approval promoted a new one),
# unless the user picked another version to read since.
if active and st.session_state.get("models_report_active") != active.id:
    if st.session_state.get(REPORT_KEY) == st.session_state.get("models_report_active"):
        st.session_state.pop(REPORT_KEY, None)
    st.session_state["models_report_active"] = active.id
chosen = st.selectbox(
    "Version",
    ids,
    index=ids.index(active.id) if active else 0,
    format_func=lambda version_id: _version_label(by_id[version_id]),
    key=REPORT_KEY,
)
reports = version_report(engine=rt.engine, version_id=chosen).reports
if not reports:
    st.info(
        f"v{chosen} has no stored evaluation report (it was not trained by Heron's training run). "
        "Pick another version, or run a full retrain to get one."
    )
    st.stop()
decision = reports.get(HOLDOUT_DATASET, {}).get("promotion")
if decision:
    went_live = "went live" if decision["activated"] else "was not promoted"
    (st.success if decision["activated"] else st.warning)(
        f"v{chosen} {went_live}: {decision['reason']}. Rule: {decision['rule']}."
    )
learned = reports.get(HOLDOUT_DATASET, {}).get("learned") or []
if learned:
    with st.expander(f"What v{chosen} learned that its parent had not ({len(learned)} listed)"):
        st.dataframe(pd.DataFrame(learned), hide_index=True)
# Evaluations only: the label-issues report lists doubted examples (Review → label issues), it
# scores nothing (offered here, it crashed the page).
datasets = sorted(
    (name for name in reports if name != LABEL_ISSUES_DATASET), key=lambda name: name != HOLDOUT_DATASET
)
dataset = datasets[0]
if len(datasets) > 1:
    dataset = st.selectbox("Evaluated on", datasets, key="models_report_dataset")
report = reports[dataset]
if not report.get("n"):
    st.info(f"v{chosen} was evaluated on an empty set ({dataset}); there is nothing to chart.")
    st.stop()

columns = st.columns(5)
columns[0].metric("Macro-F1", f"{report['macro_f1']:.3f}")
columns[1].metric("Accuracy", f"{report['accuracy']:.3f}")
columns[2].metric(
    "ECE", f"{report['ece']:.3f}", help="Expected calibration error: 0 is perfectly calibrated."
)
threshold = reports.get(HOLDOUT_DATASET, {}).get("escalation_threshold")
columns[3].metric(
    "Escalated",
    f"{report.get('escalation_rate', 0.0):.0%}",
    help="Sent to the transformer tier"
    + (
        f": the fast tier's confidence was below {threshold:.0%} ({THRESHOLD_SOURCE})."
        if threshold is not None
        else "."
    ),
)
columns[4].metric("To review", f"{report.get('review_rate', 0.0):.0%}")
st.caption(f"{report['n']} held-out documents ({dataset}).")

left, right = st.columns(2)
left.altair_chart(charts.per_class_bars(report["per_class"]), width="stretch")
right.altair_chart(charts.confusion_heatmap(report["confusion"]), width="stretch")
left, right = st.columns(2)
left.altair_chart(charts.reliability_diagram(report["reliability"]), width="stretch")
right.altair_chart(charts.coverage_curve(report["accuracy_at_coverage"]), width="stretch")

with st.expander("Per-industry numbers"):
    st.dataframe(
        pd.DataFrame.from_dict(report["per_class"], orient="index").rename_axis("industry"),
        column_config={
            name: st.column_config.NumberColumn(format="%.3f") for name in ("precision", "recall", "f1")
        },
    )
with st.expander("What it was trained on"):
    trained_on = by_id[chosen].trained_on
    st.write(_trained_on(by_id[chosen]) or "Not recorded.")
    if trained_on.get("by_label"):
        st.dataframe(
            pd.Series(trained_on["by_label"], name="examples").rename_axis("industry").to_frame(),
        )
