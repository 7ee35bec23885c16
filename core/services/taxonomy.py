"""Changing the taxonomy: add, rename, redescribe or retire an industry, each with the training run
that makes the change live (the rows themselves are changed by :mod:`core.services.industries`,
which training reads, so these use cases, which queue training, live here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from core.errors import Conflict, Invalid
from core.extract import ExtractionLimits
from core.extract.isolation import Extractor
from core.services import datasets, industries, synthesis
from core.services.industries import IndustryView
from core.services.retraining import queue_training
from core.services.tasks import TaskView
from core.settings import Settings
from core.work import WorkSender


@dataclass(frozen=True)
class IndustryAdded:
    name: str
    description: str
    examples_added: int
    example_errors: list[dict[str, str]]
    synthesis_task: TaskView | None
    training_task: TaskView


@dataclass(frozen=True)
class IndustryChanged:
    industry: IndustryView
    training_task: TaskView


@dataclass(frozen=True)
class ExamplesAdded:
    industry: str
    examples_added: int
    example_errors: list[dict[str, str]]
    training_task: TaskView


def add_industry(
    *,
    engine: Engine,
    work: WorkSender,
    settings: Settings,
    name: str,
    description: str = "",
    example_files: Sequence[tuple[str, bytes]] = (),
    synthetic: int = 0,
    limits: ExtractionLimits | None = None,
    extractor: Extractor | None = None,
    actor: str | None = None,
) -> IndustryAdded:
    """Create an industry, store its example files, and queue synthesis (``synthetic`` documents)
    and the training run that makes it live (predicted from its description, then its examples).

    Raises:
        Invalid: a bad name or count, or example files of which none could be read (nothing is
        created then). Conflict: the name exists (retired industries included).
    """
    industries.new_industry_name(engine=engine, name=name)  # before reading files for nothing
    synthesis.check_count(synthetic, allow_none=True)  # before creating what a refusal would leave
    limits = limits or ExtractionLimits()
    read = datasets.read_example_files(list(example_files), limits, extractor)
    if example_files and not read[0]:
        raise Invalid(
            f"None of the example files could be read ({_reasons(read[1])}); the industry was not created."
        )
    industry = industries.create_industry(engine=engine, name=name, description=description, actor=actor)
    added: dict = {"added": 0, "errors": []}
    if example_files:
        added = datasets.add_example_files(
            engine=engine,
            industry=industry.name,
            files=list(example_files),
            limits=limits,
            actor=actor,
            read=read,
        )
    # Always queue training, examples or not: the new industry is served once a version that knows
    # it is live (seconds), the same way whatever the timing, never by a guess a cache makes.
    training_task = queue_training(engine=engine, work=work, actor=actor)
    synthesis_task = None
    if synthetic:
        synthesis_task = synthesis.queue_synthesis(
            engine=engine, work=work, settings=settings, industry=industry.name, count=synthetic, actor=actor
        )
    return IndustryAdded(
        name=industry.name,
        description=industry.description,
        examples_added=added["added"],
        example_errors=added["errors"],
        synthesis_task=synthesis_task,
        training_task=training_task,
    )


def update_industry(
    *,
    engine: Engine,
    work: WorkSender,
    name: str,
    new_name: str | None = None,
    description: str | None = None,
    catch_all: bool | None = None,
    actor: str | None = None,
) -> IndustryChanged:
    """Rename, redescribe or re-role an industry (its examples and corrections follow) and queue the
    training that makes it live. Raises NotFound, Invalid or Conflict."""
    industry = industries.update_industry(
        engine=engine, name=name, new_name=new_name, description=description, catch_all=catch_all, actor=actor
    )
    return IndustryChanged(industry, queue_training(engine=engine, work=work, actor=actor))


def retire_industry(
    *, engine: Engine, work: WorkSender, name: str, actor: str | None = None
) -> IndustryChanged:
    """Stop predicting an industry (nothing is deleted) and queue training without it.

    Raises NotFound, or Conflict when fewer than two industries would stay active.
    """
    industry = industries.retire_industry(engine=engine, name=name, actor=actor)
    return IndustryChanged(industry, queue_training(engine=engine, work=work, actor=actor))


def restore_industry(
    *, engine: Engine, work: WorkSender, name: str, actor: str | None = None
) -> IndustryChanged:
    """Predict a retired industry again and queue the training that brings it back.

    Raises NotFound, or Conflict when it is active already.
    """
    industry = industries.restore_industry(engine=engine, name=name, actor=actor)
    return IndustryChanged(industry, queue_training(engine=engine, work=work, actor=actor))


def add_examples(
    *,
    engine: Engine,
    work: WorkSender,
    name: str,
    files: Sequence[tuple[str, bytes]],
    limits: ExtractionLimits | None = None,
    extractor: Extractor | None = None,
    actor: str | None = None,
) -> ExamplesAdded:
    """Store example files of an existing industry and queue the training that learns them.

    Raises:
        NotFound: no such industry. Conflict: it is retired, or every file is an example already.
        Invalid: no files, or none of them could be read.
    """
    industry = industries.existing_industry(engine=engine, name=name)
    if industry.status != "active":
        raise Conflict(f"Industry {industry.name!r} is retired: restore it before adding examples.")
    if not files:
        raise Invalid("Send at least one example file (multipart field 'files').")
    added = datasets.add_example_files(
        engine=engine,
        industry=name,
        files=list(files),
        limits=limits or ExtractionLimits(),
        actor=actor,
        extractor=extractor,
    )
    if not added["added"]:
        # Nothing to learn: no training run, and the caller is told why.
        unreadable = [e for e in added["errors"] if e["code"] != datasets.DUPLICATE]
        reasons = _reasons(unreadable)
        if len(unreadable) == len(files):
            raise Invalid(f"None of the example files could be read ({reasons}); nothing was added.")
        known = len(files) - len(unreadable)
        raise Conflict(
            f"Nothing was added: {known} of the files are examples already"
            + (f", and the rest could not be read ({reasons})." if reasons else ".")
        )
    return ExamplesAdded(
        industry=industry.name,
        examples_added=added["added"],
        example_errors=added["errors"],
        training_task=queue_training(engine=engine, work=work, actor=actor),
    )


def _reasons(errors: Sequence[dict[str, str]]) -> str:
    """Why files were not used, the first ten, for a refusal's message."""
    return "; ".join(f"{error['filename']}: {error['code']}" for error in errors[:10])
