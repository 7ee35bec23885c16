"""Pieces the Classify and Review pages share: a job's scores, why it was routed, its text."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from core.errors import HeronError
from core.runtime import Runtime
from core.services.jobs import DocumentPage, JobView, job_document, job_document_pages
from core.services.models import served_escalation_threshold

TEXT_PREVIEW_CHARS = 20_000
# What Streamlit's Markdown reads as markup inside a line: emphasis, code, links and images, raw
# HTML, LaTeX ($…$), strikethrough and tables; a "#" opening a line makes a heading. (With "["
# escaped, neither a link nor Streamlit's :color[…] directive can form.)
_AUTOLINK = re.compile(r"://|\bwww\.", re.IGNORECASE)
_MARKUP = re.compile(r"([\\`*_\[\]<>$~|]|^#)", re.MULTILINE)
PAGE_CACHE_DOCUMENTS = 8


def literal(text: object) -> str:
    """``text`` as it is, inside Markdown: a file name, a user's name or an error message quoting
    them is shown, never read as markup (a file named ``[Session expired, sign in](https://…)``
    became a link on the Review page, under the console's own title)."""
    escaped = _MARKUP.sub(r"\\\1", str(text))
    # GFM turns bare addresses into links too ("https://…", "www.…"): break the pattern.
    return _AUTOLINK.sub(lambda match: match.group(0).replace(".", "\\.").replace("/", "\\/"), escaped)


def score_chart(scores: Mapping[str, float], predicted: str | None = None) -> alt.Chart:
    """Horizontal bars of every industry's probability, highest first, the predicted one highlighted."""
    frame = pd.DataFrame(
        [{"industry": label, "probability": float(p)} for label, p in scores.items()],
        columns=["industry", "probability"],
    ).sort_values("probability", ascending=False)
    frame["predicted"] = frame["industry"] == predicted
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0.0, 1.0]), axis=alt.Axis(format="%")),
            y=alt.Y("industry:N", sort=list(frame["industry"]), title=None),
            color=alt.condition(alt.datum.predicted, alt.value("#e4572e"), alt.value("#9bb1c8")),
            tooltip=["industry", alt.Tooltip("probability:Q", format=".1%")],
        )
        .properties(height=max(120, 26 * len(frame)))
    )


def routing_explanation(view: JobView, rt: Runtime) -> list[str]:
    """Sentences saying which tier answered, and why a person is (or is not) asked to review."""
    if view.classification_result is None:
        return []
    threshold = served_escalation_threshold(
        engine=rt.engine, version_id=view.model_version, default=rt.settings.escalation_threshold
    )
    if view.escalated:
        tier = (
            "Escalated to the transformer tier: the fast tier was not sure enough (confidence below "
            f"{threshold:.0%}), or an industry it could name is still new and is checked by the transformer."
        )
    else:
        tier = f"The fast tier answered alone (its confidence was at least {threshold:.0%})."
    review = review_explanation(view, rt) or ["Confident enough: nobody needs to review it."]
    return [tier, *review]


def percents(value: float, limit: float) -> tuple[str, str]:
    """``value`` and ``limit`` as percentages with as many decimals as it takes to tell them apart
    (0.49588 against 0.5 is "49.6%" and "50.0%", not "50%" below "50%")."""
    for decimals in range(3):
        shown = f"{value:.{decimals}%}", f"{limit:.{decimals}%}"
        if shown[0] != shown[1]:
            return shown
    return shown


def review_explanation(view: JobView, rt: Runtime) -> list[str]:
    """Why the prediction is in the review queue, one sentence per reason (empty if it is not)."""
    settings = rt.settings
    ranked = sorted(view.scores.items(), key=lambda item: item[1], reverse=True)
    sentences = []
    for reason in view.review_reasons if view.needs_review else []:
        if reason == "low_confidence":
            confidence, threshold = percents(view.confidence or 0, settings.review_threshold)
            sentences.append(
                f"Queued for review: confidence {confidence} is below the review threshold of {threshold}."
            )
        elif reason == "small_margin" and len(ranked) > 1:
            (first, p1), (second, p2) = ranked[0], ranked[1]
            gap, margin = percents(p1 - p2, settings.review_margin)
            sentences.append(
                f"Queued for review: {first} ({p1:.0%}) and {second} ({p2:.0%}) are {gap} apart, less "
                f"than {margin}."
            )
        elif reason == "tiers_disagree":
            sentences.append(
                "Queued for review: the fast tier and the transformer tier named different industries."
            )
        elif reason == "little_text":
            sentences.append("Queued for review: the document says too little to file it without a person.")
        elif reason == "new_industry_unsure":
            sentences.append(
                "Queued for review: an industry still being learned was the likeliest answer, but not "
                f"by {settings.review_threshold:.0%}; the document keeps its earlier answer until a "
                "person decides."
            )
        elif reason == "new_industry_held_back":
            sentences.append(
                "Queued for review: an industry still being learned was the likeliest answer, but the "
                "document reads no more like that industry's description than like the one it had "
                "before; it keeps its earlier answer until a person decides."
            )
        elif reason == "new_industry_taken":
            sentences.append(
                "Queued for review: an industry still being learned took it from the industry it had "
                "before; a person confirms it (and so teaches the new industry)."
            )
        elif reason == "new_industry_carved":
            sentences.append(
                "Queued for review: it reads more like the description of an industry still being "
                "learned than like the rest of the industry it would otherwise be filed under (the "
                "catch-all, or one whose description named the new industry's kind of document); a "
                "person confirms it (and so teaches the new industry)."
            )
        else:
            sentences.append(f"Queued for review: {reason.replace('_', ' ')}.")
    return sentences


