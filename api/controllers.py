"""HTTP in, core use case, HTTP out: one controller per resource, two-line handlers."""

from __future__ import annotations

import time
from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, MultipartBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from api.auth import actor, requires
from api.schemas import (
    Accepted,
    Batch,
    FeedbackCreate,
    FeedbackCreated,
    FeedbackIds,
    Health,
    IndustryCreate,
    IndustryCreated,
    IndustryUpdate,
    Page,
    RetrainAccepted,
    RetrainRequest,
    SkippedMember,
)
from core.blobs import CHUNK_SIZE
from core.db import session_scope
from core.errors import HeronError, Invalid
from core.runtime import Runtime
from core.services.documents import Submission, group_as_batch, submit_batch
from core.services.export import export_examples
from core.services.feedback import FeedbackView, decide, list_feedback, submit_feedback
from core.services.industries import create_industry, list_industries, retire_industry, update_industry
from core.services.jobs import JobView, get_job, list_jobs
from core.services.models import activate, list_versions, readiness, version_report
from core.services.review import review_queue
from workers import dispatch


class JobsController(Controller):
    path = "/api"
    tags = ["jobs"]

    @post(["/classify_file"], status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("annotator")])
    def classify_file(
        self,
        request: Request,
        runtime: NamedDependency[Runtime],
        data: MultipartBody[dict[str, UploadFile]],
        wait: FromQuery[float] = 0.0,
    ) -> Accepted:
        """Upload one document (multipart field ``file``); returns the job to poll.

        A ZIP becomes a batch: one job per readable member, all sharing ``batch_id``. With
        ``?wait=SECONDS`` (up to 60) the answer waits for the first job to finish and includes it.
        """
        upload = data.get("file")
        if not isinstance(upload, UploadFile):
            raise Invalid("Send the document as a multipart form field named 'file'.")
        if not 0 <= wait <= MAX_WAIT_SECONDS:
            raise Invalid(f"wait must be between 0 and {MAX_WAIT_SECONDS} seconds (got {wait}).")
        submission = _submit(request, runtime, upload)
        first = submission.jobs[0]
        finished = _wait_for(runtime, first.id, wait) if wait else None
        return Accepted(
            job_id=first.id,
            status=finished.status if finished else first.status,
            original_filename=first.original_filename,
            message=(
                f"ZIP received; {len(submission.jobs)} documents queued for classification."
                if submission.batch_id
                else "File received; classification queued."
            ),
            batch_id=submission.batch_id,
            job_ids=[job.id for job in submission.jobs],
            skipped=_skipped(submission),
            job=finished,
        )

    @post(["/classify_files"], status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("annotator")])
    def classify_files(
        self,
        request: Request,
        runtime: NamedDependency[Runtime],
        data: MultipartBody[dict[str, Any]],
    ) -> Batch:
        """Upload several documents (repeated multipart field ``files``) or one ZIP, as one batch."""
        uploads = data.get("files") or data.get("file") or []
        uploads = uploads if isinstance(uploads, list) else [uploads]
        if not uploads or not all(isinstance(u, UploadFile) for u in uploads):
            raise Invalid("Send the documents as multipart form fields named 'files'.")
        if len(uploads) > MAX_FILES_PER_BATCH:
            raise Invalid(f"At most {MAX_FILES_PER_BATCH} files per batch (got {len(uploads)}).")
        jobs, skipped, refused = [], [], []
        for upload in uploads:
            try:
                submission = _submit(request, runtime, upload)
            except HeronError as error:
                refused.append(
                    SkippedMember(filename=upload.filename or "", code=error.code, message=error.message)
                )
                continue
            jobs.extend(submission.jobs)
            skipped.extend(_skipped(submission))
        batch_id = group_as_batch(engine=runtime.engine, job_ids=[job.id for job in jobs]) if jobs else None
        return Batch(batch_id=batch_id, job_ids=[job.id for job in jobs], skipped=skipped + refused)

    @get("/jobs", sync_to_thread=True, guards=[requires("annotator")])
    def jobs(
        self,
        runtime: NamedDependency[Runtime],
        status: FromQuery[str | None] = None,
        needs_review: FromQuery[bool | None] = None,
        limit: FromQuery[int] = 50,
        offset: FromQuery[int] = 0,
    ) -> Page:
        """Jobs, newest first, filtered by status and by whether they need review."""
        with session_scope(runtime.engine) as session:
            items, total = list_jobs(
                session=session, status=status, needs_review=needs_review, **_paging(limit, offset)
            )
        return Page(items=items, total=total)

    @get("/review", sync_to_thread=True, guards=[requires("annotator")])
    def review(
        self,
        runtime: NamedDependency[Runtime],
        strategy: FromQuery[str] = "least_confidence",
        reason: FromQuery[str | None] = None,
        label: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        offset: FromQuery[int] = 0,
    ) -> Page:
        """Predictions that need a person, most uncertain first, not yet labelled by anyone."""
        with session_scope(runtime.engine) as session:
            items, total = review_queue(
                session=session, strategy=strategy, reason=reason, label=label, **_paging(limit, offset)
            )
        return Page(items=items, total=total)

    @get("/jobs/{job_id:str}", sync_to_thread=True, guards=[requires("annotator")])
    def job(self, runtime: NamedDependency[Runtime], job_id: FromPath[str]) -> JobView:
        """A job with its prediction (or its error) and any correction."""
        with session_scope(runtime.engine) as session:
            return get_job(session=session, job_id=job_id)


