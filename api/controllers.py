"""HTTP in, core use case, HTTP out: one controller per resource, two-line handlers."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.concurrency import sync_to_thread
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, MultipartBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED
from pydantic import ValidationError

from api.auth import actor, requires
from api.openapi import IndustryCreateOperation
from api.schemas import (
    Accepted,
    Batch,
    FeedbackCreate,
    FeedbackCreated,
    Health,
    IdList,
    IndustryCreate,
    IndustryCreated,
    IndustryUpdate,
    Page,
    RetrainAccepted,
    RetrainRequest,
    ReviewClaimed,
    SkippedMember,
)
from core.blobs import CHUNK_SIZE
from core.db import session_scope
from core.db.tables import new_id
from core.errors import HeronError, Invalid, TooLarge
from core.runtime import Runtime
from core.services.documents import BatchView, Submission, clean_filename, get_batch
from core.services.examples import ExampleView, decide_examples, list_examples
from core.services.export import export_examples
from core.services.feedback import FeedbackView, decide, list_feedback, submit_feedback
from core.services.industries import list_industries
from core.services.jobs import JobView, get_job, list_jobs
from core.services.metrics import collect as collect_metrics
from core.services.metrics import render as render_metrics
from core.services.models import activate, list_versions, readiness, version_report
from core.services.review import claim, claim_next, release_claim, review_queue
from core.services.tasks import TaskView, get_task, list_tasks
from core.services.tasks import cancel as cancel_task
from workers import dispatch

# Database ids: anything outside a 63-bit integer is a 422 here, not an overflow in the driver.
RowId = Annotated[int, Parameter(ge=1, le=2**63 - 1)]


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
        if not submission.jobs:  # a ZIP: a worker unpacks it into the batch's jobs
            return Accepted(
                job_id=None,
                status="PENDING",
                original_filename=clean_filename(upload.filename),
                message=(
                    "ZIP received; a worker is unpacking it into one job per document: follow "
                    f"GET /api/batches/{submission.batch_id}."
                ),
                batch_id=submission.batch_id,
            )
        first = submission.jobs[0]
        finished = _wait_for(runtime, first.id, wait) if wait else None
        return Accepted(
            job_id=first.id,
            status=finished.status if finished else first.status,
            original_filename=first.original_filename,
            message="File received; classification queued.",
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
        jobs, skipped, refused, unpacking = [], [], [], 0
        batch_id = new_id()
        for upload in uploads:
            try:
                submission = _submit(request, runtime, upload, batch_id=batch_id)
            except HeronError as error:
                refused.append(
                    SkippedMember(filename=upload.filename or "", code=error.code, message=error.message)
                )
                continue
            jobs.extend(submission.jobs)
            skipped.extend(_skipped(submission))
            unpacking += submission.unpack_task_id is not None
        return Batch(
            batch_id=batch_id if jobs or unpacking else None,
            job_ids=[job.id for job in jobs],
            skipped=skipped + refused,
            unpacking=unpacking,
        )

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
        request: Request,
        runtime: NamedDependency[Runtime],
        strategy: FromQuery[str] = "least_confidence",
        reason: FromQuery[str | None] = None,
        label: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        offset: FromQuery[int] = 0,
    ) -> Page:
        """Predictions that need a person, most uncertain first, not labelled or claimed by anyone else."""
        with session_scope(runtime.engine) as session:
            items, total = review_queue(
                session=session,
                strategy=strategy,
                reason=reason,
                label=label,
                annotator=actor(request),
                **_paging(limit, offset),
            )
        return Page(items=items, total=total)

    @post("/review/next", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("annotator")])
    def review_next(
        self,
        request: Request,
        runtime: NamedDependency[Runtime],
        strategy: FromQuery[str] = "least_confidence",
        reason: FromQuery[str | None] = None,
        label: FromQuery[str | None] = None,
    ) -> ReviewClaimed:
        """Claim the most uncertain item nobody else holds (for ``HERON_REVIEW_CLAIM_SECONDS``)."""
        who = actor(request) or "anonymous"
        seconds = runtime.settings.review_claim_seconds
        item = claim_next(
            engine=runtime.engine,
            annotator=who,
            seconds=seconds,
            strategy=strategy,
            reason=reason,
            label=label,
        )
        if item is None:
            return ReviewClaimed(job=None)
        expires = datetime.now(UTC) + timedelta(seconds=seconds)
        return ReviewClaimed(job=item, claimed_by=who, expires_at=expires.isoformat())

    @post(
        "/review/{job_id:str}/claim",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        guards=[requires("annotator")],
    )
    def claim_item(
        self, request: Request, runtime: NamedDependency[Runtime], job_id: FromPath[str]
    ) -> ReviewClaimed:
        """Hold one item so other annotators are not shown it; 409 if someone else holds it."""
        held = claim(
            engine=runtime.engine,
            job_id=job_id,
            annotator=actor(request) or "anonymous",
            seconds=runtime.settings.review_claim_seconds,
        )
        with session_scope(runtime.engine) as session:
            job = get_job(session=session, job_id=job_id)
        return ReviewClaimed(job=job, claimed_by=held.claimed_by, expires_at=held.expires_at.isoformat())

    @delete(
        "/review/{job_id:str}/claim",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        guards=[requires("annotator")],
    )
    def release_item(
        self, request: Request, runtime: NamedDependency[Runtime], job_id: FromPath[str]
    ) -> dict:
        """Give a claimed item back to the queue (skip)."""
        release_claim(engine=runtime.engine, job_id=job_id, annotator=actor(request) or "anonymous")
        return {"job_id": job_id, "released": True}

    @get("/batches/{batch_id:str}", sync_to_thread=True, guards=[requires("annotator")])
    def batch(self, runtime: NamedDependency[Runtime], batch_id: FromPath[str]) -> BatchView:
        """A batch's jobs as they appear (a ZIP is unpacked by a worker) and what was skipped."""
        with session_scope(runtime.engine) as session:
            return get_batch(session=session, batch_id=batch_id)

    @get("/jobs/{job_id:str}", sync_to_thread=True, guards=[requires("annotator")])
    def job(self, runtime: NamedDependency[Runtime], job_id: FromPath[str]) -> JobView:
        """A job with its prediction (or its error) and any correction."""
        with session_scope(runtime.engine) as session:
            return get_job(session=session, job_id=job_id)


