"""Review: the most uncertain document first; confirm the model, pick another industry, or skip.

Each item is claimed for ``HERON_REVIEW_CLAIM_SECONDS`` (renewed on every interaction), so two
annotators working the queue at once never see the same document.
"""

from __future__ import annotations

import streamlit as st

from core.errors import Conflict, HeronError, NotFound
from core.services.feedback import submit_feedback
from core.services.industries import active_names
from core.services.jobs import JobView, get_job
from core.services.review import STRATEGIES, claim, claim_next, release_claim, review_queue
from ui.state import current_user, runtime
from ui.widgets import REVIEW_REASONS, document_text, review_explanation

SHORTCUT_KEYS = "123456789"
SKIP_KEY = "S"
STRATEGY_NAMES = {
    "least_confidence": "Least confident first",
    "margin": "Smallest margin first",
    "entropy": "Highest entropy first",
}

rt = runtime()
user = current_user()
state = st.session_state
state.setdefault("review_labelled", 0)
state.setdefault("review_skipped", [])

st.title("Review")
st.caption(
    "One document at a time, the most uncertain first. Keys: **1** confirms the model's answer, "
    f"**2–9** pick another industry, **{SKIP_KEY}** skips. Corrections wait for a reviewer's approval."
)

industries = active_names(engine=rt.engine)

left, middle, right = st.columns(3)
strategy = left.selectbox("Order", STRATEGIES, format_func=STRATEGY_NAMES.get, key="review_strategy")
reason = middle.selectbox(
    "Reason",
    [None, *REVIEW_REASONS],
    format_func=lambda value: "Any reason" if value is None else value.replace("_", " "),
    key="review_reason",
)
label_filter = right.selectbox(
    "Predicted industry",
    [None, *industries],
    format_func=lambda value: "Any industry" if value is None else value,
    key="review_label",
)


def _release_held() -> None:
    held = state.get("review_claim")
    if held:
        release_claim(engine=rt.engine, job_id=held[0], annotator=held[1])
    state["review_claim"] = None


def _label(job_id: str, label: str, annotator: str) -> None:
    try:
        submit_feedback(engine=rt.engine, job_id=job_id, label=label, author=annotator)
    except HeronError as error:
        state["review_flash"] = f"Not saved: {error.message} ({error.code})"
        return
    release_claim(engine=rt.engine, job_id=job_id, annotator=annotator)
    state["review_claim"] = None
    state["review_labelled"] += 1
    state["review_flash"] = f"Saved **{label}**; it waits for a reviewer's approval."


def _skip(job_id: str, annotator: str) -> None:
    release_claim(engine=rt.engine, job_id=job_id, annotator=annotator)
    state["review_claim"] = None
    state["review_skipped"] = [*state["review_skipped"], job_id]


def _forget_skips() -> None:
    state["review_skipped"] = []


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
        st.info(f"The previous document is no longer yours to review: {error.message}")
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
if flash := state.pop("review_flash", None):
    st.toast(flash)

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
        st.page_link("pages/classify.py", label="Go to Classify", icon="📄")
    st.stop()

st.divider()
text_column, answer_column = st.columns([3, 2])
with text_column:
    st.subheader(item.original_filename)
    document_text(rt, item.id, key=f"review-{item.id}")

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
    st.caption(f"Held for you for {rt.settings.review_claim_seconds // 60} minutes from your last action.")
