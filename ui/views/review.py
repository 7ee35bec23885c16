"""Review: the most uncertain document first; confirm the model, pick another industry, or skip.

Each item is claimed for ``HERON_REVIEW_CLAIM_SECONDS`` (renewed on every interaction), so two
annotators working the queue at once never see the same document. Beside it, "more like this"
lists the unlabelled documents closest to it, to give it and a selection of them one label in one
action. The "Label issues" order lists approved training examples the model confidently places
elsewhere.
"""

from __future__ import annotations

import contextlib

import pandas as pd
import streamlit as st

from core.errors import Conflict, HeronError, NotFound
from core.services.examples import keep_label, relabel_example
from core.services.feedback import submit_feedback, submit_feedback_many
from core.services.industries import active_names
from core.services.jobs import JobView, get_job
from core.services.review import (
    LABEL_ISSUES,
    REVIEW_REASONS,
    STRATEGIES,
    claim,
    claim_next,
    holders,
    label_issue_queue,
    release_claim,
    review_queue,
)
from core.services.similar import SimilarDocument, similar_documents
from ui.state import current_user, runtime
from ui.widgets import document_text, evidence_table, literal, review_explanation

SHORTCUT_KEYS = "123456789"
SKIP_KEY = "S"
LABEL_SELECTION_KEY = "L"
SIMILAR_PANEL_KEY = "M"
RELABEL_KEY = "A"  # accept the suggestion (R is Streamlit's own: rerun)
KEEP_KEY = "K"
SIMILAR_SHOWN = 8
LABEL_ISSUES_SHOWN = 10
STRATEGY_NAMES = {
    "least_confidence": "Least confident first",
    "margin": "Smallest margin first",
    "entropy": "Highest entropy first",
    LABEL_ISSUES: "Label issues (approved examples the model doubts)",
}

rt = runtime()
user = current_user()
state = st.session_state
state.setdefault("review_labelled", 0)
state.setdefault("review_skipped", [])
state.setdefault("review_similar_open", True)
state.setdefault("review_similar_generation", 0)
state.setdefault("review_kept_issues", [])
state.setdefault("review_relabelled", 0)

st.title("Review")
industries = active_names(engine=rt.engine)

left, middle, right = st.columns(3)
strategy = left.selectbox(
    "Order", [*STRATEGIES, LABEL_ISSUES], format_func=STRATEGY_NAMES.get, key="review_strategy"
)
issues_mode = strategy == LABEL_ISSUES
reason = middle.selectbox(
    "Reason",
    [None, *REVIEW_REASONS],
    format_func=lambda value: "Any reason" if value is None else value.replace("_", " "),
    key="review_reason",
    disabled=issues_mode,
)
label_filter = right.selectbox(
    "Predicted industry",
    [None, *industries],
    format_func=lambda value: "Any industry" if value is None else value,
    key="review_label",
    disabled=issues_mode,
)
if issues_mode:
    st.caption(
        "Approved training examples that the model, cross-validated in the latest full training run, "
        f"confidently files under another industry. Keys: **{RELABEL_KEY}** relabels the first as "
        f"suggested, **{KEEP_KEY}** keeps its label. Relabelling retrains the model like an approval."
    )
else:
    st.caption(
        "One document at a time, the most uncertain first. Keys: **1** confirms the model's answer, "
        f"**2–9** pick another industry, **{SKIP_KEY}** skips; **{LABEL_SELECTION_KEY}** gives this "
        f"document and the ticked ones under *More like this* one label, **{SIMILAR_PANEL_KEY}** shows "
        "or hides that panel. "
        "Corrections wait for a reviewer's approval."
    )
if flash := state.pop("review_flash", None):
    st.toast(flash)


def _give_back(job_id: str, annotator: str) -> None:
    """Give this annotator's claim back; one that expired and someone else took is theirs now."""
    with contextlib.suppress(HeronError):
        release_claim(engine=rt.engine, job_id=job_id, annotator=annotator)


def _release_held() -> None:
    held = state.get("review_claim")
    if held:
        _give_back(held[0], held[1])
    state["review_claim"] = None


def _still_held(job_id: str, annotator: str) -> bool:
    """Whether this person still holds the document (their claim renewed); if its claim ran out and
    someone else took it, it is theirs to label now, and this person is told so."""
    try:
        claim(engine=rt.engine, job_id=job_id, annotator=annotator, seconds=rt.settings.review_claim_seconds)
    except (Conflict, NotFound) as error:
        state["review_flash"] = f"Not saved: {literal(error.message)}"
        state["review_claim"] = None
        return False
    return True