MAX_WAIT_SECONDS = 60
MAX_OFFSET = 10**9
MAX_FILES_PER_BATCH = 100


def _submit(
    request: Request, runtime: Runtime, upload: UploadFile, batch_id: str | None = None
) -> Submission:
    return dispatch.submit_upload(
        runtime,
        chunks=iter(lambda: upload.file.read(CHUNK_SIZE), b""),
        filename=upload.filename,
        client_content_type=upload.content_type,
        submitted_by=actor(request),
        batch_id=batch_id,
    )


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
        self, request: Request, runtime: NamedDependency[Runtime], feedback_id: RowId
    ) -> FeedbackView:
        """Approve one correction: it becomes training (or gold) data and the model updates."""
        return _decide(runtime, [feedback_id], approve=True, reviewer=actor(request))[0]

    @post(
        "/{feedback_id:int}/reject",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        guards=[requires("reviewer")],
    )
    def reject(self, request: Request, runtime: NamedDependency[Runtime], feedback_id: RowId) -> FeedbackView:
        """Reject one correction: it never trains anything."""
        return _decide(runtime, [feedback_id], approve=False, reviewer=actor(request))[0]

    @post("/approve", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("reviewer")])
    def approve_many(
        self, request: Request, runtime: NamedDependency[Runtime], data: JSONBody[IdList]
    ) -> Page:
        """Approve several corrections at once (all or none)."""
        items = _decide(runtime, data.ids, approve=True, reviewer=actor(request))
        return Page(items=items, total=len(items))


def _decide(runtime: Runtime, ids: list[int], *, approve: bool, reviewer: str | None) -> list[FeedbackView]:
    decided = decide(engine=runtime.engine, feedback_ids=ids, approve=approve, reviewer=reviewer)
    if approve:
        dispatch.request_training(runtime, reviewer, incremental=True)
    return decided


def _paging(limit: int, offset: int) -> dict[str, int]:
    if not 1 <= limit <= 1000 or not 0 <= offset <= MAX_OFFSET:
        raise Invalid(f"limit must be 1–1000 and offset ≥ 0 (got limit={limit}, offset={offset}).")
    return {"limit": limit, "offset": offset}


