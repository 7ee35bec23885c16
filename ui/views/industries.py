"""Industries: what Heron can predict, how well, and how to add, rename, retire and teach them."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from core.errors import HeronError
from core.runtime import Runtime
from core.services.examples import decide_examples, list_examples, pending_synthetic_counts
from core.services.industries import IndustryView, list_industries
from core.services.models import active_report, list_versions, not_predicted
from core.services.synthesis import MAX_DOCUMENTS
from core.services.tasks import TaskView, list_tasks
from core.services.taxonomy import add_industry, restore_industry, retire_industry, update_industry
from core.services.training import HOLDOUT_DATASET
from ui import widgets
from ui.state import User, require, runtime
from ui.tasks import follow_tasks

SOURCES = ("starter", "import", "feedback", "synthetic")
SYNTHETIC_PAGE = 200
READ_AT_MOST = 3
TASKS_KEY = "industries_tasks"
FLASH_KEY = "industries_flash"
GENERATION_KEY = "industries_generation"
RENAMED_KEY = "industries_renamed"
EVERY_INDUSTRY = "every industry"


def flash(kind: str, message: str) -> None:
    """Say ``message`` at the top of the page after the rerun that follows an action."""
    st.session_state[FLASH_KEY] = (kind, message)


def industry_table(
    industries: list[IndustryView], per_class: dict[str, dict[str, float]], awaiting: dict[str, int]
) -> pd.DataFrame:
    rows = []
    for industry in industries:
        scores = per_class.get(industry.name, {})
        rows.append(
            {
                "industry": industry.name,
                "status": industry.status,
                "catch-all": industry.catch_all,
                **{source: industry.examples.get(source, 0) for source in SOURCES},
                "awaiting review": awaiting.get(industry.name, 0),
                "F1": scores.get("f1"),
                "holdout docs": scores.get("support"),
                "description": industry.description,
            }
        )
    return pd.DataFrame(rows)


ADD_FIELDS = (
    "industries_new_name",
    "industries_new_description",
    "industries_new_files",
    "industries_new_synthetic",
)


def add_industry_form(rt: Runtime, user: User) -> None:
    # Not cleared on submit: a refusal (a name taken, files that cannot be read) keeps what was typed
    # and attached, to correct; a success empties the form (ADD_FIELDS) before the page is drawn again.
    with st.form("industries_add"):
        name = st.text_input("Name", placeholder="e.g. real estate", key="industries_new_name")
        description = st.text_area(
            "Description",
            placeholder="Property sales, lettings, valuations, surveys and conveyancing.",
            help="A few sentences about what its documents talk about: "
            "Heron predicts the industry from them until it has examples.",
            key="industries_new_description",
        )
        files = st.file_uploader(
            "Example documents (optional)", accept_multiple_files=True, key="industries_new_files"
        )
        synthetic = st.number_input(
            "Synthetic documents to generate",
            min_value=0,
            max_value=MAX_DOCUMENTS,
            value=0,
            step=10,
            key="industries_new_synthetic",
            disabled=not rt.settings.llm_configured,  # asked for, it could only fail (llm_not_configured)
        )
        if not rt.settings.llm_configured:
            st.caption(
                "No LLM is configured (set OPENAI_API_KEY, or HERON_LLM_BASE_URL for a local server), "
                "so synthetic documents cannot be generated; the industry still works from its description."
            )
        submitted = st.form_submit_button("Add industry", type="primary", key="industries_add_submit")
    if not submitted:
        return
    if not name.strip():
        st.error("Give the industry a name.")
        return
    try:
        with st.spinner("Creating the industry and reading its example files…"):
            added = add_industry(
                engine=rt.engine,
                work=rt.work,
                settings=rt.settings,
                name=name,
                description=description,
                example_files=[(upload.name, upload.getvalue()) for upload in files or []],
                synthetic=int(synthetic),
                limits=rt.extraction_limits,
                extractor=rt.extractor if files else None,
                actor=user.name,
            )
    except HeronError as error:
        st.error(widgets.literal(error.message))
        return
    tasks = {
        kind: task.id
        for kind, task in (("synthesis", added.synthesis_task), ("training", added.training_task))
        if task is not None
    }
    if tasks:
        st.session_state[TASKS_KEY] = {
            "title": f"Teaching {added.name}",
            "tasks": tasks,
            "industry": added.name,
        }
    skipped = "".join(
        f" {widgets.literal(error['filename'])} was not used: {widgets.literal(error['message'])}."
        for error in added.example_errors
    )
    flash(
        "warning" if skipped else "success",
        f"Added {added.name!r} with {added.examples_added} example file(s); it is predicted once the "
        "training below makes a version that knows it live (from its description, then its "
        f"examples).{skipped}",
    )
    for key in ADD_FIELDS:
        st.session_state.pop(key, None)
    st.rerun()


def edit_industry(rt: Runtime, user: User, by_name: dict[str, IndustryView]) -> None:
    # A widget's value can only be set before it is drawn: a rename leaves the new name for here.
    if renamed := st.session_state.pop(RENAMED_KEY, None):
        st.session_state["industries_edit_target"] = renamed
    target = st.selectbox("Industry", list(by_name), key="industries_edit_target")
    with st.form("industries_edit"):
        new_name = st.text_input("Name", value=target, key=f"industries_edit_name_{target}")
        new_description = st.text_area(
            "Description", value=by_name[target].description, key=f"industries_edit_description_{target}"
        )
        catch_all = st.checkbox(
            "The catch-all",
            value=by_name[target].catch_all,
            key=f"industries_edit_catch_all_{target}",
            help="The industry that holds what no other claims (one at most): new industries are carved "
            "out of it. To retire the catch-all, make another industry the catch-all first.",
        )
        saved = st.form_submit_button("Save", key="industries_edit_submit")
    if not saved:
        return
    current = by_name[target]
    renamed = new_name.strip() != target
    described = new_description.strip() != current.description
    role = catch_all if catch_all != current.catch_all else None
    if not (renamed or described or role is not None):
        st.info("Nothing changed: edit the name, the description or the catch-all box, then save.")
        return
    try:
        changed = update_industry(
            engine=rt.engine,
            work=rt.work,
            name=target,
            new_name=new_name if renamed else None,
            description=new_description if described else None,
            catch_all=role,
            actor=user.name,
        )
    except HeronError as error:
        st.error(widgets.literal(error.message))
        return
    updated = changed.industry
    follow_training(changed.training_task, f"Learning the change to {updated.name}")
    st.session_state[RENAMED_KEY] = updated.name
    said = []
    if renamed:
        said.append(
            f"renamed {target!r} to {updated.name!r}; its examples and corrections follow the new name"
        )
    if described:
        said.append(f"saved the description of {updated.name!r}")
    if role is not None:
        said.append(f"{updated.name!r} is {'now' if role else 'no longer'} the catch-all")
    flash("success", "; ".join(said).capitalize() + ". The model learns it in the training run this queued.")
    st.rerun()


def retire(rt: Runtime, user: User, active_names: list[str]) -> None:
    _change_status(
        rt,
        user,
        active_names,
        verb="retire",
        label="Industry to retire",
        placeholder="Choose an industry…",
        change=retire_industry,
        done="Retired {name!r}.",
        warning=(
            "Heron will stop predicting {name!r}. Nothing is deleted: its examples, corrections and past "
            "predictions stay, and restoring it (below) brings it back."
        ),
    )


def restore(rt: Runtime, user: User, retired_names: list[str]) -> None:
    _change_status(
        rt,
        user,
        retired_names,
        verb="restore",
        label="Retired industry to restore",
        placeholder="Choose a retired industry…",
        change=restore_industry,
        done="Restored {name!r}: predicted again once the training it queued is live.",
    )


def _change_status(
    rt: Runtime,
    user: User,
    names: list[str],
    *,
    verb: str,
    label: str,
    placeholder: str,
    change: Callable[..., object],
    done: str,
    warning: str | None = None,
) -> None:
    """Choose an industry and retire or restore it (``change``); its widgets' keys name ``verb``."""
    target, changed = f"industries_{verb}_target", f"industries_{verb}_done"
    if st.session_state.pop(changed, False):
        st.session_state[target] = None
    name = st.selectbox(label, names, index=None, placeholder=placeholder, key=target)
    if not name:
        return
    if warning:
        st.warning(warning.format(name=name))
    if st.button(f"{verb.capitalize()} {name}", key=f"industries_{verb}"):
        try:
            result = change(engine=rt.engine, work=rt.work, name=name, actor=user.name)
        except HeronError as error:
            st.error(widgets.literal(error.message))
            return
        follow_training(result.training_task, f"Learning that {name} was {verb}d")
        st.session_state[changed] = True
        flash("success", done.format(name=name))
        st.rerun()


