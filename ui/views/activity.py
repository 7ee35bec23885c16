"""Activity: recent jobs and background tasks, what failed and why, the audit trail, and how the
annotators agree with each other and with the gold documents."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from core.services.annotators import annotator_report
from core.services.audit import list_actions, list_events
from core.services.jobs import list_jobs
from core.services.tasks import list_tasks
from ui.state import current_user, runtime
from ui.widgets import literal

RECENT = 50
AUDIT_PAGE_SIZE = 50
JOB_STATUSES = ("PENDING", "PROCESSING", "COMPLETED", "FAILED")

rt = runtime()

st.title("Activity")
st.caption("What Heron has been doing: documents classified, training and synthesis runs, and who did what.")
st.button("Refresh", icon="🔄")

job_counts = {status: list_jobs(engine=rt.engine, status=status, limit=0)[1] for status in JOB_STATUSES}
failed_jobs, _ = list_jobs(engine=rt.engine, status="FAILED", limit=RECENT)
tasks, task_total = list_tasks(engine=rt.engine, limit=RECENT)
failed_tasks, _ = list_tasks(engine=rt.engine, status="FAILED", limit=RECENT)

counts = st.columns(len(JOB_STATUSES) + 1)
for column, status in zip(counts, JOB_STATUSES, strict=False):
    column.metric(f"Jobs {status.lower()}", job_counts[status])
counts[-1].metric("Background tasks", task_total)

jobs_tab, tasks_tab, failures_tab, audit_tab, annotators_tab = st.tabs(
    ["Jobs", "Tasks", "Failures", "Audit log", "Annotators"]
)

with jobs_tab:
    status = st.selectbox(
        "Status",
        [None, *JOB_STATUSES],
        format_func=lambda value: "Any status" if value is None else value,
        key="activity_job_status",
    )
    jobs, total = list_jobs(engine=rt.engine, status=status, limit=RECENT)
    if not jobs:
        st.info("No documents yet — upload some on Classify.")
    else:
        st.caption(f"The {len(jobs)} most recent of {total}.")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "created": job.created_at,
                        "file": job.original_filename,
                        "status": job.status,
                        "industry": job.classification_result,
                        "confidence": job.confidence,
                        "tier": job.tier,
                        "needs review": job.needs_review,
                        "correction": job.corrected_classification,
                        "error code": job.error_code,
                        "attempts": job.attempts,
                        "job": job.id,
                    }
                    for job in jobs
                ]
            ),
            hide_index=True,
            column_config={
                "confidence": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f")
            },
        )

with tasks_tab:
    if not tasks:
        st.info(
            "No background tasks yet — approving corrections, retraining a model or adding an industry "
            "with synthetic documents starts one."
        )
    else:
        for task in tasks:
            if task.status in ("PENDING", "RUNNING"):
                st.progress(
                    task.progress, text=f"{task.kind} {task.id[:8]}: {task.stage or task.status.lower()}"
                )
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "created": task.created_at,
                        "kind": task.kind,
                        "status": task.status,
                        "progress": task.progress,
                        "stage": task.stage,
                        "requested by": task.requested_by,
                        "error code": task.error_code,
                        "error": task.error_message,
                        "finished": task.finished_at,
                        "task": task.id,
                    }
                    for task in tasks
                ]
            ),
            hide_index=True,
            column_config={
                "progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent")
            },
        )

with failures_tab:
    if not failed_jobs and not failed_tasks:
        st.success("Nothing has failed recently.")
    if failed_jobs:
        by_code = pd.Series([job.error_code or "unknown" for job in failed_jobs]).value_counts()
        st.dataframe(
            by_code.rename_axis("error code").reset_index(name="documents"), hide_index=True, width="content"
        )
    for job in failed_jobs:
        st.error(f"**{literal(job.original_filename)}** — `{job.error_code}`: {literal(job.error_message)}")
    for task in failed_tasks:
        st.error(f"**{task.kind}** task {task.id[:8]} — `{task.error_code}`: {literal(task.error_message)}")


def audit_log() -> None:
    """Who did what, newest first, filtered by action and paged."""
    actions = list_actions(engine=rt.engine)
    filter_column, page_column = st.columns([3, 1])
    action = filter_column.selectbox(
        "Action",
        [None, *actions],
        format_func=lambda value: "Every action" if value is None else value,
        key="activity_audit_action",
    )
    # Keyed by the filter: another action starts on its first page.
    page = page_column.number_input("Page", min_value=1, value=1, step=1, key=f"activity_audit_page_{action}")
    offset = (int(page) - 1) * AUDIT_PAGE_SIZE
    events, total = list_events(engine=rt.engine, action=action, limit=AUDIT_PAGE_SIZE, offset=offset)
    if not events and total:
        pages = -(-total // AUDIT_PAGE_SIZE)
        st.info(f"No events on page {int(page)}: there are {total}, on {pages} page{'s' * (pages != 1)}.")
    elif not events:
        st.info("Nothing recorded yet — uploads, corrections, approvals and training runs appear here.")
    else:
        st.caption(f"Events {offset + 1}–{offset + len(events)} of {total}.")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "at": event.at,
                        "actor": event.actor,
                        "action": event.action,
                        "subject": f"{event.subject_type} {event.subject_id}",
                        "details": json.dumps(event.details, default=str, ensure_ascii=False),
                    }
                    for event in events
                ]
            ),
            hide_index=True,
        )


with audit_tab:
    if current_user().can("reviewer"):  # as GET /api/audit: who decided what is for reviewers
        audit_log()
    else:
        st.info(f"The audit log is for reviewers and admins; you are signed in as {current_user().role}.")

with annotators_tab:
    report = annotator_report(engine=rt.engine)
    if not report.annotators:
        st.info("Nobody has labelled a document yet — corrections made on Review appear here, by author.")
    else:
        st.subheader("Annotators")
        st.caption(
            "Each annotator's labels (a document labelled twice counts once under documents) and, on "
            "the gold documents a reviewer approved and set aside, how often they gave the same label."
        )
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "annotator": annotator.name,
                        "labels": annotator.labels,
                        "documents": annotator.documents,
                        "gold documents": annotator.gold_n,
                        "gold accuracy": annotator.gold_accuracy,
                    }
                    for annotator in report.annotators
                ]
            ),
            hide_index=True,
            column_config={
                "gold accuracy": st.column_config.ProgressColumn(
                    min_value=0.0, max_value=1.0, format="percent"
                )
            },
        )
        st.subheader("Agreement")
        st.caption(
            "Cohen's kappa measures how much two annotators agree beyond what chance would give them, "
            "labelling as often as each does: 1 is full agreement, 0 no better than chance, below 0 "
            "worse than chance (above 0.8 is usually read as strong, 0.6–0.8 as substantial). It is "
            "blank when both gave every shared document one and the same label."
        )
        if not report.agreement:
            st.info("No two annotators have labelled the same document yet.")
        else:
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "annotator": pair.annotator_a,
                            "other annotator": pair.annotator_b,
                            "shared documents": pair.documents,
                            "agreement": pair.agreement,
                            "kappa": pair.kappa,
                        }
                        for pair in report.agreement
                    ]
                ),
                hide_index=True,
                column_config={
                    "agreement": st.column_config.NumberColumn(format="percent"),
                    "kappa": st.column_config.NumberColumn(format="%.2f"),
                },
            )
