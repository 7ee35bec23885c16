"""Classify: upload documents and see what Heron makes of them."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from core.blobs import CHUNK_SIZE
from core.db import session_scope
from core.errors import HeronError
from core.services.documents import submit_batch
from core.services.jobs import get_job
from ui.state import runtime
from workers import dispatch

POLL_SECONDS = 0.3
WAIT_SECONDS = 60

st.title("Classify documents")
st.caption(
    "Upload PDFs, Office files, e-mails, web pages, text, scans and photos — or a ZIP of them. "
    "Heron reads what they say and names their industry."
)

rt = runtime()
uploads = st.file_uploader("Documents", accept_multiple_files=True, key="uploads")
if uploads and st.button("Classify", type="primary"):
    job_ids, refused = [], []
    for upload in uploads:
        try:
            submission = submit_batch(
                engine=rt.engine,
                blobs=rt.blobs,
                chunks=iter(lambda upload=upload: upload.read(CHUNK_SIZE), b""),
                filename=upload.name,
                client_content_type=upload.type,
                max_bytes=rt.settings.max_upload_bytes,
                submitted_by="console",
                limits=rt.extraction_limits,
            )
        except HeronError as error:
            refused.append({"file": upload.name, "code": error.code, "message": error.message})
            continue
        for job in submission.jobs:
            dispatch.send_classify(job.id)
            job_ids.append(job.id)
        for skipped in submission.skipped:
            refused.append(
                {
                    "file": f"{upload.name}: {skipped.filename}",
                    "code": skipped.code,
                    "message": skipped.message,
                }
            )
    st.session_state["job_ids"] = job_ids
    st.session_state["refused"] = refused

job_ids = st.session_state.get("job_ids", [])
for refusal in st.session_state.get("refused", []):
    st.error(f"{refusal['file']}: {refusal['message']} ({refusal['code']})")

if job_ids:
    progress = st.progress(0.0, text="Classifying…")
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        with session_scope(rt.engine) as session:
            views = [get_job(session=session, job_id=job_id) for job_id in job_ids]
        done = sum(view.status in ("COMPLETED", "FAILED") for view in views)
        progress.progress(done / len(views), text=f"{done} of {len(views)} classified")
        if done == len(views) or time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
    table = pd.DataFrame(
        [
            {
                "file": view.original_filename,
                "status": view.status,
                "industry": view.classification_result,
                "confidence": view.confidence,
                "tier": view.tier,
                "needs review": view.needs_review,
                "error": view.error_message,
            }
            for view in views
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "confidence": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f")
        },
    )
    for view in views:
        if view.scores:
            with st.expander(f"{view.original_filename}: scores by industry"):
                st.bar_chart(pd.Series(view.scores, name="probability"))
elif not st.session_state.get("refused"):
    st.info("Choose one or more files above, then press **Classify**.")