def follow_training(task: TaskView | None, title: str) -> None:
    """Follow a change's training run to its end in the box at the top of the page (whether its
    version went live, and why not), as for an added industry."""
    if task is not None:
        st.session_state[TASKS_KEY] = {"title": title, "tasks": {"training": task.id}}


def review_synthetic(rt: Runtime, user: User, awaiting: dict[str, int]) -> None:
    """Synthetic documents wait here until a reviewer lets them train (or rejects them)."""
    if not awaiting:
        st.info(
            "No synthetic documents are waiting for review. Ask for some when you add an industry "
            "(an LLM must be configured); they wait here before they train."
        )
        return
    choices = [EVERY_INDUSTRY, *sorted(awaiting)]
    industry = st.selectbox(
        "Show",
        choices,
        format_func=lambda name: name if name == EVERY_INDUSTRY else f"{name} ({awaiting[name]} waiting)",
        key="industries_synthetic_industry",
    )
    waiting, total = list_examples(
        engine=rt.engine,
        source="synthetic",
        status="pending",
        label=None if industry == EVERY_INDUSTRY else industry,
        limit=SYNTHETIC_PAGE,
    )
    frame = pd.DataFrame(
        [
            {
                "select": False,
                "id": example.id,
                "industry": example.label,
                "genre": example.meta.get("genre"),
                "model says": (
                    f"looks like {example.meta.get('predicted')} ({example.meta.get('confidence', 0):.0%})"
                    if example.meta.get("flag")
                    else example.meta.get("predicted")
                ),
                "text": example.preview,
            }
            for example in waiting
        ],
        columns=["select", "id", "industry", "genre", "model says", "text"],
    )
    st.caption(
        f"{len(waiting)} of {total} shown, newest first. Documents the active model places confidently in "
        "another industry say so under *model says*. Tick the ones to decide."
    )
    chosen = widgets.ticked_rows(
        frame,
        key=f"industries_synthetic_{st.session_state.get(GENERATION_KEY, 0)}",
        column_config={
            "select": st.column_config.CheckboxColumn("select", help="Tick to approve or reject this one."),
            "text": st.column_config.TextColumn("text", width="large"),
        },
    )
    everything = [int(example_id) for example_id in frame["id"]]
    buttons = st.columns(4)
    if buttons[0].button(f"Approve selected ({len(chosen)})", disabled=not chosen, key="synthetic_approve"):
        decide_synthetic(rt, user, chosen, approve=True)
    if buttons[1].button(f"Reject selected ({len(chosen)})", disabled=not chosen, key="synthetic_reject"):
        decide_synthetic(rt, user, chosen, approve=False)
    # Keyed by the generation too: every decision asks for the confirmation afresh (a confirmation
    # left ticked armed "Approve all" for the next industry's documents, never looked at).
    confirm = f"synthetic_confirm_all_{st.session_state.get(GENERATION_KEY, 0)}"
    if buttons[2].checkbox(f"Decide all {len(everything)} shown", key=confirm):
        bulk = st.columns(4)
        if bulk[0].button(f"Approve all {len(everything)}", key="synthetic_approve_all"):
            decide_synthetic(rt, user, everything, approve=True)
        if bulk[1].button(f"Reject all {len(everything)}", key="synthetic_reject_all"):
            decide_synthetic(rt, user, everything, approve=False)
    if chosen:
        with st.expander(f"Read the selected documents (first {min(len(chosen), READ_AT_MOST)})"):
            texts = {example.id: example for example in waiting}
            for example_id in chosen[:READ_AT_MOST]:
                example = texts[example_id]
                genre = widgets.literal(str(example.meta.get("genre") or "no genre"))
                st.markdown(f"**#{example.id} · {example.label}** · {genre}")
                st.text(example.text)


