"""The audit trail: who did what, when."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from core.db.tables import AuditEvent


def record(
    session: Session,
    *,
    action: str,
    subject_type: str,
    subject_id: object,
    actor: str | None = None,
    **details: Any,
) -> None:
    """Add an audit event to the caller's transaction (it commits with the change it describes)."""
    session.add(
        AuditEvent(
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            details=details,
        )
    )