MAX_WAIT_SECONDS = 60
MAX_FILES_PER_BATCH = 100


def _submit(request: Request, runtime: Runtime, upload: UploadFile) -> Submission:
    """Store one upload, create its job(s) and send them to the queue (after the commit)."""
    submission = submit_batch(
        engine=runtime.engine,
        blobs=runtime.blobs,
        chunks=iter(lambda: upload.file.read(CHUNK_SIZE), b""),
        filename=upload.filename,
        client_content_type=upload.content_type,
        max_bytes=runtime.settings.max_upload_bytes,
        submitted_by=actor(request),
        limits=runtime.extraction_limits,
    )
    for job in submission.jobs:
        dispatch.send_classify(job.id)
    return submission


def _skipped(submission: Submission) -> list[SkippedMember]:
    return [SkippedMember(filename=i.filename, code=i.code, message=i.message) for i in submission.skipped]


def _wait_for(runtime: Runtime, job_id: str, seconds: float) -> JobView:
    deadline = time.monotonic() + seconds
    while True:
        with session_scope(runtime.engine) as session:
            view = get_job(session=session, job_id=job_id)
        if view.status in ("COMPLETED", "FAILED") or time.monotonic() >= deadline:
            return view
        time.sleep(0.05)


class FeedbackController(Controller):
    path = "/api/feedback"
    tags = ["feedback"]

    @post("/", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("annotator")])
    def create(
        self, request: Request, runtime: NamedDependency[Runtime], data: JSONBody[FeedbackCreate]
    ) -> FeedbackCreated:
        """Correct (or confirm) a job's industry; the correction waits for a reviewer."""
        feedback = submit_feedback(
            engine=runtime.engine,
            job_id=data.job_id,
            label=data.corrected_classification,
            author=actor(request),
        )
        return FeedbackCreated(
            message="Feedback recorded; it trains the model once a reviewer approves it.",
            job_id=feedback.job_id,
            corrected_classification=feedback.label,
            feedback_id=feedback.id,
            status=feedback.status,
        )

    @get("/", sync_to_thread=True, guards=[requires("annotator")])
    def list(
        self,
        runtime: NamedDependency[Runtime],
        status: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        offset: FromQuery[int] = 0,
    ) -> Page:
        """Corrections with who made them, the model's answer and disagreements between annotators."""
        with session_scope(runtime.engine) as session:
            items, total = list_feedback(session=session, status=status, **_paging(limit, offset))
        return Page(items=items, total=total)

    @post(
        "/{feedback_id:int}/approve",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        guards=[requires("reviewer")],
    )
    def approve(
        self, request: Request, runtime: NamedDependency[Runtime], feedback_id: FromPath[int]
    ) -> FeedbackView:
        """Approve one correction: it becomes training (or gold) data and the model updates."""
        return _decide(runtime, [feedback_id], approve=True, reviewer=actor(request))[0]

    @post(
        "/{feedback_id:int}/reject",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        guards=[requires("reviewer")],
    )
    def reject(
        self, request: Request, runtime: NamedDependency[Runtime], feedback_id: FromPath[int]
    ) -> FeedbackView:
        """Reject one correction: it never trains anything."""
        return _decide(runtime, [feedback_id], approve=False, reviewer=actor(request))[0]

    @post("/approve", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("reviewer")])
    def approve_many(
        self, request: Request, runtime: NamedDependency[Runtime], data: JSONBody[FeedbackIds]
    ) -> Page:
        """Approve several corrections at once (all or none)."""
        items = _decide(runtime, data.ids, approve=True, reviewer=actor(request))
        return Page(items=items, total=len(items))


def _decide(runtime: Runtime, ids: list[int], *, approve: bool, reviewer: str | None) -> list[FeedbackView]:
    decided = decide(engine=runtime.engine, feedback_ids=ids, approve=approve, reviewer=reviewer)
    if approve:
        dispatch.send_train(reviewer, incremental=True)
    return decided


def _paging(limit: int, offset: int) -> dict[str, int]:
    if not 1 <= limit <= 1000 or offset < 0:
        raise Invalid(f"limit must be 1–1000 and offset ≥ 0 (got limit={limit}, offset={offset}).")
    return {"limit": limit, "offset": offset}


