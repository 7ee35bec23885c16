"""Heron's tables. Changing one means writing an Alembic migration in core/migrations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# Integer ids are INTEGER columns, 32-bit on PostgreSQL: a larger id overflows in the driver there (a
# 500, found by fuzzing the scaled shape; SQLite's integers are 64-bit, so the embedded shape never
# showed it). Whatever takes an id from outside (the API, the CLI) refuses one beyond this.
MAX_ROW_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


# Python functions rather than the builtins list and dict: pydantic inspects a default factory's
# signature on every construction, and for a builtin that means parsing its text signature
# (~0.2 ms each: a third of the cost of storing an upload).
def empty_list() -> list:
    return []


def empty_dict() -> dict:
    return {}


class JobStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class IndustryStatus(StrEnum):
    active = "active"
    retired = "retired"


class FeedbackStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class ExampleSource(StrEnum):
    starter = "starter"
    synthetic = "synthetic"
    feedback = "feedback"
    import_ = "import"


class Split(StrEnum):
    train = "train"
    holdout = "holdout"


class ExampleStatus(StrEnum):
    """Whether a training example may train: synthetic ones can wait for a person's approval."""

    approved = "approved"
    pending = "pending"
    rejected = "rejected"


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class ModelStatus(StrEnum):
    candidate = "candidate"
    active = "active"
    retired = "retired"


class Document(SQLModel, table=True):
    """An uploaded original, stored once per distinct content (sha256)."""

    __tablename__ = "documents"
    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(max_length=64, unique=True, index=True)
    original_name: str = Field(max_length=255)
    content_type: str = Field(default="", max_length=100, description="Sniffed from the bytes.")
    size: int
    storage_key: str = Field(max_length=255, description="Key of the original in the blob store.")
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    page_count: int | None = None
    extraction_method: str | None = Field(default=None, max_length=40)
    extraction_warnings: list[str] = Field(default_factory=empty_list, sa_column=Column(JSON))
    ocr_pages: list[int] = Field(
        default_factory=empty_list, sa_column=Column(JSON), description="Numbers of the pages read by OCR."
    )
    page_spans: list[list[int]] | None = Field(
        default=None,
        sa_column=Column(JSON, nullable=True),
        description="[page number, start, end] of each page with text, as offsets into text.",
    )
    # The document's static vector (core.classify.static: MiniLM's distilled word vectors), float16:
    # what "more like this" compares. Written when the document is classified.
    vector: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class Job(SQLModel, table=True):
    """One request to classify one document."""

    __tablename__ = "jobs"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    document_id: int = Field(foreign_key="documents.id", index=True)
    batch_id: str | None = Field(default=None, max_length=32, index=True)
    original_filename: str = Field(max_length=255)
    file_content_type: str = Field(default="", max_length=100)
    status: str = Field(default=JobStatus.PENDING, max_length=16, index=True)
    attempts: int = 0
    error_code: str | None = Field(default=None, max_length=40)
    error_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    submitted_by: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Prediction(SQLModel, table=True):
    """The model's answer for a job; at most one per job."""

    __tablename__ = "predictions"
    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", unique=True, index=True, max_length=32)
    model_version_id: int = Field(foreign_key="model_versions.id", index=True)
    label: str = Field(max_length=100, index=True)
    confidence: float
    scores: dict[str, float] = Field(default_factory=empty_dict, sa_column=Column(JSON))
    tier: str = Field(max_length=20)
    escalated: bool = False
    needs_review: bool = Field(default=False, index=True)
    review_reasons: list[str] = Field(default_factory=empty_list, sa_column=Column(JSON))
    # How unsure the scores are, by each of core.uncertainty's strategies (higher: less sure): the
    # review queue is ordered and paged by one of them in SQL.
    uncertainty_least_confidence: float = 0.0
    uncertainty_margin: float = 0.0
    uncertainty_entropy: float = 0.0
    # The passages that most support the answer: {text, start, end, label, score} (core.classify.evidence).
    evidence: list[dict[str, Any]] = Field(default_factory=empty_list, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class Industry(SQLModel, table=True):
    """A label the model can predict."""

    __tablename__ = "industries"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True, index=True)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    status: str = Field(default=IndustryStatus.active, max_length=16)
    catch_all: bool = Field(
        default=False, description="Holds what no other industry claims; new industries carve from it."
    )
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Feedback(SQLModel, table=True):
    """A person's label for a job, waiting for (or past) a reviewer's decision."""

    __tablename__ = "feedback"
    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True, max_length=32)
    label: str = Field(max_length=100)
    author: str | None = Field(default=None, max_length=100)
    status: str = Field(default=FeedbackStatus.pending, max_length=16, index=True)
    reviewer: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    reviewed_at: datetime | None = None


