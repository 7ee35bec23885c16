"""Industries: the labels people can assign and the model can predict."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.db import one_at_a_time, session_scope
from core.db.tables import (
    AuditEvent,
    ExampleStatus,
    Feedback,
    Industry,
    IndustryStatus,
    TrainingExample,
    utcnow,
)
from core.errors import Conflict, Invalid, NotFound
from core.services import audit

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]{1,63}$")


@dataclass(frozen=True)
class IndustryView:
    """An industry with its training examples counted by source (starter, import, feedback, synthetic)."""

    name: str
    description: str
    status: str
    catch_all: bool
    created_at: datetime
    updated_at: datetime
    examples: dict[str, int] = field(default_factory=dict)


def _view(row: Industry, examples: dict[str, int]) -> IndustryView:
    return IndustryView(
        name=row.name,
        description=row.description,
        status=row.status,
        catch_all=row.catch_all,
        created_at=row.created_at,
        updated_at=row.updated_at,
        examples=examples,
    )


def _counted(session: Session, industry: Industry) -> IndustryView:
    """The view of one industry, with its examples counted."""
    return _view(industry, _example_counts(session, industry.name).get(industry.name, {}))


def _example_counts(session: Session, label: str | None = None) -> dict[str, dict[str, int]]:
    # Examples it learns from: not the ones rejected or superseded by a later correction.
    query = (
        select(TrainingExample.label, TrainingExample.source, func.count())
        .where(TrainingExample.status == ExampleStatus.approved)
        .group_by(TrainingExample.label, TrainingExample.source)
    )
    if label is not None:
        query = query.where(TrainingExample.label == label)
    counts: dict[str, dict[str, int]] = {}
    for name, source, n in session.exec(query):
        counts.setdefault(name, {})[source] = n
    return counts


def normalise_name(raw: str) -> str:
    """``"  Real Estate "`` → ``"real_estate"``; raises Invalid for names that stay unusable."""
    name = unicodedata.normalize("NFKC", raw or "").strip().lower()
    name = re.sub(r"[\s/]+", "_", name).strip("_-")  # "sports_" is "sports"
    if not NAME_PATTERN.match(name):
        raise Invalid(
            f"Industry name {raw!r} must be 2–64 characters of unaccented letters (a–z), digits, spaces, "
            "'_' or '-'."
        )
    return name


def name_key(name: str) -> str:
    """What two spellings of one name share: ``bank-statement``, ``bank_statement`` and
    ``bankstatement`` (a folder, a form and a typist) name one industry."""
    return name.replace("-", "").replace("_", "")


def spellings(session: Session) -> dict[str, str]:
    """Each existing industry's :func:`name_key` → its name (an active one before a retired one)."""
    rows = session.exec(select(Industry.name, Industry.status).order_by(Industry.id)).all()
    found: dict[str, str] = {}
    for name, _ in sorted(rows, key=lambda row: row[1] == IndustryStatus.active):
        found[name_key(name)] = name  # active ones last: they win
    return found


def _same_name(session: Session, name: str, *, besides: str | None = None) -> Industry | None:
    """The industry spelled like ``name`` but for ``-`` and ``_`` (another than ``besides``)."""
    for row in session.exec(select(Industry)):
        if name_key(row.name) == name_key(name) and row.name != besides:
            return row
    return None


# Every change to the industries takes this turn (core.db.one_at_a_time), so each sees the one
# before: rules that span several industries (two stay active, one catch-all at most, names unique)
# were checked against what a change running at the same moment had not written yet (eleven
# parallel retirements left only the catch-all).
INDUSTRIES_TURN = "industries"


def fresh_name(raw: str) -> str:
    """A name for a new or renamed industry: normalised, and with at least one letter ("123" names
    nothing a person would recognise). Existing names and imported folders are not held to it."""
    name = normalise_name(raw)
    if not any("a" <= character <= "z" for character in name):
        raise Invalid(f"Industry name {raw!r} needs at least one letter (a–z).")
    return name


