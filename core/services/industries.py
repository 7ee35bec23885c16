"""Industries: the labels people can assign and the model can predict."""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.db import session_scope
from core.db.tables import Industry, IndustryStatus
from core.errors import Conflict, Invalid
from core.services import audit

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]{1,63}$")


def normalise_name(raw: str) -> str:
    """``"  Real Estate "`` → ``"real_estate"``; raises Invalid for names that stay unusable."""
    name = unicodedata.normalize("NFKC", raw or "").strip().lower()
    name = re.sub(r"[\s/]+", "_", name)
    if not NAME_PATTERN.match(name):
        raise Invalid(
            f"Industry name {raw!r} must be 2–64 characters of letters, digits, spaces, '_' or '-'."
        )
    return name


def active_industry_names(session: Session) -> list[str]:
    return list(
        session.exec(
            select(Industry.name).where(Industry.status == IndustryStatus.active).order_by(Industry.id)
        )
    )


def require_active_industry(session: Session, raw: str) -> str:
    name = normalise_name(raw)
    names = active_industry_names(session)
    if name not in names:
        raise Invalid(f"Unknown industry {raw!r}; known industries: {', '.join(names)}.")
    return name


def create_industry(
    *, engine: Engine, name: str, description: str = "", actor: str | None = None
) -> Industry:
    """Add an industry. Raises Conflict if the (normalised) name exists, retired ones included."""
    normalised = normalise_name(name)
    try:
        with session_scope(engine) as session:
            if session.exec(select(Industry.id).where(Industry.name == normalised)).first():
                raise Conflict(f"Industry {normalised!r} already exists.")
            industry = Industry(name=normalised, description=(description or "").strip())
            session.add(industry)
            audit.record(
                session,
                action="industry.created",
                subject_type="industry",
                subject_id=normalised,
                actor=actor,
            )
    except IntegrityError as exc:
        raise Conflict(f"Industry {normalised!r} already exists.") from exc
    return industry
