"""Training examples as people see them: listed by source and status, and approved or rejected
(synthetic documents wait as ``pending`` until a reviewer decides; only approved ones train)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from core.db import one_at_a_time, session_scope
from core.db.tables import ExampleSource, ExampleStatus, Split, TrainingExample
from core.errors import Conflict, Invalid, NotFound
from core.services import audit
from core.services.industries import require_active_industry
from core.services.retraining import queue_training
from core.services.tasks import TaskView
from core.services.training import USER_SOURCES
from core.work import WorkSender

PREVIEW_CHARS = 300


@dataclass(frozen=True)
class ExampleView:
    id: int
    label: str
    source: str
    status: str
    split: str
    origin: str | None
    meta: dict[str, Any]
    preview: str
    text: str
    created_at: datetime


def preview(text: str) -> str:
    """The opening of ``text`` on one line, at most PREVIEW_CHARS characters (… when cut)."""
    flat = " ".join(text.split())
    return flat[:PREVIEW_CHARS] + ("…" if len(flat) > PREVIEW_CHARS else "")


def example_view(row: TrainingExample) -> ExampleView:
    return ExampleView(
        id=row.id,
        label=row.label,
        source=row.source,
        status=row.status,
        split=row.split,
        origin=row.origin,
        meta=row.meta or {},
        preview=preview(row.text),
        text=row.text,
        created_at=row.created_at,
    )


@dataclass(frozen=True)
class ExampleDecision:
    """Examples as decided, and the training run their approval queued (None for rejections)."""

    examples: list[ExampleView]
    training_task: TaskView | None


def list_examples(
    *,
    engine: Engine,
    source: str | None = None,
    status: str | None = None,
    label: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[ExampleView], int]:
    """Training examples, newest first, filtered by source, status and label.

    Raises:
        Invalid: an unknown source or status.
    """
    query = select(TrainingExample)
    if source:
        _require(source, ExampleSource, "source")
        query = query.where(TrainingExample.source == source)
    if status:
        _require(status, ExampleStatus, "status")
        query = query.where(TrainingExample.status == status)
    if label:
        query = query.where(TrainingExample.label == label)
    with session_scope(engine) as session:
        total = session.exec(select(func.count()).select_from(query.subquery())).one()
        rows = session.exec(query.order_by(TrainingExample.id.desc()).offset(offset).limit(limit)).all()
        return [example_view(row) for row in rows], int(total)


def pending_synthetic_counts(*, engine: Engine) -> dict[str, int]:
    """How many synthetic examples of each industry wait for a reviewer (industries with none left out)."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(TrainingExample.label, func.count())
            .where(
                TrainingExample.source == ExampleSource.synthetic,
                TrainingExample.status == ExampleStatus.pending,
            )
            .group_by(TrainingExample.label)
        )
        return {label: int(n) for label, n in rows}


def _require(value: str, kind: type, what: str) -> None:
    allowed = [member.value for member in kind]
    if value not in allowed:
        raise Invalid(f"Unknown example {what} {value!r}; use one of {', '.join(allowed)}.")


def decide_examples(
    *, engine: Engine, work: WorkSender, ids: list[int], approve: bool, actor: str | None = None
) -> ExampleDecision:
    """Approve or reject pending examples, all or none; an approval queues the incremental training
    run that learns them (it refits on every approved example, however old).

    Raises:
        NotFound: an id does not exist. Conflict: one of them was decided already.
    """
    decision = ExampleStatus.approved if approve else ExampleStatus.rejected
    with session_scope(engine) as session:
        rows = []
        for example_id in dict.fromkeys(ids):
            row = session.get(TrainingExample, example_id)
            if row is None:
                raise NotFound(f"Training example {example_id} does not exist.")
            if row.status != ExampleStatus.pending:  # as for corrections: decided once
                raise Conflict(f"Training example {example_id} is already {row.status}.")
            rows.append(row)
        for row in rows:
            row.status = decision
            session.add(row)
            audit.record(
                session,
                action=f"example.{decision}",
                subject_type="training_example",
                subject_id=row.id,
                actor=actor,
                label=row.label,
                source=row.source,
            )
        session.flush()
        decided = [example_view(row) for row in rows]
    training_task = queue_training(engine=engine, work=work, actor=actor) if approve else None
    return ExampleDecision(decided, training_task)