class TrainingExample(SQLModel, table=True):
    """A labelled text the model may learn from (split=train) or be judged on (split=holdout)."""

    __tablename__ = "training_examples"
    __table_args__ = (UniqueConstraint("content_hash", "label", "source"),)
    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    content_hash: str = Field(max_length=64, index=True)
    document_id: int | None = Field(default=None, foreign_key="documents.id")
    feedback_id: int | None = Field(default=None, foreign_key="feedback.id")
    label: str = Field(max_length=100, index=True)
    source: str = Field(max_length=16, index=True)
    split: str = Field(default=Split.train, max_length=16, index=True)
    origin: str | None = Field(default=None, max_length=255, description="File or prompt it came from.")
    status: str = Field(default=ExampleStatus.approved, max_length=16, index=True)
    meta: dict[str, Any] | None = Field(
        default=None,
        sa_column=Column(JSON, nullable=True),
        description="e.g. LLM model, prompt version, flags.",
    )
    created_at: datetime = Field(default_factory=utcnow)


class ModelVersion(SQLModel, table=True):
    """A trained model; exactly one is active at a time."""

    __tablename__ = "model_versions"
    id: int | None = Field(default=None, primary_key=True)
    parent_id: int | None = Field(default=None, foreign_key="model_versions.id")
    status: str = Field(default=ModelStatus.candidate, max_length=16, index=True)
    kind: str = Field(default="full", max_length=16, description="full or incremental.")
    artifact: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    artifact_sha256: str = Field(max_length=64)
    labels: list[str] = Field(default_factory=empty_list, sa_column=Column(JSON))
    metrics: dict[str, Any] = Field(default_factory=empty_dict, sa_column=Column(JSON))
    trained_on: dict[str, Any] = Field(default_factory=empty_dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)
    activated_at: datetime | None = None


class EvaluationReport(SQLModel, table=True):
    """How a model version did on one evaluation set."""

    __tablename__ = "evaluation_reports"
    id: int | None = Field(default=None, primary_key=True)
    model_version_id: int = Field(foreign_key="model_versions.id", index=True)
    dataset: str = Field(max_length=64)
    report: dict[str, Any] = Field(default_factory=empty_dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """Who did what, when."""

    __tablename__ = "audit_events"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str | None = Field(default=None, max_length=100)
    action: str = Field(max_length=64, index=True)
    subject_type: str = Field(max_length=32)
    subject_id: str = Field(max_length=64)
    details: dict[str, Any] = Field(default_factory=empty_dict, sa_column=Column(JSON))


class RefusedUpload(SQLModel, table=True):
    """A file of a multi-file upload that was refused (empty, too large, of an unsupported type …),
    kept beside its batch so ``GET /api/batches/{id}`` says later what the upload's answer said."""

    __tablename__ = "refused_uploads"
    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(max_length=32, index=True)
    filename: str = Field(max_length=255)
    code: str = Field(max_length=40)
    message: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Lease(SQLModel, table=True):
    """A named, expiring lock shared by every process on every machine (single-flight work)."""

    __tablename__ = "leases"
    name: str = Field(primary_key=True, max_length=64)
    owner: str = Field(max_length=64)
    expires_at: datetime


class Task(SQLModel, table=True):
    """A background task (training, synthesis) with its progress, for people and clients to follow."""

    __tablename__ = "tasks"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    kind: str = Field(max_length=32, index=True)
    status: str = Field(default=TaskStatus.PENDING, max_length=16, index=True)
    done: int = 0
    total: int = 0
    stage: str = Field(default="", max_length=100)
    params: dict[str, Any] = Field(default_factory=empty_dict, sa_column=Column(JSON))
    result: dict[str, Any] = Field(default_factory=empty_dict, sa_column=Column(JSON))
    error_code: str | None = Field(default=None, max_length=40)
    error_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    requested_by: str | None = Field(default=None, max_length=100)
    cancel_requested: bool = False
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ReviewClaim(SQLModel, table=True):
    """An annotator's short hold on a review item, so two people do not label the same document."""

    __tablename__ = "review_claims"
    job_id: str = Field(foreign_key="jobs.id", primary_key=True, max_length=32)
    claimed_by: str = Field(max_length=100)
    expires_at: datetime