def active_industries(session: Session) -> dict[str, str]:
    """Active industries (name → description) in display order."""
    rows = session.exec(
        select(Industry.name, Industry.description)
        .where(Industry.status == IndustryStatus.active)
        .order_by(Industry.id)
    )
    return dict(rows.all())


def catch_all_industry(session: Session) -> str | None:
    """The active industry that holds what no other claims ("other"), if there is one."""
    return session.exec(
        select(Industry.name).where(Industry.status == IndustryStatus.active, Industry.catch_all)
    ).first()


def active_industry_names(session: Session) -> list[str]:
    return list(active_industries(session))


def renamed_industries(session: Session) -> dict[str, str]:
    """Each name an industry had before a rename → the name it has now (renames followed in
    order: ``a`` renamed ``b``, then ``c``, gives ``a → c`` and ``b → c``)."""
    renamed: dict[str, str] = {}
    events = session.exec(
        select(AuditEvent.subject_id, AuditEvent.details)
        .where(AuditEvent.action == "industry.renamed")
        .order_by(AuditEvent.at, AuditEvent.id)
    )
    for current, details in events:
        previous = (details or {}).get("previous")
        if not previous:
            continue
        for old, name in renamed.items():
            if name == previous:
                renamed[old] = current
        renamed.setdefault(previous, current)
    return renamed


def served_names(labels: Sequence[str], active: Collection[str], renamed: dict[str, str]) -> dict[str, str]:
    """For each label a model version learned, the active industry it answers for today: its own
    name, or the one its industry was renamed to since the version was trained (so a rollback to a
    version older than a rename still files that industry's documents under it). Labels of retired
    industries are left out; an active name is never taken from a label that has it."""
    served = {label: label for label in labels if label in active}
    for label in labels:
        name = renamed.get(label)
        if label not in active and name in active and name not in labels and name not in served.values():
            served[label] = name
    return served


def active_names(*, engine: Engine) -> list[str]:
    """The names of the active industries, in display order (what people can label with)."""
    with session_scope(engine) as session:
        return active_industry_names(session)


def existing_industry(*, engine: Engine, name: str) -> IndustryView:
    """The industry called ``name`` (normalised), retired or not.

    Raises:
        NotFound: no such industry.
    """
    with session_scope(engine) as session:
        industry = _named(session, name)
        return _counted(session, industry)


def require_known_industry(session: Session, raw: str) -> str:
    """The industry ``raw`` names, written as people write it ("Legal", " legal "), active or
    retired; Invalid when none has that name (a filter on it would find nothing, silently)."""
    name = normalise_name(raw)
    if session.exec(select(Industry.id).where(Industry.name == name)).first() is None:
        raise Invalid(f"Unknown industry {raw!r}.")
    return name


def require_active_industry(session: Session, raw: str) -> str:
    name = normalise_name(raw)
    names = active_industry_names(session)
    if name not in names:
        retired = session.exec(
            select(Industry.id).where(Industry.name == name, Industry.status == IndustryStatus.retired)
        ).first()
        if retired:
            raise Invalid(
                f"Industry {name!r} is retired: restore it first, or use one of {', '.join(names)}."
            )
        raise Invalid(f"Unknown industry {raw!r}; known industries: {', '.join(names)}.")
    return name


def create_industry(
    *, engine: Engine, name: str, description: str = "", actor: str | None = None
) -> IndustryView:
    """Add an industry. Raises Conflict if the (normalised) name exists, retired ones included."""
    try:
        with session_scope(engine) as session:
            normalised = _free_name(session, name)
            industry = Industry(name=normalised, description=(description or "").strip())
            session.add(industry)
            audit.record(
                session,
                action="industry.created",
                subject_type="industry",
                subject_id=normalised,
                actor=actor,
            )
            session.flush()
            view = _view(industry, {})
    except IntegrityError as exc:
        raise Conflict(f"Industry {normalised!r} already exists.") from exc
    return view