def relabel_example(
    *, engine: Engine, work: WorkSender, example_id: int, label: str, actor: str | None = None
) -> ExampleDecision:
    """Correct an approved example's label (a label issue on second look); it retrains like any
    approval. When the text already has an example with that label from the same source, that one
    trains (again) and this one stops; either way no other label of the text trains any longer.

    Raises:
        NotFound: no such example. Invalid: the example is not approved, or the label is not an
        active industry, or it is the example's label already.
    """
    with session_scope(engine) as session:
        one_at_a_time(session, LABELS_TURN)
        row = _approved_example(session, example_id, "relabelled")
        label = require_active_industry(session, label)
        if label == row.label:
            raise Invalid(f"Training example {example_id} is already labelled {label!r}.")
        twin = session.exec(
            select(TrainingExample).where(
                TrainingExample.content_hash == row.content_hash,
                TrainingExample.label == label,
                TrainingExample.source == row.source,
            )
        ).first()
        audit.record(
            session,
            action="example.relabelled",
            subject_type="training_example",
            subject_id=row.id,
            actor=actor,
            label=label,
            previous=row.label,
            source=row.source,
        )
        if twin is None:
            row.label = label
            session.add(row)
        else:  # the text's example with that label (superseded earlier, perhaps) trains again
            twin.status = ExampleStatus.approved
            session.add(twin)
        # The reviewer's is the newest word on the text: no other label of it trains (this row's
        # old one included, when its twin takes over).
        supersede_other_labels(session, row.content_hash, label, actor=actor, by_relabel=example_id)
        session.flush()
        decided = [example_view(twin if twin is not None else row)]  # the example that now trains
    return ExampleDecision(decided, queue_training(engine=engine, work=work, actor=actor))


def keep_label(*, engine: Engine, example_id: int, actor: str | None = None) -> ExampleView:
    """A reviewer looked at a label issue and the label is right: it leaves the label-issue queue
    (until it is relabelled). Nothing trains.

    Raises:
        NotFound: no such example. Invalid: the example is not approved.
    """
    with session_scope(engine) as session:
        row = _approved_example(session, example_id, "kept")
        row.meta = {**(row.meta or {}), KEPT: {"label": row.label, "by": actor}}
        session.add(row)
        audit.record(
            session,
            action="example.label_kept",
            subject_type="training_example",
            subject_id=row.id,
            actor=actor,
            label=row.label,
        )
        session.flush()
        return example_view(row)


# Where an example's meta records that a reviewer confirmed its label ({"label", "by"}).
KEPT = "label_kept"


def label_kept(row: TrainingExample) -> bool:
    """Whether a reviewer confirmed this example's current label (a label issue looked at)."""
    kept = (row.meta or {}).get(KEPT) or {}
    return kept.get("label") == row.label


# Whatever gives a text a label (approving a correction, adding an example file, relabelling an
# example) takes this turn (core.db.one_at_a_time) before it supersedes the text's other labels:
# two at the same moment would each miss the other's and leave the text with two labels.
LABELS_TURN = "labels"


def split_of_text(session: Session, digest: str, split: Split) -> Split:
    """The split a new example of a text joins: ``split`` for a text new to the people's examples,
    else the one it has already. A text's split is decided once, however it arrives again (an
    imported file, then a correction of its upload, then an example file): a gold document sent
    again by another way would otherwise train, and the gold set would judge on what was learned."""
    earlier = set(
        session.exec(
            select(TrainingExample.split).where(
                TrainingExample.content_hash == digest,
                TrainingExample.source.in_(USER_SOURCES),
            )
        )
    )
    if Split.holdout in earlier:
        return Split.holdout
    return Split.train if earlier else split


def supersede_other_labels(session: Session, digest: str, label: str, *, actor: str | None, **by: Any) -> int:
    """The newest word on a text wins: approved examples that give it another label than ``label``
    stop training (and judging), each with an audit event naming what superseded it (``by``).
    Returns how many were superseded."""
    earlier = session.exec(
        select(TrainingExample).where(
            TrainingExample.content_hash == digest,
            TrainingExample.label != label,
            TrainingExample.status == ExampleStatus.approved,
        )
    ).all()
    for row in earlier:
        row.status = ExampleStatus.rejected
        session.add(row)
        audit.record(
            session,
            action="example.superseded",
            subject_type="training_example",
            subject_id=row.id,
            actor=actor,
            label=row.label,
            **by,
        )
    return len(earlier)


def _approved_example(session: Session, example_id: int, doing: str) -> TrainingExample:
    row = session.get(TrainingExample, example_id)
    if row is None:
        raise NotFound(f"Training example {example_id} does not exist.")
    if row.status != ExampleStatus.approved:
        raise Invalid(f"Training example {example_id} is {row.status}; only approved examples are {doing}.")
    return row
