"""Classify: upload documents and see what Heron makes of them."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from core.errors import HeronError
from core.services.documents import BatchView, get_batch, upload
from core.services.export import safe_cell
from core.services.jobs import JobView, get_jobs
from ui.state import current_user, runtime
from ui.widgets import document_text, literal, routing_explanation, score_chart

POLL_SECONDS = 0.3
WAIT_SECONDS = 60
FINISHED = ("COMPLETED", "FAILED")


def _unpacked(batch_id: str) -> BatchView:
    """The batch once its ZIP is unpacked (seconds), or as it is after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        batch = get_batch(engine=rt.engine, batch_id=batch_id)
        if batch.status != "UNPACKING" or time.monotonic() > deadline:
            return batch
        time.sleep(POLL_SECONDS)


st.title("Classify documents")
st.caption(
    "Upload PDFs, Office files, e-mails, web pages, text, scans and photos — or a ZIP of them. "
    "Heron reads what they say and names their industry."
)

rt = runtime()
user = current_user()
uploads = st.file_uploader("Documents", accept_multiple_files=True, key="uploads")
if uploads and st.button("Classify", type="primary"):
    job_ids, refused = [], []
    with st.status(f"Uploading {len(uploads)} file(s)…", expanded=len(uploads) > 1) as upload_status:
        sent = st.progress(0.0)
        for number, uploaded in enumerate(uploads, start=1):
            sent.progress((number - 1) / len(uploads), text=f"Storing {uploaded.name}")
            try:
                submission = upload(
                    engine=rt.engine,
                    blobs=rt.blobs,
                    work=rt.work,
                    stream=uploaded,
                    filename=uploaded.name,
                    client_content_type=uploaded.type,
                    max_bytes=rt.settings.max_upload_bytes,
                    submitted_by=user.name,
                )
            except HeronError as error:
                refused.append({"file": uploaded.name, "code": error.code, "message": error.message})
                continue
            job_ids.extend(job.id for job in submission.jobs)
            if submission.unpack_task_id:
                # A worker unpacks the ZIP (not this page): wait for its members to become jobs.
                batch = _unpacked(submission.batch_id)
                job_ids.extend(batch.job_ids)
                st.write(f"{uploaded.name}: {len(batch.job_ids)} documents from the ZIP")
                for skipped in batch.skipped:
                    refused.append(
                        {
                            "file": f"{uploaded.name}: {skipped.filename}",
                            "code": skipped.code,
                            "message": skipped.message,
                        }
                    )
        sent.progress(1.0, text=f"{len(job_ids)} document(s) queued")
        upload_status.update(
            label=f"{len(job_ids)} document(s) queued, {len(refused)} refused",
            state="error" if refused and not job_ids else "complete",
            expanded=False,
        )
    st.session_state["job_ids"] = job_ids
    st.session_state["refused"] = refused
    st.session_state["classify_follow"] = True  # this run follows them; later ones do not wait

job_ids: list[str] = st.session_state.get("job_ids", [])
for refusal in st.session_state.get("refused", []):
    st.error(f"{literal(refusal['file'])}: {literal(refusal['message'])} ({refusal['code']})")


def _read(ids: list[str]) -> list[JobView]:
    return get_jobs(engine=rt.engine, job_ids=ids)


if not job_ids:
    if not st.session_state.get("refused"):
        st.info("Choose one or more files above, then press **Classify**.")
    st.stop()

# Live progress: the in-process workers (or remote ones) finish jobs while this run polls.
views = _read(job_ids)
done = sum(view.status in FINISHED for view in views)
# Only the run that submitted them waits: a filter or a document chosen later answers at once with
# what is finished (each such click waited up to a minute while a scan was still being read).
follow = st.session_state.pop("classify_follow", False)
if done < len(views):
    progress = st.progress(done / len(views), text=f"{done} of {len(views)} classified")
    deadline = time.monotonic() + (WAIT_SECONDS if follow else 0)
    while done < len(views) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        views = _read(job_ids)
        done = sum(view.status in FINISHED for view in views)
        progress.progress(done / len(views), text=f"{done} of {len(views)} classified")
    if done < len(views):
        st.warning(f"{len(views) - done} document(s) are still being read (large scans take a while).")
        if st.button("Refresh", key="classify_refresh_button"):
            st.session_state["classify_follow"] = True
            st.rerun()

table = pd.DataFrame(
    [
        {
            "file": view.original_filename,
            "status": view.status,
            "industry": view.classification_result,
            "confidence": view.confidence,
            "tier": view.tier,
            "needs review": view.needs_review,
            "reasons": ", ".join(view.review_reasons),
            "error code": view.error_code,
            "error": view.error_message,
            "job": view.id,
        }
        for view in views
    ],
    columns=[
        "file",
        "status",
        "industry",
        "confidence",
        "tier",
        "needs review",
        "reasons",
        "error code",
        "error",
        "job",
    ],
)

summary = st.columns(4)
summary[0].metric("Documents", len(views))
summary[1].metric("Classified", sum(view.status == "COMPLETED" for view in views))
summary[2].metric("Need review", sum(bool(view.needs_review) for view in views))
summary[3].metric("Failed", sum(view.status == "FAILED" for view in views))

left, middle, right = st.columns([2, 2, 1])
industries = left.multiselect("Industry", sorted(table["industry"].dropna().unique()), placeholder="All")
statuses = middle.multiselect("Status", sorted(table["status"].unique()), placeholder="All")
only_review = right.toggle("Needs review only")
shown = table
if industries:
    shown = shown[shown["industry"].isin(industries)]
if statuses:
    shown = shown[shown["status"].isin(statuses)]
if only_review:
    shown = shown[shown["needs review"].fillna(False).astype(bool)]

st.dataframe(
    shown,
    hide_index=True,
    column_config={
        "confidence": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
        "job": None,
    },
)
st.download_button(
    "Download CSV",
    shown.map(safe_cell).to_csv(index=False).encode("utf-8"),
    file_name="heron-results.csv",
    mime="text/csv",
    disabled=shown.empty,
)

# The documents to read are those the filters show (it listed every upload whatever the filters).
listed = set(shown["job"])
readable = {view.id: view for view in views if view.status == "COMPLETED" and view.id in listed}
if not readable:
    st.stop()
st.subheader("Document")
chosen_id = st.selectbox(
    "Document",
    list(readable),
    format_func=lambda job_id: (
        f"{readable[job_id].original_filename} — {readable[job_id].classification_result}"
    ),
    label_visibility="collapsed",
    key="classify_document",
)
chosen = readable[chosen_id]
text_column, score_column = st.columns([3, 2])
with score_column:
    st.markdown(f"**{chosen.classification_result}** · {chosen.confidence or 0:.0%} · {chosen.tier} tier")
    for sentence in routing_explanation(chosen, rt):
        st.markdown(f"- {sentence}")
    st.altair_chart(score_chart(chosen.scores, chosen.classification_result), width="stretch")
with text_column:
    document_text(rt, chosen.id, key=f"classify-{chosen.id}")