def decide_synthetic(rt: Runtime, user: User, ids: list[int], *, approve: bool) -> None:
    """Record the reviewer's decision (all or none); approvals queue an incremental training run."""
    verb = "Approved" if approve else "Rejected"
    try:
        decided = decide_examples(engine=rt.engine, work=rt.work, ids=ids, approve=approve, actor=user.name)
    except HeronError as error:
        flash("error", f"Nothing was decided: {widgets.literal(error.message)}")
    else:
        message = f"{verb} {len(ids)} synthetic document{'s' * (len(ids) != 1)} as {user.name}."
        if decided.training_task is not None:
            st.session_state[TASKS_KEY] = {
                "title": "Learning the approved synthetic documents",
                "tasks": {"training": decided.training_task.id},
            }
            message += " The model is learning them now."
        flash("success", message)
    # A fresh editor key clears the ticks, which pointed at rows that have now left the queue.
    st.session_state[GENERATION_KEY] = st.session_state.get(GENERATION_KEY, 0) + 1
    st.rerun()


def recent_synthesis(rt: Runtime) -> None:
    runs, _ = list_tasks(engine=rt.engine, kind="synthesis", limit=10)
    if not runs:
        st.caption("No synthetic documents have been requested yet.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "requested": run.created_at,
                    "by": run.requested_by,
                    "industry": run.params.get("industry"),
                    "documents": run.params.get("count"),
                    "status": run.status,
                    "stored": run.result.get("stored"),
                    "waiting": run.result.get("pending"),
                    "note": run.error_message or run.result.get("note") or run.stage,
                }
                for run in runs
            ]
        ),
        hide_index=True,
    )


