"""HTTP in, core use case, HTTP out: one controller per resource, two-line handlers."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, MultipartBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from api.schemas import (
    Accepted,
    FeedbackCreate,
    FeedbackCreated,
    Health,
    IndustryCreate,
    IndustryCreated,
    RetrainAccepted,
    RetrainRequest,
    SkippedMember,
)
from core.blobs import CHUNK_SIZE
from core.db import session_scope
from core.errors import Invalid
from core.runtime import Runtime
from core.services.documents import submit_batch
from core.services.feedback import submit_feedback
from core.services.industries import create_industry
from core.services.jobs import JobView, get_job
from workers import dispatch


class JobsController(Controller):
    path = "/api"
    tags = ["jobs"]

    @post(["/classify_file"], status_code=HTTP_200_OK, sync_to_thread=True)
    def classify_file(
        self,
        runtime: NamedDependency[Runtime],
        data: MultipartBody[dict[str, UploadFile]],
    ) -> Accepted:
        """Upload one document (multipart field ``file``); returns the job to poll.

        A ZIP becomes a batch: one job per readable member, all sharing ``batch_id``.
        """
        upload = data.get("file")
        if not isinstance(upload, UploadFile):
            raise Invalid("Send the document as a multipart form field named 'file'.")
        submission = submit_batch(
            engine=runtime.engine,
            blobs=runtime.blobs,
            chunks=iter(lambda: upload.file.read(CHUNK_SIZE), b""),
            filename=upload.filename,
            client_content_type=upload.content_type,
            max_bytes=runtime.settings.max_upload_bytes,
            limits=runtime.extraction_limits,
        )
        for job in submission.jobs:
            dispatch.send_classify(job.id)
        first = submission.jobs[0]
        return Accepted(
            job_id=first.id,
            status=first.status,
            original_filename=first.original_filename,
            message=(
                f"ZIP received; {len(submission.jobs)} documents queued for classification."
                if submission.batch_id
                else "File received; classification queued."
            ),
            batch_id=submission.batch_id,
            job_ids=[job.id for job in submission.jobs],
            skipped=[
                SkippedMember(filename=item.filename, code=item.code, message=item.message)
                for item in submission.skipped
            ],
        )

    @get("/jobs/{job_id:str}", sync_to_thread=True)
    def job(self, runtime: NamedDependency[Runtime], job_id: FromPath[str]) -> JobView:
        """A job with its prediction (or its error) and any correction."""
        with session_scope(runtime.engine) as session:
            return get_job(session=session, job_id=job_id)


class FeedbackController(Controller):
    path = "/api/feedback"
    tags = ["feedback"]

    @post("/", status_code=HTTP_200_OK, sync_to_thread=True)
    def create(self, runtime: NamedDependency[Runtime], data: JSONBody[FeedbackCreate]) -> FeedbackCreated:
        """Correct (or confirm) a job's industry; the correction waits for a reviewer."""
        feedback = submit_feedback(
            engine=runtime.engine, job_id=data.job_id, label=data.corrected_classification
        )
        return FeedbackCreated(
            message="Feedback recorded; it trains the model once a reviewer approves it.",
            job_id=feedback.job_id,
            corrected_classification=feedback.label,
            feedback_id=feedback.id,
            status=feedback.status,
        )


class IndustriesController(Controller):
    path = "/api/industries"
    tags = ["industries"]

    @post("/", status_code=HTTP_202_ACCEPTED, sync_to_thread=True)
    def create(self, runtime: NamedDependency[Runtime], data: JSONBody[IndustryCreate]) -> IndustryCreated:
        """Add an industry (synthetic examples are generated when an LLM is configured)."""
        industry = create_industry(
            engine=runtime.engine, name=data.industry_name, description=data.description
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


class TrainingController(Controller):
    path = "/api"
    tags = ["training"]

    @post("/retrain_model", status_code=HTTP_202_ACCEPTED, sync_to_thread=True)
    def retrain(self, data: JSONBody[RetrainRequest | None] = None) -> RetrainAccepted:
        """Queue a full retrain from all stored training data."""
        request = data or RetrainRequest()
        dispatch.send_train()
        return RetrainAccepted(
            message="Retraining queued.", retrain_on_feedback_only=request.retrain_on_feedback_only
        )


@get("/health", tags=["health"])
async def health(request: Request) -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")