def document_text(
    rt: Runtime,
    job_id: str,
    *,
    key: str,
    height: int = 480,
    evidence: Sequence[Mapping[str, Any]] = (),
) -> None:
    """The document's extracted text, with its pages, extraction method and OCR'd pages.

    The whole text comes from the database, its ``evidence`` passages marked; page by page is read
    again from the stored original on request (the stored text does not keep page boundaries).
    """
    document = job_document(engine=rt.engine, job_id=job_id)
    if document.text is None:
        st.info("The text has not been read yet; it appears once the job has run.")
        return
    facts = [f"{document.page_count or 0} page(s)", f"read by {document.extraction_method or 'n/a'}"]
    if document.ocr_pages:
        facts.append("OCR on page(s) " + ", ".join(map(str, document.ocr_pages)))
    facts.append(f"{len(document.text):,} characters")
    st.caption(" · ".join(facts))
    for warning in document.warnings:
        st.warning(warning)
    by_page = (document.page_count or 0) > 1 and st.toggle(
        "Page by page",
        key=f"{key}-pages",
        help="Reads the stored original again to recover the page boundaries"
        + (" (OCR'd pages take a second or two each)." if document.ocr_pages else "."),
    )
    with st.container(height=height, border=True):
        if by_page:
            pages = _pages(rt, job_id)
            if pages is None:
                return
            for page in pages:
                st.markdown(f"**Page {page.number}**" + (" · :orange[OCR]" if page.ocr else ""))
                st.text(page.text or "(no text on this page)", width="stretch")
        elif evidence:
            st.html(highlighted_text(document.text[:TEXT_PREVIEW_CHARS], evidence))
        else:
            st.text(document.text[:TEXT_PREVIEW_CHARS], width="stretch")
            if len(document.text) > TEXT_PREVIEW_CHARS:
                st.caption(f"… {len(document.text) - TEXT_PREVIEW_CHARS:,} more characters not shown.")


def highlighted_text(text: str, evidence: Sequence[Mapping[str, Any]]) -> str:
    """``text`` as HTML, each evidence passage in a ``<mark>`` numbered as :func:`evidence_table` lists it.

    Documents are hostile input: every character of the text is escaped, and the passages are
    placed by their offsets (``text[start:end]``), never by searching the text. Passages that fall
    outside ``text`` (it may be a preview of the document) or overlap an earlier one are not marked.
    """
    spans = sorted(
        (int(passage["start"]), int(passage["end"]), number)
        for number, passage in enumerate(evidence, start=1)
    )
    parts, done = [], 0
    for start, end, number in spans:
        if start < done or end <= start or end > len(text):
            continue
        parts.append(html.escape(text[done:start]))
        parts.append(
            f'<mark title="Evidence {number}" style="background-color: #ffd8a8; padding: 0 2px;">'
            f"{html.escape(text[start:end])}<sup><b>{number}</b></sup></mark>"
        )
        done = end
    parts.append(html.escape(text[done:]))
    return (
        '<div style="white-space: pre-wrap; font-family: monospace; font-size: 0.85rem; line-height: 1.5;">'
        + "".join(parts)
        + "</div>"
    )


def evidence_table(evidence: Sequence[Mapping[str, Any]]) -> None:
    """The passages that most support the answer, numbered as the text marks them, with their scores."""
    if not evidence:
        st.caption("No evidence passages were recorded for this answer.")
        return
    st.caption("The passages that most support the answer (marked in the text):")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "#": number,
                    "passage": " ".join(str(passage["text"]).split()),
                    "supports": passage.get("label"),
                    "score": float(passage.get("score", 0.0)),
                }
                for number, passage in enumerate(evidence, start=1)
            ]
        ),
        hide_index=True,
        column_config={
            "passage": st.column_config.TextColumn(width="large"),
            "score": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
        },
    )


def _pages(rt: Runtime, job_id: str) -> list[DocumentPage] | None:
    cache = st.session_state.setdefault("heron_document_pages", {})
    if job_id not in cache:
        while len(cache) >= PAGE_CACHE_DOCUMENTS:
            cache.pop(next(iter(cache)))
        try:
            with st.spinner("Reading the original page by page…"):
                cache[job_id] = job_document_pages(
                    engine=rt.engine,
                    blobs=rt.blobs,
                    job_id=job_id,
                    limits=rt.extraction_limits,
                    extractor=rt.extractor,
                )
        except HeronError as error:
            st.error(f"{literal(error.message)} ({error.code})")
            return None
    return cache[job_id]


def ticked_rows(frame: pd.DataFrame, *, key: str, column_config: Mapping[str, Any]) -> list[int]:
    """A table with a ``select`` column to tick, its rows named by ``id``; returns the ids ticked.

    A tick stays on the row it was put on. Streamlit keeps a keyed editor's edits by row position
    while the row count stays the same: when another reviewer decided a correction, or a filter
    changed, the tick moved to whatever row now sat there, and "Approve selected" approved a
    correction nobody had ticked. So the ticks are remembered by id, and the editor's key names
    the rows it shows: other rows start a new editor, ticked as remembered.
    """
    remembered: set[int] = st.session_state.setdefault(f"{key}_ticked", set())
    shown = frame.assign(select=frame["id"].isin(remembered))
    rows = hashlib.sha1(",".join(str(int(i)) for i in shown["id"]).encode()).hexdigest()[:12]
    edited = st.data_editor(
        shown,
        hide_index=True,
        key=f"{key}_{rows}",
        disabled=[column for column in shown.columns if column != "select"],
        column_config=dict(column_config),
    )
    ticked = [int(row_id) for row_id in edited.loc[edited["select"], "id"]]
    st.session_state[f"{key}_ticked"] = (remembered - {int(i) for i in shown["id"]}) | set(ticked)
    return ticked
