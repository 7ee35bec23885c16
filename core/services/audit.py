"""The audit trail: who did what, when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from core.db import session_scope
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
        event(action=action, subject_type=subject_type, subject_id=subject_id, actor=actor, **details)
    )


def event(
    *, action: str, subject_type: str, subject_id: object, actor: str | None = None, **details: Any
) -> AuditEvent:
    """The audit event :func:`record` adds, for a caller that writes it itself."""
    return AuditEvent(
        actor=actor, action=action, subject_type=subject_type, subject_id=str(subject_id), details=details
    )


@dataclass(frozen=True)
class AuditEventView:
    id: int
    at: datetime
    actor: str | None
    action: str
    subject_type: str
    subject_id: str
    details: dict[str, Any]


def list_events(
    *,
    engine: Engine,
    action: str | None = None,
    actor: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AuditEventView], int]:
    """Audit events, newest first, optionally only one action or one actor's; with the total."""
    query = select(AuditEvent)
    if action:
        query = query.where(AuditEvent.action == action)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    with session_scope(engine) as session:
        total = session.exec(select(func.count()).select_from(query.subquery())).one()
        rows = session.exec(query.order_by(AuditEvent.id.desc()).offset(offset).limit(limit)).all()
    return [
        AuditEventView(
            id=row.id,
            at=row.at,
            actor=row.actor,
            action=row.action,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            details=row.details or {},
        )
        for row in rows
    ], int(total)


def list_actions(*, engine: Engine) -> list[str]:
    """The actions the audit trail holds, alphabetically (to filter :func:`list_events` by)."""
    with session_scope(engine) as session:
        return list(session.exec(select(AuditEvent.action).distinct().order_by(AuditEvent.action)).all())
