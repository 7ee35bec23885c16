"""Labelled folders (``DIR/<label>/<file>``, any supported format): evaluate on them, or import them."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from core.classify.model import Encoder, RoutingPolicy
from core.corpus import content_hash, is_holdout, readable_name
from core.db import one_at_a_time, session_scope
from core.db.tables import (
    ExampleSource,
    ExampleStatus,
    Industry,
    IndustryStatus,
    Split,
    TrainingExample,
    utcnow,
)
from core.errors import HeronError, Invalid
from core.evaluation import evaluation_report
from core.extract import ExtractionLimits, extract
from core.extract.isolation import Extractor
from core.services import audit
from core.services.examples import LABELS_TURN, split_of_text, supersede_other_labels
from core.services.industries import (
    INDUSTRIES_TURN,
    active_industry_names,
    name_key,
    normalise_name,
    require_active_industry,
    spellings,
)
from core.services.models import ModelCache

BATCH = 32


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    label: str


def labelled_files(root: Path, known: dict[str, str] | None = None) -> list[LabelledFile]:
    """Every regular file below ``root/<label>/`` (hidden files and folders skipped), in a stable order.

    ``known``: the existing industries by :func:`name_key` (:func:`spellings`): a folder spelt like
    one but for ``-`` and ``_`` (``bank-statement/`` beside ``bank_statement``) is that industry.
    """
    if not root.is_dir():
        raise Invalid(f"{str(root)!r} is not a directory of <label>/<file> folders.")
    known = dict(known or {})
    exact = set(known.values())

    def label(folder: Path) -> str:
        # An existing industry's own name first; else the industry (or the folder before it in
        # this one) spelt like it but for '-' and '_'.
        name = normalise_name(folder.name)
        return name if name in exact else known.setdefault(name_key(name), name)

    files = [
        LabelledFile(path=path, label=label(folder))
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]
    if not files:
        raise Invalid(f"{str(root)!r} has no files in <label>/ folders.")
    return files


# Called with (files read so far, files in all) as a folder is read.
FileProgress = Callable[[int, int], None]


def _texts(
    files: list[LabelledFile], limits: ExtractionLimits, on_progress: FileProgress | None = None
) -> Iterator[tuple[LabelledFile, str | HeronError]]:
    for done, item in enumerate(files, start=1):
        try:
            text: str | HeronError = extract(item.path, limits=limits, filename=item.path.name).text
        except HeronError as error:
            text = error
        if on_progress is not None:
            on_progress(done, len(files))
        yield item, text


def evaluate_directory(
    *,
    engine: Engine,
    models: ModelCache,
    encoder: Encoder,
    root: Path,
    policy: RoutingPolicy,
    limits: ExtractionLimits,
    on_progress: FileProgress | None = None,
) -> dict[str, Any]:
    """Classify every file with the active model (never training on them) and score the answers.

    Files that cannot be read are listed under ``errors`` and left out of the scores; labels the
    model does not know count as wrong answers.

    Raises:
        Invalid: none of the files could be read (there is nothing to score).
    """
    started = time.perf_counter()
    with session_scope(engine) as session:
        known = spellings(session)
        allowed = active_industry_names(session)
    files = labelled_files(root, known)
    _, model = models.active(engine)
    truth: list[str] = []
    pending: list[str] = []
    verdicts = []
    errors = []
    for item, text in _texts(files, limits, on_progress):
        if isinstance(text, HeronError):
            errors.append({"path": str(item.path), **text.as_dict()})
            continue
        truth.append(item.label)
        pending.append(text)
        if len(pending) == BATCH:
            verdicts += model.classify(pending, policy, encoder=encoder, allowed=allowed)
            pending = []
    if pending:
        verdicts += model.classify(pending, policy, encoder=encoder, allowed=allowed)
    if not truth:  # scores of nothing would read as a model that is always wrong
        codes = Counter(error["code"] for error in errors)
        raise Invalid(
            f"None of the {len(files)} files could be read "
            f"({', '.join(f'{n} {code}' for code, n in codes.most_common())}); there is nothing to score."
        )
    report = evaluation_report(
        truth,
        [v.label for v in verdicts],
        [v.confidence for v in verdicts],
        labels=allowed,
        escalated=[v.escalated for v in verdicts],
        needs_review=[v.needs_review for v in verdicts],
    )
    report["docs_per_second"] = len(files) / max(time.perf_counter() - started, 1e-9)
    report["errors"] = errors
    return report


def import_directory(
    *,
    engine: Engine,
    root: Path,
    limits: ExtractionLimits,
    replace: bool = False,
    actor: str | None = None,
    on_progress: FileProgress | None = None,
) -> dict[str, Any]:
    """Store a labelled folder as training data (20% of it, by file, as holdout).

    Every file is read before anything changes. Unknown labels with a readable file become
    industries (a label none of whose files can be read creates nothing); with ``replace``, every
    active industry the folder does not name is retired (its data and history stay; a retired
    catch-all is no longer the catch-all). The newest word on a text wins, as for corrections and
    example files: an imported file supersedes approved examples that label its text otherwise
    (within one folder, the file read last). A file imported before is skipped, even when a
    correction has superseded it since: importing a folder again does not undo corrections.
    Returns counts (added, superseded), the industries it created or restored and retired, the
    files that could not be read (``errors``) and those whose text is an example already
    (``skipped``, code ``duplicate``).

    Raises:
        Invalid: with ``replace``, a folder with fewer than two labels that have a readable file (a
            model needs two to choose from); nothing is changed then.
    """
    with session_scope(engine) as session:
        known = spellings(session)
    files = labelled_files(root, known)
    read = list(_texts(files, limits, on_progress))  # before anything changes: reading may fail
    errors = [{"path": str(i.path), **error.as_dict()} for i, error in read if isinstance(error, HeronError)]
    texts = [(item, text) for item, text in read if isinstance(text, str)]
    labels = sorted({item.label for item, _ in texts})
    if replace and len(labels) < 2:
        named = sorted({item.label for item in files})
        raise Invalid(
            f"A taxonomy needs at least two industries with a readable file; {root} has {len(labels)} "
            f"of {len(named)} ({', '.join(named) or 'none'}; {len(errors)} file(s) could not be read). "
            "Nothing was imported."
        )
    added: Counter[str] = Counter()
    superseded = 0
    skipped: list[dict[str, str]] = []
    with session_scope(engine) as session:
        one_at_a_time(session, INDUSTRIES_TURN)
        one_at_a_time(session, LABELS_TURN)
        created, retired = _import_taxonomy(session, labels, replace=replace, actor=actor)
        known = {
            (row.content_hash, row.label): row
            for row in session.exec(
                select(TrainingExample).where(TrainingExample.source == ExampleSource.import_)
            )
        }
        for item, text in texts:
            key = (content_hash(text), item.label)
            if key in known:
                # Imported before: as it was, even when a correction superseded it since (importing
                # the same folder again, as a nightly job would, must not undo people's corrections).
                # Said, so the counts add up to the folder (a PDF and its scan can read the same).
                skipped.append(
                    {
                        "path": str(item.path),
                        "code": DUPLICATE,
                        "message": f"its text is an example of {item.label!r} already",
                    }
                )
                continue
            origin = f"{root.name}/{item.path.relative_to(root)}"
            row = known[key] = TrainingExample(
                text=text,
                content_hash=key[0],
                label=item.label,
                source=ExampleSource.import_,
                split=split_of_text(session, key[0], Split.holdout if is_holdout(origin) else Split.train),
                origin=origin[:255],
            )
            session.add(row)
            session.flush()  # a later file of the same text under another label supersedes this one
            added[item.label] += 1
            superseded += supersede_other_labels(
                session, key[0], item.label, actor=actor, by_import=str(item.path.relative_to(root))
            )
    return {
        "added": dict(added),
        "superseded": superseded,
        "labels": labels,
        "created": created,
        "retired": retired,
        "errors": errors,
        "skipped": skipped,
    }


def _import_taxonomy(
    session: Session, labels: list[str], *, replace: bool, actor: str | None
) -> tuple[list[str], list[str]]:
    """Make the imported labels active industries (creating or restoring them) and, with
    ``replace``, retire the others; returns (created or restored, retired)."""
    existing = {row.name: row for row in session.exec(select(Industry))}
    created: list[str] = []  # new industries, and retired ones it made active again
    for label in labels:
        industry = existing.get(label)
        if industry is None:
            session.add(Industry(name=label, description=readable_name(label)))
            audit.record(
                session, action="industry.created", subject_type="industry", subject_id=label, actor=actor
            )
            created.append(label)
        elif industry.status != IndustryStatus.active:
            industry.status = IndustryStatus.active
            industry.updated_at = utcnow()
            session.add(industry)
            created.append(label)
    retired = []
    if replace:
        for name, industry in existing.items():
            if name not in labels and industry.status == IndustryStatus.active:
                was_catch_all = industry.catch_all
                industry.status = IndustryStatus.retired
                industry.catch_all = False  # the imported taxonomy names its own, if any
                industry.updated_at = utcnow()
                session.add(industry)
                retired.append(name)
                audit.record(  # (restored while no industry is the catch-all, it is again)
                    session,
                    action="industry.retired",
                    subject_type="industry",
                    subject_id=name,
                    actor=actor,
                    catch_all=was_catch_all,
                )
    return created, retired


# The code given for an example file whose text is an example of its industry already.
DUPLICATE = "duplicate"


def read_example_files(
    files: list[tuple[str, bytes]],
    limits: ExtractionLimits,
    extractor: Extractor | None = None,
) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """The text of each readable file as (filename, text), and an error for each unreadable one."""
    read, errors = [], []
    for filename, data in files:
        try:
            if extractor is not None:  # a person's upload: read in a child process, like any document
                text = extractor.extract(data, limits=limits or ExtractionLimits(), filename=filename).text
            else:
                text = extract(data, limits=limits, filename=filename).text
        except HeronError as error:
            errors.append({"filename": filename, **error.as_dict()})
            continue
        read.append((filename, text))
    return read, errors


def add_example_files(
    *,
    engine: Engine,
    industry: str,
    files: list[tuple[str, bytes]],
    limits: ExtractionLimits,
    actor: str | None = None,
    extractor: Extractor | None = None,
    read: tuple[list[tuple[str, str]], list[dict[str, str]]] | None = None,
) -> dict[str, Any]:
    """Store example documents of one industry (e.g. given when it is created) as training data.

    A handful of examples all train; from ten on, 20% of them (by file name) are held out to
    judge models. Unreadable files are reported, not stored. The newest word on a text wins, as with
    corrections: a file's text supersedes approved examples that label it otherwise, and a file a
    later correction superseded is an example again when it is sent again. ``read`` is what
    read_example_files gave for ``files`` when the caller read them already. Returns counts (added,
    superseded) and, per file not used, why: an extraction error's code, or ``duplicate``.
    """
    texts, unreadable = read if read is not None else read_example_files(files, limits, extractor)
    errors = list(unreadable)
    added = superseded = 0
    with session_scope(engine) as session:
        one_at_a_time(session, LABELS_TURN)
        label = require_active_industry(session, industry)
        known = {
            row.content_hash: row
            for row in session.exec(
                select(TrainingExample).where(
                    TrainingExample.label == label, TrainingExample.source == ExampleSource.import_
                )
            )
        }
        for filename, text in texts:
            digest = content_hash(text)
            row = known.get(digest)
            if row is not None and row.status == ExampleStatus.approved:  # or twice in this upload
                errors.append(
                    {"filename": filename, "code": DUPLICATE, "message": "its text is an example already"}
                )
                continue
            if row is not None:  # superseded by a later correction, and sent again: the newest word
                row.status = ExampleStatus.approved
            else:
                origin = f"examples/{label}/{filename}"[:255]
                held_out = len(files) >= 10 and is_holdout(origin)
                row = known[digest] = TrainingExample(
                    text=text,
                    content_hash=digest,
                    label=label,
                    source=ExampleSource.import_,
                    split=split_of_text(session, digest, Split.holdout if held_out else Split.train),
                    origin=origin,
                )
            session.add(row)
            added += 1
            superseded += supersede_other_labels(
                session, digest, label, actor=actor, by_example_file=filename
            )
        audit.record(
            session,
            action="industry.examples_added",
            subject_type="industry",
            subject_id=label,
            actor=actor,
            added=added,
            errors=len(errors),
        )
    return {"added": added, "superseded": superseded, "errors": errors}
