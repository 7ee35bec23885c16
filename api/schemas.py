"""Request and response bodies of the HTTP API (separate from the tables)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.services import MAX_ROW_ID


class SkippedMember(BaseModel):
    """A ZIP member that did not become a job."""

    filename: str
    code: str
    message: str


class Accepted(BaseModel):
    """The answer to an upload: the job to poll, or for a ZIP the batch to poll.

    A ZIP is unpacked by a worker, not in the request: ``job_id`` is then null and
    ``GET /api/batches/{batch_id}`` lists the member jobs as they appear (and skipped members).
    """

    job_id: str | None
    status: str
    original_filename: str
    message: str
    batch_id: str | None = Field(None, description="Shared by the jobs of one ZIP upload; null otherwise.")
    job_ids: list[str] = Field(
        default_factory=list, description="Every job this upload created (none yet for a ZIP)."
    )
    skipped: list[SkippedMember] = Field(
        default_factory=list, description="Uploads not queued (a ZIP's members: see the batch)."
    )
    job: Any | None = Field(None, description="With ?wait=SECONDS: the job as GET /api/jobs/{id} shows it.")


class Batch(BaseModel):
    """The answer to a multi-file upload: one batch, its jobs, and what was not queued.

    ZIPs among the files are unpacked by a worker: their members join the batch afterwards
    (``GET /api/batches/{batch_id}``), and ``unpacking`` counts them meanwhile.
    """

    batch_id: str | None
    job_ids: list[str]
    skipped: list[SkippedMember] = Field(default_factory=list)
    unpacking: int = Field(0, description="ZIPs of this batch a worker is unpacking into jobs.")


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    job_id: str = Field(min_length=1, max_length=64)
    corrected_classification: str = Field(min_length=1, max_length=100)


class FeedbackBatchCreate(BaseModel):
    """One label for several jobs in one action ("more like this")."""

    job_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1, max_length=200)
    corrected_classification: str = Field(min_length=1, max_length=100)


class Relabel(BaseModel):
    label: str = Field(min_length=1, max_length=100)


class FeedbackCreated(BaseModel):
    message: str
    job_id: str
    corrected_classification: str
    feedback_id: int
    status: str


class IndustryCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    industry_name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=5000)
    num_synthetic_documents: int = Field(0, ge=0, le=1000)


class IndustryCreated(BaseModel):
    message: str
    industry_name: str
    description: str
    num_synthetic_documents: int
    synthesis: str = Field(description="not_requested, queued or llm_not_configured.")
    synthesis_task_id: str | None = None
    training_task_id: str | None = None
    examples_added: int = 0
    example_errors: list[dict[str, str]] = Field(default_factory=list)


def true_or_false(value: object, name: str) -> object:
    """JSON true or false, not a word or number that reads like one ("yes" made an industry the
    catch-all; 1 asked for an incremental update while joining a full run)."""
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


class RetrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retrain_on_feedback_only: bool = False

    @field_validator("retrain_on_feedback_only", mode="before")
    @classmethod
    def _true_or_false(cls, value: object) -> object:
        return true_or_false(value, "retrain_on_feedback_only")


class RetrainAccepted(BaseModel):
    message: str
    retrain_on_feedback_only: bool
    task_id: str
    status: str


class ReviewClaimed(BaseModel):
    """A review item held for the caller (``job`` is null when nothing is left to review)."""

    job: Any | None
    claimed_by: str | None = None
    expires_at: str | None = None


class Health(BaseModel):
    status: str


class IdList(BaseModel):
    """Several rows at once (bulk approve / reject)."""

    ids: list[Annotated[int, Field(ge=1, le=MAX_ROW_ID)]] = Field(min_length=1, max_length=1000)

    @field_validator("ids", mode="before")
    @classmethod
    def _numbers_only(cls, value: Any) -> Any:
        # The API decodes leniently (true and "1" would both name row 1): a client bug must not
        # decide a row it never named.
        if isinstance(value, list) and any(type(item) is not int for item in value):
            raise ValueError("ids must be whole numbers")
        return value


class Page(BaseModel):
    """A page of a list: the items and how many there are in all."""

    items: list[Any]
    total: int


class Decided(BaseModel):
    """Corrections as decided, and the training run an approval queued (to follow it:
    ``GET /api/tasks/{training_task_id}``; none for rejections). When every approved document went
    to the gold set, the run ends having trained nothing, and says why."""

    items: list[Any]
    total: int
    training_task_id: str | None = None


class IndustryUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=5000)
    catch_all: bool | None = Field(
        None, description="Make this the industry that holds what no other claims (new ones carve from it)."
    )

    @field_validator("catch_all", mode="before")
    @classmethod
    def _true_or_false(cls, value: object) -> object:
        return true_or_false(value, "catch_all")


class ErrorBody(BaseModel):
    """Every error the API answers (api.errors): a stable ``code`` to branch on and a message for
    people; a malformed request also lists its problems under ``errors``."""

    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["Job 3f2a… does not exist."])
    errors: list[dict[str, Any]] | None = None
