"""Approvals: reviewers decide which corrections become training data, then watch the model learn them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import HeronError, Invalid
from core.runtime import Runtime
from core.services.feedback import decide, list_feedback
from core.services.industries import active_names
from core.services.jobs import get_jobs
from core.services.tasks import list_tasks
from ui import widgets
from ui.state import User, require, runtime
from ui.tasks import follow_tasks

PAGE_SIZE = 500
INSPECT_AT_MOST = 5
TASK_KEY = "approvals_training_task"
FLASH_KEY = "approvals_flash"
GENERATION_KEY = "approvals_generation"


def decide_and_train(
    rt: Runtime, user: User, feedback_ids: list[int], *, approve: bool, retired: frozenset[int] = frozenset()
) -> None:
    """Record the reviewer's decision; approvals queue an incremental training run. Corrections to
    an industry retired since (``retired``) cannot be approved: an approval of several leaves them
    in the queue, saying so, instead of refusing them all (one blocked "Approve all 208")."""
    verb = "Approved" if approve else "Rejected"
    left = [feedback_id for feedback_id in feedback_ids if approve and feedback_id in retired]
    feedback_ids = [feedback_id for feedback_id in feedback_ids if feedback_id not in left]
    try:
        if not feedback_ids:
            raise Invalid("these corrections name a retired industry; reject them, or restore it.")
        decided = decide(
            engine=rt.engine, work=rt.work, feedback_ids=feedback_ids, approve=approve, reviewer=user.name
        )
    except HeronError as error:
        # The ticks stay: the reviewer corrects the selection (a conflict names the rows) and decides.
        st.session_state[FLASH_KEY] = ("error", f"Nothing was decided: {widgets.literal(error.message)}")
        st.rerun()
    else:
        message = f"{verb} {len(feedback_ids)} correction{'s' * (len(feedback_ids) != 1)} as {user.name}."
        learning = len(feedback_ids) - decided.gold
        if decided.gold:
            message += (
                f" {decided.gold} of them went to the gold set: judged on, never trained on (a fixed share "
                "of the people's documents checks every new version)."
            )
        if decided.training_task is not None:
            st.session_state[TASK_KEY] = decided.training_task.id
            if learning:
                which = "the others" if decided.gold else "it" if learning == 1 else "them"
                message += f" The model is learning {which} now."
        if left:
            message += (
                f" {len(left)} naming a retired industry stay{'s' * (len(left) == 1)} in the queue "
                f"(#{', #'.join(map(str, left[:10]))}{' …' if len(left) > 10 else ''}): reject them, or "
                "restore the industry."
            )
        st.session_state[FLASH_KEY] = ("warning" if left else "success", message)
    # A fresh editor key clears the ticks, which pointed at rows that have now left the queue.
    st.session_state[GENERATION_KEY] = st.session_state.get(GENERATION_KEY, 0) + 1
    st.rerun()


def options_for(column: pd.Series, key: str) -> list[str]:
    # Keep the filter's current choices among its options, even once their rows have been decided.
    return sorted(set(column.dropna()) | set(st.session_state.get(key, [])))


st.title("Approvals")
st.caption(
    "Corrections wait here until a reviewer approves them; only approved labels train the model, "
    "and a fixed share of them becomes the gold set it is judged on."
)
user = require("reviewer")
rt = runtime()

if flash := st.session_state.pop(FLASH_KEY, None):
    kind, message = flash
    {"success": st.success, "warning": st.warning}.get(kind, st.error)(message)
training_box = st.container()

pending, total = list_feedback(engine=rt.engine, status="pending", limit=PAGE_SIZE)

if not pending:
    st.info(
        "No corrections are waiting for approval. Corrections that annotators make on the Review page "
        "(or send through the API) appear here."
    )
else:
    active = set(active_names(engine=rt.engine))
    frame = pd.DataFrame(
        [
            {
                "select": False,
                "id": item.id,
                "corrected to": item.label,
                "model said": item.predicted,
                "agrees with model": item.label == item.predicted,
                "industry retired": item.label not in active,
                "disagreement": item.disagreement,
                "author": item.author or "—",
                "submitted": item.created_at,
                "job": item.job_id,
            }
            for item in pending
        ]
    )
    filters = st.columns(4)
    labels = filters[0].multiselect(
        "Corrected to", options_for(frame["corrected to"], "approvals_label"), key="approvals_label"
    )
    predicted = filters[1].multiselect(
        "Model said", options_for(frame["model said"], "approvals_predicted"), key="approvals_predicted"
    )
    authors = filters[2].multiselect(
        "Author", options_for(frame["author"], "approvals_author"), key="approvals_author"
    )
    only_disagreements = filters[3].checkbox(
        "Only disagreements",
        key="approvals_disagreements",
        help="Documents whose annotators gave different labels.",
    )
    shown = frame
    if labels:
        shown = shown[shown["corrected to"].isin(labels)]
    if predicted:
        shown = shown[shown["model said"].isin(predicted)]
    if authors:
        shown = shown[shown["author"].isin(authors)]
    if only_disagreements:
        shown = shown[shown["disagreement"]]
    shown = shown.reset_index(drop=True)

    more = f" (the oldest {PAGE_SIZE}; decide these to see the rest)" if total > len(pending) else ""
    st.caption(f"{len(shown)} of {total} pending corrections shown{more}. Tick rows to decide them.")
    selected = widgets.ticked_rows(
        shown,
        key=f"approvals_editor_{st.session_state.get(GENERATION_KEY, 0)}",
        column_config={
            "select": st.column_config.CheckboxColumn("select", help="Tick to approve or reject this one."),
            "id": st.column_config.NumberColumn("id", format="%d"),
            "submitted": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        },
    )
    everything = [int(feedback_id) for feedback_id in shown["id"]]
    retired = frozenset(int(feedback_id) for feedback_id in shown.loc[shown["industry retired"], "id"])

    chosen = st.columns(4)
    if chosen[0].button(
        f"Approve selected ({len(selected)})", type="primary", disabled=not selected, key="approve_selected"
    ):
        decide_and_train(rt, user, selected, approve=True, retired=retired)
    if chosen[1].button(f"Reject selected ({len(selected)})", disabled=not selected, key="reject_selected"):
        decide_and_train(rt, user, selected, approve=False)
    # Keyed by the generation too: every decision asks for the confirmation afresh.
    sure = chosen[2].checkbox(
        f"Decide all {len(everything)} shown",
        key=f"approvals_confirm_all_{st.session_state.get(GENERATION_KEY, 0)}",
        disabled=not everything,
    )
    if sure and everything:
        bulk = st.columns(4)
        if bulk[0].button(f"Approve all {len(everything)}", key="approve_all"):
            decide_and_train(rt, user, everything, approve=True, retired=retired)
        if bulk[1].button(f"Reject all {len(everything)}", key="reject_all"):
            decide_and_train(rt, user, everything, approve=False)

    if selected:
        with st.expander(f"Read the selected documents (first {min(len(selected), INSPECT_AT_MOST)})"):
            jobs = shown.set_index("id").loc[selected[:INSPECT_AT_MOST], "job"]
            views = {view.id: view for view in get_jobs(engine=rt.engine, job_ids=list(jobs))}
            for feedback_id, job_id in jobs.items():
                view = views[job_id]
                confidence = f"{view.confidence:.0%}" if view.confidence is not None else "—"
                st.markdown(
                    f"**#{feedback_id} · {widgets.literal(view.original_filename)}** — the model said "
                    f"*{view.classification_result}* ({confidence}, {view.tier} tier)."
                )
                if view.scores:
                    st.altair_chart(widgets.score_chart(view.scores, view.classification_result))
                widgets.document_text(rt, job_id, key=f"approvals-document-{feedback_id}", height=240)

with training_box:
    task_id = st.session_state.get(TASK_KEY)
    if task_id:
        st.subheader("Training from your approvals")
        if follow_tasks(rt, {"training": task_id}):
            st.session_state.pop(TASK_KEY)  # told once; it lives on under "Recent training runs"
        else:
            st.button("Refresh", key="approvals_refresh")

with st.expander("Recent training runs"):
    recent, _ = list_tasks(engine=rt.engine, kind="training", limit=10)
    if not recent:
        st.caption("No training run since the starter model, which set-up trained.")
    else:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "requested": task.created_at,
                        "by": task.requested_by,
                        "mode": task.params.get("mode"),
                        "status": task.status,
                        "version": task.result.get("version_id"),
                        "activated": task.result.get("activated"),
                        "outcome": task.result.get("reason")
                        or task.result.get("skipped")
                        or task.error_message
                        or task.stage,
                    }
                    for task in recent
                ]
            ),
            hide_index=True,
        )