class ExamplesController(Controller):
    path = "/api/examples"
    tags = ["examples"]

    @get("/", sync_to_thread=True, guards=[requires("annotator")])
    def list(
        self,
        runtime: NamedDependency[Runtime],
        source: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        label: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        offset: FromQuery[int] = 0,
    ) -> Page:
        """Training examples, newest first; ``?source=synthetic&status=pending`` is the approval queue."""
        with session_scope(runtime.engine) as session:
            items, total = list_examples(
                session=session, source=source, status=status, label=label, **_paging(limit, offset)
            )
        return Page(items=items, total=total)

    @post("/approve", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("reviewer")])
    def approve(self, request: Request, runtime: NamedDependency[Runtime], data: JSONBody[IdList]) -> Page:
        """Approve pending examples (all or none); they train in the run this queues (incremental when
        the active model has not seen examples that old, else a full retrain)."""
        items = _decide_examples(runtime, data.ids, approve=True, who=actor(request))
        return Page(items=items, total=len(items))

    @post("/reject", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("reviewer")])
    def reject(self, request: Request, runtime: NamedDependency[Runtime], data: JSONBody[IdList]) -> Page:
        """Reject pending examples (all or none): they never train."""
        items = _decide_examples(runtime, data.ids, approve=False, who=actor(request))
        return Page(items=items, total=len(items))


def _decide_examples(
    runtime: Runtime, ids: list[int], *, approve: bool, who: str | None
) -> list[ExampleView]:
    decided = decide_examples(engine=runtime.engine, ids=ids, approve=approve, actor=who)
    if approve:
        # An incremental run refits on every approved example, however old: no full retrain needed.
        dispatch.request_training(runtime, who, incremental=True)
    return decided


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
    def activate(self, request: Request, runtime: NamedDependency[Runtime], version_id: RowId) -> dict:
        """Make this version the active one (promotion or rollback); every process follows within seconds."""
        with session_scope(runtime.engine) as session:
            activate(session, version_id, actor=actor(request))
        return {"id": version_id, "status": "active"}

    @get("/{version_id:int}/report", sync_to_thread=True, guards=[requires("annotator")])
    def report(self, runtime: NamedDependency[Runtime], version_id: RowId) -> dict:
        """The version's evaluation report(s)."""
        with session_scope(runtime.engine) as session:
            return version_report(session, version_id)


class IndustriesController(Controller):
    path = "/api/industries"
    tags = ["industries"]

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        guards=[requires("reviewer")],
        operation_class=IndustryCreateOperation,
    )
    async def create(self, request: Request, runtime: NamedDependency[Runtime]) -> IndustryCreated:
        """Add an industry: predictable at once from its description; example files (multipart field
        ``files``) and synthetic documents (when an LLM is configured) then train it.

        Send JSON (``industry_name``, ``description``, ``num_synthetic_documents``) or the same
        fields as a multipart form with any number of ``files``.
        """
        fields, files = await _industry_form(request, runtime)
        added = await sync_to_thread(
            dispatch.add_industry,
            runtime,
            name=fields.industry_name,
            description=fields.description,
            example_files=files,
            synthetic=fields.num_synthetic_documents,
            actor=actor(request),
        )
        synthesis = added.synthesis_task
        return IndustryCreated(
            message=f"Industry {added.name!r} created; predicted from its description until it has examples.",
            industry_name=added.name,
            description=added.description,
            num_synthetic_documents=fields.num_synthetic_documents,
            synthesis=("not_requested" if synthesis is None else synthesis.error_code or "queued"),
            synthesis_task_id=synthesis.id if synthesis else None,
            training_task_id=added.training_task.id if added.training_task else None,
            examples_added=added.examples_added,
            example_errors=added.example_errors,
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
        """Rename or redescribe an industry, or make it the catch-all (its examples follow; training
        is queued)."""
        industry, task = dispatch.update_industry(
            runtime,
            name=name,
            new_name=data.name,
            description=data.description,
            catch_all=data.catch_all,
            actor=actor(request),
        )
        return {
            "name": industry.name,
            "description": industry.description,
            "status": industry.status,
            "catch_all": industry.catch_all,
            "training_task_id": task.id,
        }

    @delete("/{name:str}", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("reviewer")])
    def retire(self, request: Request, runtime: NamedDependency[Runtime], name: FromPath[str]) -> dict:
        """Retire an industry: no longer predicted; its data and history stay."""
        industry = dispatch.retire_industry(runtime, name=name, actor=actor(request))
        return {"name": industry.name, "status": industry.status}