st.title("Industries")
st.caption(
    "The industries Heron can predict. A new one is predicted from its description once the training "
    "its creation starts goes live (seconds), then learns from example files, synthetic documents and "
    "approved corrections."
)
user = require("reviewer")
rt = runtime()

if message := st.session_state.pop(FLASH_KEY, None):
    kind, text = message
    {"success": st.success, "warning": st.warning}.get(kind, st.error)(text)

# Filled in last, so the rest of the page is usable while the tasks' progress is followed here.
progress_box = st.container()

industries = list_industries(engine=rt.engine)
active = active_report(engine=rt.engine)
active_id = active.id if active else None
reports = active.reports if active else {}
awaiting = pending_synthetic_counts(engine=rt.engine)
report = reports.get(HOLDOUT_DATASET) or next(iter(reports.values()), {})
by_name = {industry.name: industry for industry in industries}
active_names = [industry.name for industry in industries if industry.status == "active"]

if not industries:
    st.info("There are no industries yet: add the first one below (or run `heron import DIR`).")
else:
    st.dataframe(
        industry_table(industries, report.get("per_class", {}), awaiting),
        hide_index=True,
        column_config={
            "F1": st.column_config.ProgressColumn(
                "F1", min_value=0.0, max_value=1.0, format="%.2f", help="On the active model's holdout."
            ),
            "synthetic": st.column_config.NumberColumn(
                "synthetic", help="Approved synthetic documents (those waiting are under 'awaiting review')."
            ),
        },
    )
    version = f"v{active_id}" if active_id else "no active model"
    learned = next((v.labels for v in list_versions(engine=rt.engine) if v.status == "active"), None)
    if learned is not None and (unanswered := not_predicted(engine=rt.engine, labels=learned)):
        st.warning(
            f"The active model ({version}) does not predict {', '.join(repr(n) for n in unanswered)} "
            "yet: it never learned them. A training run that learns them, once promoted, does (see the "
            "Models page for why a run was not promoted)."
        )
    st.caption(
        f"Training examples by source. F1 is the active model's ({version}) on held-out documents; it stays "
        "empty for an industry without held-out documents yet (they come from approved corrections)."
    )

st.subheader("Add an industry")
add_industry_form(rt, user)

if industries:
    st.subheader("Rename or redescribe")
    edit_industry(rt, user, by_name)
    st.subheader("Retire")
    retire(rt, user, active_names)
    if retired_names := [industry.name for industry in industries if industry.status == "retired"]:
        restore(rt, user, retired_names)

st.subheader("Synthetic documents awaiting review")
review_synthetic(rt, user, awaiting)

with st.expander("Recent synthesis runs"):
    recent_synthesis(rt)

with progress_box:
    if following := st.session_state.get(TASKS_KEY):
        st.subheader(following["title"])
        if not follow_tasks(rt, following["tasks"]):
            st.button("Refresh", key="industries_refresh")
        else:
            if following.get("industry"):
                served = next((v.labels for v in list_versions(engine=rt.engine) if v.status == "active"), [])
                if following["industry"] not in served:
                    st.warning(
                        f"{following['industry']!r} is not predicted yet: no active version knows it. Fix "
                        "what the training says above, or promote its version on the Models page."
                    )
            if st.button("Dismiss", key="industries_dismiss"):
                st.session_state.pop(TASKS_KEY, None)
                st.rerun()
