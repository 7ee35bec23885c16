"""Uploads, jobs, batches and the review queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.concurrency import sync_to_thread
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, MultipartBody
from litestar.status_codes import HTTP_200_OK

from api.auth import actor, requires
from api.controllers.common import Exclude, Limit, Offset
from api.schemas import (
    Accepted,
    Batch,
    Page,
    ReviewClaimed,
    SkippedMember,
)
from core.errors import Invalid
from core.runtime import Runtime
from core.services import annotators, documents, jobs, review, similar
from core.services.annotators import AnnotatorsReport
from core.services.documents import BatchView, Submission, clean_filename
from core.services.jobs import JobText, JobView


class JobsController(Controller):
    path = "/api"
    tags = ["jobs"]

    @post(["/classify_file"], status_code=HTTP_200_OK, guards=[requires("annotator")])
    async def classify_file(
        self,
        request: Request,
        runtime: NamedDependency[Runtime],
        data: MultipartBody[dict[str, UploadFile]],
        wait: FromQuery[float] = 0.0,
    ) -> Accepted:
        """Upload one document (multipart field ``file``); returns the job to poll.

        A ZIP becomes a batch: one job per readable member, all sharing ``batch_id``. With
        ``?wait=SECONDS`` (up to 60) the answer waits for the first job to finish and includes it
        (on the event loop: a waiting client holds none of the threads other requests need).
        """
        upload = data.get("file")
        if not isinstance(upload, UploadFile):
            raise Invalid("Send the document as a multipart form field named 'file'.")
        if not 0 <= wait <= MAX_WAIT_SECONDS:
            raise Invalid(f"wait must be between 0 and {MAX_WAIT_SECONDS} seconds (got {wait}).")
        submission = await sync_to_thread(_submit, request, runtime, upload)
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
        finished = None
        if wait:  # on the event loop, like GET /api/jobs/{id}?wait=
            finished = await jobs.wait_for_job_async(engine=runtime.engine, job_id=first.id, seconds=wait)
        return Accepted(
            job_id=first.id,
            status=finished.status if finished else first.status,
            original_filename=first.original_filename,
            message="File received; classification queued.",
            batch_id=submission.batch_id,
            job_ids=[job.id for job in submission.jobs],
            skipped=_skipped(submission.skipped),
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
        # Every file of the form, whatever its field: 'files' and 'file' together lost the latter.
        uploads = [
            upload
            for value in data.values()
            for upload in (value if isinstance(value, list) else [value])
            if isinstance(upload, UploadFile)
        ]
        if not uploads:
            raise Invalid("Send the documents as multipart form fields named 'files'.")
        if len(uploads) > MAX_FILES_PER_BATCH:
            raise Invalid(f"At most {MAX_FILES_PER_BATCH} files per batch (got {len(uploads)}).")
        result = documents.upload_several(
            engine=runtime.engine,
            blobs=runtime.blobs,
            work=runtime.work,
            files=[documents.Upload(upload.file, upload.filename, upload.content_type) for upload in uploads],
            max_bytes=runtime.settings.max_upload_bytes,
            submitted_by=actor(request),
        )
        return Batch(
            batch_id=result.batch_id,
            job_ids=[job.id for job in result.jobs],
            skipped=_skipped(result.skipped),
            unpacking=result.unpacking,
        )

    @get("/jobs", sync_to_thread=True, guards=[requires("annotator")])
    def jobs(
        self,
        runtime: NamedDependency[Runtime],
        status: FromQuery[str | None] = None,
        needs_review: FromQuery[bool | None] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page:
        """Jobs, newest first, filtered by status and by whether they need review."""
        items, total = jobs.list_jobs(
            engine=runtime.engine, status=status, needs_review=needs_review, limit=limit, offset=offset
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
        limit: Limit = 50,
        offset: Offset = 0,
        exclude: Exclude = None,
    ) -> Page:
        """Predictions that need a person, most uncertain first, not labelled or claimed by anyone else
        (``?exclude=JOB_ID``, repeated: items the caller skipped; another upload of a skipped
        document is skipped too).

        ``?strategy=label_issues`` lists approved training examples instead: those the model,
        cross-validated, confidently places elsewhere (``example_id``, ``label``, ``suggested``),
        for a second look; correct one with ``POST /api/examples/{example_id}/relabel``.
        """
        if strategy == review.LABEL_ISSUES:
            issues, count = review.label_issue_queue(engine=runtime.engine, limit=limit, offset=offset)
            return Page(items=issues, total=count)
        items, total = review.review_queue(
            engine=runtime.engine,
            strategy=strategy,
            reason=reason,
            label=label,
            annotator=actor(request),
            limit=limit,
            offset=offset,
            exclude=exclude or (),
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
        exclude: Exclude = None,
    ) -> ReviewClaimed:
        """Claim the most uncertain item nobody else holds (for ``HERON_REVIEW_CLAIM_SECONDS``).

        To skip an item, give its claim back (``DELETE /api/review/{job_id}/claim``) and leave it
        out of the next call (``?exclude=JOB_ID``, repeated): the same item comes back otherwise.
        """
        who = actor(request) or "anonymous"
        seconds = runtime.settings.review_claim_seconds
        item = review.claim_next(
            engine=runtime.engine,
            annotator=who,
            seconds=seconds,
            strategy=strategy,
            reason=reason,
            label=label,
            exclude=exclude or (),
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
        held = review.claim(
            engine=runtime.engine,
            job_id=job_id,
            annotator=actor(request) or "anonymous",
            seconds=runtime.settings.review_claim_seconds,
        )
        job = jobs.get_job(engine=runtime.engine, job_id=job_id)
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
        """Give a claimed item back to the queue (skip). ``released`` is false when nobody held it;
        404 for an unknown job, 409 when another annotator holds it."""
        released = review.release_claim(
            engine=runtime.engine, job_id=job_id, annotator=actor(request) or "anonymous"
        )
        return {"job_id": job_id, "released": released}

    @get("/batches/{batch_id:str}", sync_to_thread=True, guards=[requires("annotator")])
    def batch(self, runtime: NamedDependency[Runtime], batch_id: FromPath[str]) -> BatchView:
        """A batch's jobs as they appear (a ZIP is unpacked by a worker) and what was skipped."""
        return documents.get_batch(engine=runtime.engine, batch_id=batch_id)

    @get("/jobs/{job_id:str}", guards=[requires("annotator")])
    async def job(
        self, runtime: NamedDependency[Runtime], job_id: FromPath[str], wait: FromQuery[float] = 0.0
    ) -> JobView:
        """A job with its prediction (or its error) and any correction.

        With ``?wait=SECONDS`` (up to 60) the answer comes as soon as the job has ended (COMPLETED or
        FAILED), or after that long with the job as it is: one request instead of polling.
        """
        if not 0 <= wait <= MAX_WAIT_SECONDS:
            raise Invalid(f"wait must be between 0 and {MAX_WAIT_SECONDS} seconds (got {wait}).")
        if wait:  # on the event loop: a waiting client holds no thread
            return await jobs.wait_for_job_async(engine=runtime.engine, job_id=job_id, seconds=wait)
        return await sync_to_thread(jobs.get_job, engine=runtime.engine, job_id=job_id)

    @get("/jobs/{job_id:str}/text", sync_to_thread=True, guards=[requires("annotator")])
    def text(self, runtime: NamedDependency[Runtime], job_id: FromPath[str]) -> JobText:
        """The extracted text, where each page lies in it (``pages``: number, start, end) and the
        evidence for the answer (``text == extracted_text[start:end]``)."""
        return jobs.job_text(engine=runtime.engine, job_id=job_id)

    @get("/jobs/{job_id:str}/similar", sync_to_thread=True, guards=[requires("annotator")])
    def similar(
        self,
        request: Request,
        runtime: NamedDependency[Runtime],
        job_id: FromPath[str],
        limit: FromQuery[int] = 10,
    ) -> Page:
        """The documents most like this job's that nobody has labelled yet, and nobody else holds
        for review (``X-Heron-User``), most similar first, each with the model's answer: label them
        together with ``POST /api/feedback/batch``."""
        if not 1 <= limit <= similar.MAX_SIMILAR:
            raise Invalid(f"limit must be between 1 and {similar.MAX_SIMILAR} (got {limit}).")
        items = similar.similar_documents(
            engine=runtime.engine, job_id=job_id, limit=limit, annotator=actor(request) or ""
        )
        return Page(items=items, total=len(items))

    @get("/annotators", sync_to_thread=True, guards=[requires("annotator")])
    def annotators(self, runtime: NamedDependency[Runtime]) -> AnnotatorsReport:
        """Each annotator's labels and accuracy on gold documents, and pairwise Cohen's kappa."""
        return annotators.annotator_report(engine=runtime.engine)


MAX_WAIT_SECONDS = 60
MAX_FILES_PER_BATCH = 100


def _submit(request: Request, runtime: Runtime, upload: UploadFile) -> Submission:
    return documents.upload(
        engine=runtime.engine,
        blobs=runtime.blobs,
        work=runtime.work,
        stream=upload.file,
        filename=upload.filename,
        client_content_type=upload.content_type,
        max_bytes=runtime.settings.max_upload_bytes,
        submitted_by=actor(request),
    )


def _skipped(items: list[documents.Skipped]) -> list[SkippedMember]:
    return [SkippedMember(filename=i.filename, code=i.code, message=i.message) for i in items]