class ModelsController(Controller):
    path = "/api/models"
    tags = ["models"]

    @get("/", sync_to_thread=True, guards=[requires("annotator")])
    def list(self, runtime: NamedDependency[Runtime]) -> Page:
        """Every model version with its status, parent and headline metrics."""
        with session_scope(runtime.engine) as session:
            items = list_versions(session)
        return Page(items=items, total=len(items))

    @post(
        "/{version_id:int}/activate", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("admin")]
    )
    def activate(
        self, request: Request, runtime: NamedDependency[Runtime], version_id: FromPath[int]
    ) -> dict:
        """Make this version the active one (promotion or rollback); every process follows within seconds."""
        with session_scope(runtime.engine) as session:
            activate(session, version_id, actor=actor(request))
        return {"id": version_id, "status": "active"}

    @get("/{version_id:int}/report", sync_to_thread=True, guards=[requires("annotator")])
    def report(self, runtime: NamedDependency[Runtime], version_id: FromPath[int]) -> dict:
        """The version's evaluation report(s)."""
        with session_scope(runtime.engine) as session:
            return version_report(session, version_id)


class IndustriesController(Controller):
    path = "/api/industries"
    tags = ["industries"]

    @post("/", status_code=HTTP_202_ACCEPTED, sync_to_thread=True, guards=[requires("reviewer")])
    def create(
        self, request: Request, runtime: NamedDependency[Runtime], data: JSONBody[IndustryCreate]
    ) -> IndustryCreated:
        """Add an industry (synthetic examples are generated when an LLM is configured)."""
        industry = create_industry(
            engine=runtime.engine, name=data.industry_name, description=data.description, actor=actor(request)
        )
        synthesis = "not_requested"
        if data.num_synthetic_documents:
            synthesis = (
                "queued"
                if runtime.settings.openai_api_key or runtime.settings.llm_base_url
                else "llm_not_configured"
            )
        return IndustryCreated(
            message=f"Industry {industry.name!r} created.",
            industry_name=industry.name,
            description=industry.description,
            num_synthetic_documents=data.num_synthetic_documents,
            synthesis=synthesis,
        )

    @get("/", sync_to_thread=True, guards=[requires("annotator")])
    def list(self, runtime: NamedDependency[Runtime]) -> Page:
        """Every industry with its status and training examples counted by source."""
        with session_scope(runtime.engine) as session:
            items = list_industries(session=session)
        return Page(items=items, total=len(items))

    @patch("/{name:str}", sync_to_thread=True, guards=[requires("reviewer")])
    def update(
        self,
        request: Request,
        runtime: NamedDependency[Runtime],
        name: FromPath[str],
        data: JSONBody[IndustryUpdate],
    ) -> dict:
        """Rename or redescribe an industry (its examples follow; a full retrain is queued)."""
        industry = update_industry(
            engine=runtime.engine,
            name=name,
            new_name=data.name,
            description=data.description,
            actor=actor(request),
        )
        dispatch.send_train(actor(request))
        return {"name": industry.name, "description": industry.description, "status": industry.status}

    @delete("/{name:str}", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("reviewer")])
    def retire(self, request: Request, runtime: NamedDependency[Runtime], name: FromPath[str]) -> dict:
        """Retire an industry: no longer predicted; its data and history stay."""
        industry = retire_industry(engine=runtime.engine, name=name, actor=actor(request))
        return {"name": industry.name, "status": industry.status}


class TrainingController(Controller):
    path = "/api"
    tags = ["training"]

    @post("/retrain_model", status_code=HTTP_202_ACCEPTED, sync_to_thread=True, guards=[requires("admin")])
    def retrain(self, request: Request, data: JSONBody[RetrainRequest | None] = None) -> RetrainAccepted:
        """Queue a full retrain from all stored data, or (feedback only) an incremental update."""
        body = data or RetrainRequest()
        dispatch.send_train(actor(request), incremental=body.retrain_on_feedback_only)
        return RetrainAccepted(
            message="Retraining queued.", retrain_on_feedback_only=body.retrain_on_feedback_only
        )


@get("/api/export", tags=["export"], sync_to_thread=True, guards=[requires("reviewer")])
def export(
    runtime: NamedDependency[Runtime],
    format: FromQuery[str] = "jsonl",
    source: FromQuery[str | None] = None,
    label: FromQuery[str | None] = None,
) -> Response:
    """Labelled data as JSONL or CSV, filterable by source (feedback, import, …) and label."""
    with session_scope(runtime.engine) as session:
        body = "".join(export_examples(session=session, fmt=format, source=source, label=label))
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="heron-export.{format}"'},
    )


@get("/ready", tags=["health"], sync_to_thread=True)
def ready(runtime: NamedDependency[Runtime]) -> Response:
    """Readiness: the database answers, the broker is reachable and a model is active."""
    checks = {**readiness(runtime.engine), "broker": dispatch.broker_status(runtime.settings)}
    ok = (
        checks["database"] == "ok"
        and checks["model"].startswith("version")
        and not checks["broker"].startswith("unreachable")
    )
    body = {"status": "ready" if ok else "not_ready", "checks": checks}
    if not ok:
        body.update(
            code="unavailable",
            message="Heron is not ready: " + ", ".join(f"{k} {v}" for k, v in checks.items()),
        )
    return Response(body, status_code=200 if ok else 503)


@get("/health", tags=["health"])
async def health(request: Request) -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")