def _label(job_id: str, label: str, annotator: str) -> None:
    if not _still_held(job_id, annotator):
        return
    try:
        submit_feedback(engine=rt.engine, job_id=job_id, label=label, author=annotator)
    except HeronError as error:
        state["review_flash"] = f"Not saved: {literal(error.message)} ({error.code})"
        return
    _give_back(job_id, annotator)
    state["review_claim"] = None
    state["review_labelled"] += 1
    state["review_flash"] = f"Saved **{label}**; it waits for a reviewer's approval."


def _skip(job_id: str, annotator: str) -> None:
    _give_back(job_id, annotator)
    state["review_claim"] = None
    state["review_skipped"] = [*state["review_skipped"], job_id]


def _forget_skips() -> None:
    state["review_skipped"] = []


def _toggle_similar() -> None:
    state["review_similar_open"] = not state["review_similar_open"]


def _similar(job_id: str) -> list[SimilarDocument] | str:
    """The documents most like ``job_id``'s, or why there are none; kept until this person labels
    some (each rerun would otherwise compare the document with every other one again)."""
    cached = state.get("review_similar_cache")
    if cached is None or cached[0] != job_id:
        try:
            found: list[SimilarDocument] | str = similar_documents(
                engine=rt.engine, job_id=job_id, limit=SIMILAR_SHOWN, annotator=user.name
            )
        except HeronError as error:
            found = error.message
        cached = state["review_similar_cache"] = (job_id, found)
    return cached[1]


def _label_selection(job_ids: list[str], label: str, annotator: str, held: str | None) -> None:
    """One label for the ticked documents, and for the one being reviewed when ``held`` is its id
    (then it is done, and the next one comes)."""
    if held and not _still_held(held, annotator):
        return
    taken = holders(engine=rt.engine, job_ids=job_ids, annotator=annotator)
    job_ids = [job_id for job_id in job_ids if job_id not in taken]  # someone else took them since
    if not held and not job_ids:
        state["review_flash"] = "Not saved: the ticked documents are being reviewed by someone else now."
        state.pop("review_similar_cache", None)
        return
    try:
        created = submit_feedback_many(
            engine=rt.engine, job_ids=[held, *job_ids] if held else job_ids, label=label, author=annotator
        )
    except HeronError as error:
        state["review_flash"] = f"Not saved: {literal(error.message)} ({error.code})"
        return
    state.pop("review_similar_cache", None)  # the labelled ones are no longer "unlabelled"
    state["review_similar_generation"] += 1
    state["review_labelled"] += len(created)
    if held:
        _give_back(held, annotator)
        state["review_claim"] = None
    similar = len(job_ids)
    what = (["this document"] if held else []) + (
        [f"{similar} similar document{'s' * (similar != 1)}"] if similar else []
    )
    left = f" ({len(taken)} ticked left out: someone else is reviewing them)" if taken else ""
    state["review_flash"] = (
        f"Saved **{label}** for {' and '.join(what)}; they wait for a reviewer's approval{left}."
    )


def _relabel(example_id: int, label: str) -> None:
    try:
        relabel_example(engine=rt.engine, work=rt.work, example_id=example_id, label=label, actor=user.name)
    except HeronError as error:
        state["review_flash"] = f"Not relabelled: {literal(error.message)} ({error.code})"
        return
    state["review_relabelled"] += 1
    state["review_flash"] = f"Relabelled as **{label}**; the model is learning it."


def _keep(example_id: int) -> None:
    try:
        keep_label(engine=rt.engine, example_id=example_id, actor=user.name)
    except HeronError as error:
        state["review_flash"] = f"Not kept: {literal(error.message)} ({error.code})"
        return
    state["review_kept_issues"] = [*state["review_kept_issues"], example_id]


