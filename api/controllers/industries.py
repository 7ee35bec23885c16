"""Industries: add (with example files), rename, redescribe, retire."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.concurrency import sync_to_thread
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED
from pydantic import ValidationError

from api.auth import actor, requires
from api.openapi import IndustryCreateOperation
from api.schemas import (
    IndustryCreate,
    IndustryCreated,
    IndustryUpdate,
    Page,
)
from core.errors import Invalid, TooLarge
from core.runtime import Runtime
from core.services import industries, taxonomy
from core.services.documents import clean_filename


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
        """Add an industry: predicted from its description once the training run it queues
        (``training_task_id``) makes a version that knows it live; example files (multipart field
        ``files``) and synthetic documents (when an LLM is configured) then train it. When none of
        the files can be read it is 422 and nothing is created.

        Send JSON (``industry_name``, ``description``, ``num_synthetic_documents``) or the same
        fields as a multipart form with any number of ``files``.
        """
        fields, files = await _industry_form(request, runtime)
        added = await sync_to_thread(
            taxonomy.add_industry,
            engine=runtime.engine,
            work=runtime.work,
            settings=runtime.settings,
            name=fields.industry_name,
            description=fields.description,
            example_files=files,
            synthetic=fields.num_synthetic_documents,
            limits=runtime.extraction_limits,
            extractor=runtime.extractor if files else None,
            actor=actor(request),
        )
        synthesis = added.synthesis_task
        return IndustryCreated(
            message=(
                f"Industry {added.name!r} created; it is predicted once the training run "
                "(training_task_id) makes a version that knows it live: from its description, then "
                "its examples."
            ),
            industry_name=added.name,
            description=added.description,
            num_synthetic_documents=fields.num_synthetic_documents,
            synthesis=("not_requested" if synthesis is None else synthesis.error_code or "queued"),
            synthesis_task_id=synthesis.id if synthesis else None,
            training_task_id=added.training_task.id,
            examples_added=added.examples_added,
            example_errors=added.example_errors,
        )

    @get("/", sync_to_thread=True, guards=[requires("annotator")])
    def list(self, runtime: NamedDependency[Runtime]) -> Page:
        """Every industry with its status and training examples counted by source."""
        items = industries.list_industries(engine=runtime.engine)
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
        changed = taxonomy.update_industry(
            engine=runtime.engine,
            work=runtime.work,
            name=name,
            new_name=data.name,
            description=data.description,
            catch_all=data.catch_all,
            actor=actor(request),
        )
        industry = changed.industry
        return {
            "name": industry.name,
            "description": industry.description,
            "status": industry.status,
            "catch_all": industry.catch_all,
            "training_task_id": changed.training_task.id,
        }

    @delete("/{name:str}", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("reviewer")])
    def retire(self, request: Request, runtime: NamedDependency[Runtime], name: FromPath[str]) -> dict:
        """Retire an industry: no longer predicted; its data and history stay."""
        retired = taxonomy.retire_industry(
            engine=runtime.engine, work=runtime.work, name=name, actor=actor(request)
        )
        return _changed(retired)

    @post("/{name:str}/restore", status_code=HTTP_200_OK, sync_to_thread=True, guards=[requires("reviewer")])
    def restore(self, request: Request, runtime: NamedDependency[Runtime], name: FromPath[str]) -> dict:
        """Restore a retired industry: predicted again, with the examples and corrections it kept."""
        restored = taxonomy.restore_industry(
            engine=runtime.engine, work=runtime.work, name=name, actor=actor(request)
        )
        return _changed(restored)

    @post("/{name:str}/examples", status_code=HTTP_202_ACCEPTED, guards=[requires("reviewer")])
    async def add_examples(
        self, request: Request, runtime: NamedDependency[Runtime], name: FromPath[str]
    ) -> dict:
        """Add example files (multipart field ``files``, any supported format) to an industry; the
        training run that learns them is queued."""
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise Invalid("Send the example files as multipart/form-data, in the field 'files'.")
        files = await _example_files(await request.form(), runtime)
        added = await sync_to_thread(
            taxonomy.add_examples,
            engine=runtime.engine,
            work=runtime.work,
            name=name,
            files=files,
            limits=runtime.extraction_limits,
            extractor=runtime.extractor if files else None,
            actor=actor(request),
        )
        return {
            "industry_name": added.industry,
            "examples_added": added.examples_added,
            "example_errors": added.example_errors,
            "training_task_id": added.training_task.id,
        }


def _changed(changed: taxonomy.IndustryChanged) -> dict:
    return {
        "name": changed.industry.name,
        "status": changed.industry.status,
        "training_task_id": changed.training_task.id,
    }


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
            files = await _example_files(form, runtime)
            fields = IndustryCreate.model_validate({k: v for k, v in raw.items() if v not in (None, "")})
        else:
            body = await request.body()
            fields = IndustryCreate.model_validate_json(body or b"null")
    except ValidationError as error:
        raise Invalid("Invalid industry: " + "; ".join(_describe(e) for e in error.errors())) from error
    return fields, files


async def _example_files(form: Any, runtime: Runtime) -> list[tuple[str, bytes]]:
    """The example files of a multipart form (field ``files``), each within the upload limit."""
    uploads = (
        [item for item in form.getall("files") if isinstance(item, UploadFile)] if "files" in form else []
    )
    if len(uploads) > MAX_EXAMPLE_FILES:
        raise Invalid(f"At most {MAX_EXAMPLE_FILES} example files (got {len(uploads)}).")
    files = []
    for upload in uploads:
        data = await upload.read()
        if len(data) > runtime.settings.max_upload_bytes:
            raise TooLarge(f"Example file {upload.filename!r} is over {runtime.settings.max_upload_mb} MB.")
        files.append((clean_filename(upload.filename), data))
    return files


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "body"
    return f"{where}: {error.get('msg', 'invalid')}"