def new_industry_name(*, engine: Engine, name: str) -> str:
    """``name`` normalised, when an industry could be created with it now (checked again on creation).

    Raises Invalid (no letter) or Conflict (the name exists, retired industries included).
    """
    with session_scope(engine) as session:
        return _free_name(session, name)


def _free_name(session: Session, raw: str) -> str:
    name = fresh_name(raw)
    twin = _same_name(session, name)
    if twin is None:
        return name
    spelt = (
        "" if twin.name == name else f" (spelt {twin.name!r}: names that differ only by '-' or '_' are one)"
    )
    if twin.status == IndustryStatus.retired:
        raise Conflict(
            f"Industry {name!r} already exists{spelt}, retired: restore it (console: Industries; "
            f"POST /api/industries/{twin.name}/restore; heron industries restore {twin.name}) to predict "
            "it again."
        )
    raise Conflict(f"Industry {name!r} already exists{spelt}.")


def list_industries(*, engine: Engine) -> list[IndustryView]:
    """Every industry (retired ones too), oldest first, with its training examples counted by source."""
    with session_scope(engine) as session:
        counts = _example_counts(session)
        rows = session.exec(select(Industry).order_by(Industry.id)).all()
        return [_view(row, counts.get(row.name, {})) for row in rows]


def update_industry(
    *,
    engine: Engine,
    name: str,
    new_name: str | None = None,
    description: str | None = None,
    catch_all: bool | None = None,
    actor: str | None = None,
) -> IndustryView:
    """Rename and/or redescribe an industry (or make it the catch-all, the one that holds what no
    other claims); its training examples and feedback follow the new name.

    Predictions keep the label they were made with (history). Raises NotFound or Conflict, or
    Invalid when nothing is asked to change.
    """
    if new_name is None and description is None and catch_all is None:
        raise Invalid("Nothing to change: send a new name, a description or catch_all.")
    try:
        return _update(engine, name, new_name, description, catch_all, actor)
    except IntegrityError as exc:  # a name taken by a create at the same moment
        raise Conflict(f"Industry {normalise_name(new_name or name)!r} already exists.") from exc


def _update(
    engine: Engine,
    name: str,
    new_name: str | None,
    description: str | None,
    catch_all: bool | None,
    actor: str | None,
) -> IndustryView:
    with session_scope(engine) as session:
        one_at_a_time(session, INDUSTRIES_TURN)
        industry = _named(session, name)
        current = industry.name
        if (
            (new_name is None or normalise_name(new_name) == industry.name)
            and (description is None or description.strip() == industry.description)
            and (catch_all is None or catch_all == industry.catch_all)
        ):
            # Nothing would change, and a training run would learn nothing new.
            raise Invalid(
                f"Nothing to change: {industry.name!r} already has that name, description and role."
            )
        if new_name is not None and normalise_name(new_name) != current:
            target = fresh_name(new_name)
            if (twin := _same_name(session, target, besides=current)) is not None:
                spelt = "" if twin.name == target else f" (spelt {twin.name!r})"
                raise Conflict(f"Industry {target!r} already exists{spelt}.")
            industry.name = target
            session.execute(
                update(TrainingExample).where(TrainingExample.label == current).values(label=target)
            )
            session.execute(update(Feedback).where(Feedback.label == current).values(label=target))
            audit.record(
                session,
                action="industry.renamed",
                subject_type="industry",
                subject_id=target,
                actor=actor,
                previous=current,
            )
        if description is not None:
            industry.description = description.strip()
            audit.record(
                session,
                action="industry.described",
                subject_type="industry",
                subject_id=industry.name,
                actor=actor,
            )
        if catch_all is not None and catch_all != industry.catch_all:
            if catch_all and industry.status != IndustryStatus.active:
                # Otherwise the active taxonomy is left without a catch-all to carve newcomers from.
                raise Conflict(
                    f"Industry {industry.name!r} is retired: restore it before making it the catch-all."
                )
            if catch_all:  # there is one catch-all at most
                for other in session.exec(select(Industry).where(Industry.catch_all)):
                    other.catch_all = False
                    session.add(other)
            industry.catch_all = catch_all
            audit.record(
                session,
                action="industry.catch_all",
                subject_type="industry",
                subject_id=industry.name,
                actor=actor,
                catch_all=catch_all,
            )
        industry.updated_at = utcnow()
        session.add(industry)
        session.flush()
        return _counted(session, industry)


