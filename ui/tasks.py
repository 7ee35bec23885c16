"""Following background tasks (training, synthesis) on a page: progress bars, then how they ended."""

from __future__ import annotations

import time

import streamlit as st

from core.runtime import Runtime
from core.services.tasks import FINISHED, TaskView, get_task
from ui.widgets import literal

POLL_SECONDS = 0.5
WAIT_SECONDS = 60


def outcome(kind: str, task: TaskView) -> tuple[str, str]:
    """How a task ended (or that it is still going), in a sentence or two, and how to show it
    (success, info, warning or error)."""
    result = task.result
    if task.status == "FAILED":
        level = "warning" if task.error_code == "llm_not_configured" else "error"
        return level, f"{kind.capitalize()} did not run ({task.error_code}): {literal(task.error_message)}"
    if task.status == "CANCELLED":
        return "warning", f"{kind.capitalize()} was cancelled; what it finished before is kept."
    if task.status != "SUCCEEDED":
        still = f"{kind.capitalize()} is still {task.status.lower()} ({task.stage})."
        return "info", f"{still} Press Refresh to check again."
    if kind == "training" and "skipped" in result:
        return "info", f"Training had nothing new to learn: {result['skipped']}"
    if kind == "training":
        version, reason = result.get("version_id"), result.get("reason")
        if result.get("activated"):
            return "success", f"Model v{version} was trained and is now active ({reason})."
        return "warning", (
            f"Model v{version} was trained and was not activated ({reason}); the active model is "
            "unchanged, and an admin can still promote it on the Models page."
        )
    pending = result.get("pending", 0)
    review = f" {pending} wait for your review below." if pending else ""
    flagged = (
        f" {result['flagged']} look like another industry to the model." if result.get("flagged") else ""
    )
    note = f" {result['note']}" if result.get("note") else ""
    return "success", (
        f"Synthesis stored {result.get('stored', 0)} of {result.get('requested', 0)} documents."
        f"{review}{flagged}{note}"
    )


def show(level: str, message: str) -> None:
    {"success": st.success, "info": st.info, "warning": st.warning}.get(level, st.error)(message)


def describe_outcome(kind: str, task: TaskView) -> None:
    """How a task ended (or that it is still going), in a sentence or two."""
    show(*outcome(kind, task))


def follow_tasks(rt: Runtime, task_ids: dict[str, str]) -> bool:
    """A progress bar per task (synthesis, training) until all end or ``WAIT_SECONDS`` pass.

    Returns whether every task has ended.
    """
    bars = {kind: st.progress(0.0, text=f"{kind.capitalize()}: waiting for a worker…") for kind in task_ids}
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        tasks = {kind: get_task(engine=rt.engine, task_id=task_id) for kind, task_id in task_ids.items()}
        for kind, task in tasks.items():
            count = f" ({task.done} of {task.total})" if kind == "synthesis" and task.total else ""
            stage = task.stage or "waiting for a worker"
            bars[kind].progress(
                task.progress, text=f"{kind.capitalize()} {task.status.lower()}: {stage}{count}"
            )
        ended = all(task.status in FINISHED for task in tasks.values())
        if ended or time.monotonic() > deadline:
            break
        time.sleep(POLL_SECONDS)
    for kind, task in tasks.items():
        describe_outcome(kind, task)
    return ended