MAX_EXAMPLE_FILES = 200


async def _industry_form(
    request: Request, runtime: Runtime
) -> tuple[IndustryCreate, list[tuple[str, bytes]]]:
    """The fields of an industry creation, from a JSON body or a multipart form with ``files``."""
    content_type = request.headers.get("content-type", "")
    files: list[tuple[str, bytes]] = []
    try:
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            raw = {key: form.get(key) for key in ("industry_name", "description", "num_synthetic_documents")}
            uploads = (
                [item for item in form.getall("files") if isinstance(item, UploadFile)]
                if "files" in form
                else []
            )
            if len(uploads) > MAX_EXAMPLE_FILES:
                raise Invalid(f"At most {MAX_EXAMPLE_FILES} example files (got {len(uploads)}).")
            for upload in uploads:
                data = await upload.read()
                if len(data) > runtime.settings.max_upload_bytes:
                    raise TooLarge(
                        f"Example file {upload.filename!r} is over {runtime.settings.max_upload_mb} MB."
                    )
                files.append((clean_filename(upload.filename), data))
            fields = IndustryCreate.model_validate({k: v for k, v in raw.items() if v not in (None, "")})
        else:
            body = await request.body()
            fields = IndustryCreate.model_validate_json(body or b"null")
    except ValidationError as error:
        raise Invalid("Invalid industry: " + "; ".join(_describe(e) for e in error.errors())) from error
    return fields, files


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "body"
    return f"{where}: {error.get('msg', 'invalid')}"


class TrainingController(Controller):
    path = "/api"
    tags = ["training"]

    @post("/retrain_model", status_code=HTTP_202_ACCEPTED, sync_to_thread=True, guards=[requires("admin")])
    def retrain(
        self,
        request: Request,
        runtime: NamedDependency[Runtime],
        data: JSONBody[RetrainRequest | None] = None,
    ) -> RetrainAccepted:
        """Queue a full retrain from all stored data, or (feedback only) an incremental update.

        A request arriving while an equivalent one still waits joins it (same ``task_id``).
        """
        body = data or RetrainRequest()
        task = dispatch.request_training(runtime, actor(request), incremental=body.retrain_on_feedback_only)
        return RetrainAccepted(
            message="Retraining queued; follow it at /api/tasks/" + task.id,
            retrain_on_feedback_only=body.retrain_on_feedback_only,
            task_id=task.id,
            status=task.status,
        )


class TasksController(Controller):
    path = "/api/tasks"
    tags = ["tasks"]

    @get("/", sync_to_thread=True, guards=[requires("annotator")])
    def list(
        self,
        runtime: NamedDependency[Runtime],
        kind: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
        offset: FromQuery[int] = 0,
    ) -> Page:
        """Background tasks (training, synthesis), newest first, with status and progress."""
        with session_scope(runtime.engine) as session:
            items, total = list_tasks(session=session, kind=kind, status=status, **_paging(limit, offset))
        return Page(items=items, total=total)

    @get("/{task_id:str}", sync_to_thread=True, guards=[requires("annotator")])
    def get(self, runtime: NamedDependency[Runtime], task_id: FromPath[str]) -> TaskView:
        """One task: ``status`` (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED), ``progress``, ``result``."""
        with session_scope(runtime.engine) as session:
            return get_task(session=session, task_id=task_id)

    @post(
        "/{task_id:str}/cancel", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("reviewer")]
    )
    def cancel(self, request: Request, runtime: NamedDependency[Runtime], task_id: FromPath[str]) -> TaskView:
        """Cancel a task: a waiting one at once, a running one at its next progress step."""
        return cancel_task(engine=runtime.engine, task_id=task_id, actor=actor(request))


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


@get("/metrics", tags=["health"], sync_to_thread=True, guards=[requires("annotator")])
def metrics(runtime: NamedDependency[Runtime]) -> Response:
    """Prometheus metrics for the whole deployment (read from the database): jobs by status, queue
    depth, upload→result latency, escalation and review rates, tasks, the active model version."""
    with session_scope(runtime.engine) as session:
        body = render_metrics(collect_metrics(session))
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@get("/health", tags=["health"])
async def health(request: Request) -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")