def _label_issues() -> None:
    """The label-issue queue: each approved example the model doubts, relabel it or keep it."""
    reviewer = user.can("reviewer")
    kept = set(state["review_kept_issues"])
    issues, total = label_issue_queue(engine=rt.engine, limit=LABEL_ISSUES_SHOWN + len(kept))
    left_here = total - sum(issue.example_id in kept for issue in issues)
    issues = [issue for issue in issues if issue.example_id not in kept][:LABEL_ISSUES_SHOWN]
    counters = st.columns(3)
    counters[0].metric("Label issues left", left_here)
    counters[1].metric("Relabelled this session", state["review_relabelled"])
    counters[2].metric("Kept", len(kept))
    if not reviewer:
        st.info(
            f"Relabelling approved training data needs the reviewer role; you are signed in as {user.role}."
        )
    if not issues:
        if kept:
            st.info(f"No other label issues; you kept {len(kept)} label(s) as they are this session.")
        else:
            st.info(
                "No label issues. Only a full training run (Models → retrain from everything) looks for "
                "them, and it found none, or they have all been settled."
            )
        return
    version = issues[0].model_version
    st.caption(
        f"Showing {len(issues)} of {left_here}, least self-confident first"
        + (f", as model v{version}'s training run found them." if version else ".")
    )
    for position, issue in enumerate(issues):
        first = position == 0
        with st.container(border=True):
            st.markdown(
                f"Labelled **{issue.label}** (the model gives it {issue.self_confidence:.0%}) · "
                f"the model suggests **{issue.suggested}** ({issue.suggested_confidence:.0%})"
            )
            st.text(issue.preview, width="stretch")
            st.caption(f"Example {issue.example_id} · from {issue.source}")
            relabel_column, keep_column = st.columns(2)
            relabel_column.button(
                f"Relabel as {issue.suggested}",
                key=f"review-relabel-{issue.example_id}",
                type="primary" if first else "secondary",
                shortcut=RELABEL_KEY if first else None,
                on_click=_relabel,
                args=(issue.example_id, issue.suggested),
                disabled=not reviewer,
                width="stretch",
            )
            keep_column.button(
                f"Keep {issue.label}",
                key=f"review-keep-{issue.example_id}",
                shortcut=KEEP_KEY if first else None,
                on_click=_keep,
                args=(issue.example_id,),
                disabled=not reviewer,
                width="stretch",
                help="The label is right: it leaves the label-issue queue (for everyone) until relabelled.",
            )


def _more_like_this(item: JobView) -> None:
    """The unlabelled documents closest to ``item``, to give a ticked selection one label."""
    st.subheader("More like this")
    predicted = item.classification_result
    label = st.selectbox(
        "Label to apply",
        industries,
        index=industries.index(predicted) if predicted in industries else 0,
        key=f"review-similar-label-{item.id}",
    )
    found = _similar(item.id)
    if isinstance(found, str):
        st.info(found)
        return
    if not found:
        st.info("No other unlabelled documents to compare it with yet.")
        return
    # Ticked at first: those the model also files under the label being applied.
    frame = pd.DataFrame(
        [
            {
                "select": doc.job.classification_result == label,
                "file": doc.job.original_filename,
                "model says": doc.job.classification_result,
                "confidence": round(100 * (doc.job.confidence or 0.0)),
                "similarity": doc.similarity,
                "job": doc.job_id,
            }
            for doc in found
        ]
    )
    st.caption(
        f"The {len(found)} unlabelled documents most like this one. Ticked: those the model also "
        f"files under **{label}**; change the ticks, then label them all at once."
    )
    # The key names the label (another label ticks afresh) and how many selections this person has
    # labelled (that replaces the documents shown, and the old ticks pointed at their rows).
    edited = st.data_editor(
        frame,
        hide_index=True,
        key=f"review-similar-{item.id}-{label}-{state['review_similar_generation']}",
        disabled=[column for column in frame.columns if column != "select"],
        column_config={
            "select": st.column_config.CheckboxColumn("", help="Tick to give it the label.", width=40),
            "confidence": st.column_config.NumberColumn(format="%d%%", width=80),
            "similarity": st.column_config.NumberColumn(format="%.2f", width=75),
            "job": None,
        },
    )
    selected = [str(job_id) for job_id in edited.loc[edited["select"], "job"]]
    # On by default: the document being reviewed and the ticked ones get the label in one action.
    include = st.toggle(
        "Label this document too",
        value=True,
        key="review-similar-include",
        help="Off: only the ticked documents are labelled, and this one stays in front of you.",
    )
    st.button(
        f"Label this and {len(selected)} similar as {label} ({len(selected) + 1})"
        if include
        else f"Label selection as {label} ({len(selected)})",
        key="review-label-selection",
        type="primary",
        shortcut=LABEL_SELECTION_KEY,
        disabled=not (selected or include),
        on_click=_label_selection,
        args=(selected, label, user.name, item.id if include else None),
        width="stretch",
    )