def restore_industry(*, engine: Engine, name: str, actor: str | None = None) -> IndustryView:
    """Predict a retired industry again, with the examples and corrections it kept (undoes a retirement).

    Raises:
        NotFound: no such industry. Conflict: it is active already.
    """
    with session_scope(engine) as session:
        one_at_a_time(session, INDUSTRIES_TURN)
        industry = _named(session, name)
        if industry.status == IndustryStatus.active:
            raise Conflict(f"Industry {industry.name!r} is active already.")
        if catch_all_industry(session) is None and _was_the_catch_all(session, industry.name):
            # An import's --replace retired the catch-all (which stopped being it); brought back
            # while no other holds the role, it is the catch-all again, as before.
            industry.catch_all = True
        return _set_status(session, industry, IndustryStatus.active, actor=actor)


def _was_the_catch_all(session: Session, name: str) -> bool:
    """Whether ``name`` was the catch-all when it was last retired (the import's audit event says)."""
    details = session.exec(
        select(AuditEvent.details)
        .where(AuditEvent.action == "industry.retired", AuditEvent.subject_id == name)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    ).first()
    return bool((details or {}).get("catch_all"))


def retire_industry(*, engine: Engine, name: str, actor: str | None = None) -> IndustryView:
    """Stop predicting an industry; nothing is deleted, and it can be restored (restore_industry).

    Raises NotFound, or Conflict when it is retired already, fewer than two would stay active or it
    is the catch-all.
    """
    with session_scope(engine) as session:
        one_at_a_time(session, INDUSTRIES_TURN)
        industry = _named(session, name)
        current = industry.name
        if industry.status == IndustryStatus.retired:
            raise Conflict(f"Industry {current!r} is retired already.")
        if len(active_industry_names(session)) <= 2 and industry.status == IndustryStatus.active:
            raise Conflict("At least two industries must stay active.")
        if industry.catch_all and industry.status == IndustryStatus.active:
            # Retired, it would still be marked the catch-all, and the industries carved out of it
            # would lose the starter examples they learned from ("sports" was then never predicted).
            raise Conflict(
                f"Industry {current!r} is the catch-all: it holds what no other industry claims, and new "
                "industries take their first examples from it. Make another industry the catch-all, or "
                f"stop {current!r} being the catch-all, before retiring it."
            )
        return _set_status(session, industry, IndustryStatus.retired, actor=actor)


def _named(session: Session, name: str) -> Industry:
    """The industry called ``name`` (normalised), retired or not; NotFound otherwise."""
    industry = session.exec(select(Industry).where(Industry.name == normalise_name(name))).first()
    if industry is None:
        raise NotFound(f"Unknown industry {name!r}.")
    return industry


def _set_status(
    session: Session, industry: Industry, status: IndustryStatus, *, actor: str | None
) -> IndustryView:
    """Retire or restore ``industry``, with its audit event; its view after."""
    industry.status = status
    industry.updated_at = utcnow()
    session.add(industry)
    action = "industry.restored" if status == IndustryStatus.active else "industry.retired"
    audit.record(session, action=action, subject_type="industry", subject_id=industry.name, actor=actor)
    session.flush()
    return _counted(session, industry)