def _held_item() -> JobView | None:
    """The item this person is looking at, its claim renewed; None if it left the queue meanwhile."""
    held = state.get("review_claim")
    if not held or held[1] != user.name:
        _release_held()
        return None
    try:
        claim(engine=rt.engine, job_id=held[0], annotator=user.name, seconds=rt.settings.review_claim_seconds)
        view = get_job(engine=rt.engine, job_id=held[0])
    except (Conflict, NotFound) as error:
        st.info(f"The previous document is no longer yours to review: {literal(error.message)}")
        state["review_claim"] = None
        return None
    if view.feedback_status not in (None, "rejected"):
        _release_held()
        return None
    return view


filters = (strategy, reason, label_filter)
if state.get("review_filters") != filters:
    # Another queue: give back what this person holds and start it afresh.
    _release_held()
    state["review_skipped"] = []
    state["review_filters"] = filters

if issues_mode:
    _label_issues()
    st.stop()

item = _held_item()
if item is None:
    item = claim_next(
        engine=rt.engine,
        annotator=user.name,
        seconds=rt.settings.review_claim_seconds,
        strategy=strategy,
        reason=reason,
        label=label_filter,
        exclude=state["review_skipped"],
    )
    state["review_claim"] = (item.id, user.name) if item else None

_, left_in_queue = review_queue(
    engine=rt.engine,
    strategy=strategy,
    reason=reason,
    label=label_filter,
    limit=0,
    annotator=user.name,
    exclude=state["review_skipped"],
)
counters = st.columns(3)
counters[0].metric("Left in the queue", left_in_queue)
counters[1].metric("Labelled this session", state["review_labelled"])
counters[2].metric("Skipped", len(state["review_skipped"]))

if item is None:
    if state["review_skipped"]:
        st.info(
            f"Nothing else is waiting here; you skipped {len(state['review_skipped'])} document(s). "
            "Go through them again, or come back later."
        )
        st.button("Show the skipped documents again", on_click=_forget_skips)
    elif reason or label_filter:
        st.info("No documents match these filters — set Reason and Predicted industry back to *Any*.")
    else:
        st.info("No documents need review — upload some on Classify.")
        st.page_link("views/classify.py", label="Go to Classify", icon="📄")
    st.stop()

st.divider()
similar_open = state["review_similar_open"]
if similar_open:
    text_column, answer_column, similar_column = st.columns([4, 3, 5])
    with similar_column:
        _more_like_this(item)
else:
    text_column, answer_column = st.columns([3, 2])
with text_column:
    st.subheader(literal(item.original_filename))
    document_text(rt, item.id, key=f"review-{item.id}", evidence=item.evidence)
    evidence_table(item.evidence)

with answer_column:
    predicted = item.classification_result
    for sentence in review_explanation(item, rt):
        st.markdown(f"- {sentence}")
    # The predicted industry first (key 1 confirms it), then the others by score.
    ranked = sorted(
        (name for name in industries if name != predicted),
        key=lambda name: item.scores.get(name, 0.0),
        reverse=True,
    )
    choices = ([predicted] if predicted in industries else []) + ranked
    if predicted and predicted not in industries:
        # Key 1 confirms the model's answer everywhere else: here it picks the likeliest industry.
        st.warning(
            f"The model answered **{literal(predicted)}**, an industry retired since: there is nothing "
            "to confirm. Pick the right one; **1** is the likeliest active industry."
        )
    for position, name in enumerate(choices):
        score = item.scores.get(name, 0.0)
        confirm = name == predicted
        key = SHORTCUT_KEYS[position] if position < len(SHORTCUT_KEYS) else None
        st.button(
            f"{'Confirm ' if confirm else ''}{name} · {score:.0%}",
            key=f"review-pick-{item.id}-{name}",
            type="primary" if confirm else "secondary",
            shortcut=key,
            on_click=_label,
            args=(item.id, name, user.name),
            width="stretch",
        )
    st.button(
        "Skip",
        key=f"review-skip-{item.id}",
        shortcut=SKIP_KEY,
        on_click=_skip,
        args=(item.id, user.name),
        width="stretch",
        help="Give it back to the queue for someone else.",
    )
    st.button(
        "Hide more like this" if similar_open else "Show more like this",
        key="review-toggle-similar",
        shortcut=SIMILAR_PANEL_KEY,
        on_click=_toggle_similar,
        width="stretch",
    )
    st.caption(f"Held for you for {rt.settings.review_claim_seconds // 60} minutes from your last action.")
