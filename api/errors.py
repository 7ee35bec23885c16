"""Domain errors become HTTP here, and only here: always JSON ``{"code", "message"}``."""

from __future__ import annotations

import logging

from litestar import Litestar, MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DataError, OperationalError

from api.schemas import ErrorBody
from core import errors

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.HeronError], int] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Invalid: 422,
    errors.EmptyFile: 400,
    errors.TooLarge: 413,
    errors.UnsupportedType: 415,
    errors.CorruptFile: 422,
    errors.EncryptedFile: 422,
    errors.NoText: 422,
    errors.LimitExceeded: 422,
    errors.ModelNotReady: 503,
}
CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


# What each error status means here, for the OpenAPI document (document_errors).
ERROR_DESCRIPTIONS = {
    400: "Bad request: an empty file, or a request Heron cannot read.",
    401: "Unauthorized: no or an unknown API key (when keys are configured).",
    403: "Forbidden: the caller's role may not do this.",
    404: "Not found.",
    409: "Conflict: the resource's state forbids it (already decided, exists, retired …).",
    413: "Too large: the request is larger than the upload limit.",
    415: "Unsupported media type: a file type Heron cannot read (unsupported_type), or a body that "
    "is not JSON where JSON is read (unsupported_media_type).",
    422: "Invalid: a malformed or out-of-range request, or a file that cannot be read (corrupt, "
    "encrypted, no text, over a limit); the problems are listed under errors.",
    503: "Unavailable: no model is active yet, or the database does not answer.",
}
WITH_A_BODY_ONLY = (415,)  # what a request without a body cannot get


def document_errors(app: Litestar) -> None:
    """Describe every /api operation's errors as they are answered ({code, message}), instead of
    the {status_code, detail} Litestar documents by default: clients generated from the OpenAPI
    document read the code. Requests with a body also answer 415."""
    for route in app.routes:
        if not route.path.startswith("/api"):
            continue
        for handler in getattr(route, "route_handlers", ()):
            with_body = "data" in handler.parsed_fn_signature.parameters or bool(
                handler.http_methods & {"POST", "PATCH", "PUT"}
            )
            documented = {
                status: ResponseSpec(
                    data_container=ErrorBody, description=description, generate_examples=False
                )
                for status, description in ERROR_DESCRIPTIONS.items()
                if with_body or status not in WITH_A_BODY_ONLY
            }
            handler.responses = {**documented, **(handler.responses or {})}


def _json(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: object
) -> Response:
    return Response(
        content={"code": code, "message": message, **extra},
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def heron_error(_: Request, exc: errors.HeronError) -> Response:
    status = next((s for t, s in STATUS_BY_ERROR.items() if isinstance(exc, t)), 400)
    return _json(status, exc.code, exc.message)


# What Litestar's multipart parser raises (as a 400) when a form passes its part limits.
FORM_TOO_BIG = "Request Entity Too Large"
# What Litestar raises (as a 500) when a client goes away in the middle of sending its body.
CLIENT_GONE = "client disconnected prematurely"


def http_error(request: Request, exc: HTTPException) -> Response:
    content_type = request.headers.get("content-type", "")
    if "JSON is malformed" in str(exc.detail) and content_type and "json" not in content_type:
        sent = content_type.split(";")[0]
        return _json(
            415, "unsupported_media_type", f"This endpoint reads JSON: send application/json, not {sent}."
        )
    if isinstance(exc, ValidationException):
        problems = exc.extra or []
        message = exc.detail
        if (
            content_type.startswith("multipart/")
            and request.url.path.rstrip("/").endswith(("/classify_file", "/classify_files"))
            and isinstance(problems, list)
            and any(_missing_body(p) for p in problems)
        ):
            return _json(
                422,
                "invalid",
                "The multipart form is not what this endpoint takes: /api/classify_file takes one file in "
                "the field 'file'; several files go to /api/classify_files in the field 'files'.",
                errors=problems,
            )
        if isinstance(problems, list) and any(_missing_body(problem) for problem in problems):
            # Litestar names a missing JSON body by the handler's parameter ("'data'"): say what it is.
            problems = [
                {**problem, "message": "A JSON body is required."} if _missing_body(problem) else problem
                for problem in problems
            ]
            message = f"{exc.detail}: the request needs a JSON body."
        return _json(422 if exc.status_code == 400 else exc.status_code, "invalid", message, errors=problems)
    status = exc.status_code
    if status == 400 and exc.detail == FORM_TOO_BIG:
        # Litestar's multipart parser gave up (over 1,000 parts, or a part header over its limit):
        # not the upload size limit, so not 413; say what is wrong with the form.
        return _json(
            422,
            "invalid",
            "The multipart form has more parts, or longer part headers (file names), than Heron "
            "reads: send at most 1,000 parts, each header line (its file name) under 4 kB, or the "
            "files in a ZIP.",
        )
    if status == 413:
        limit = request.app.state.runtime.settings.max_upload_mb
        return _json(413, "too_large", f"The request is larger than the upload limit of {limit} MB.")
    if status == 500 and exc.detail == CLIENT_GONE:
        # The client's fault, not the server's: no 5xx for alerts to count (nobody reads the answer).
        log.info("%s on %s", exc.detail, request.url.path)
        return _json(400, "invalid", "The client disconnected before its request body was complete.")
    if status >= 500:
        log.error("HTTP %s on %s: %s", status, request.url.path, exc.detail)
    # RFC 9110: a 401 names how to authenticate (clients and proxies that retry with a key read it).
    challenge = {"WWW-Authenticate": 'Bearer realm="heron"'} if status == 401 else None
    return _json(status, CODE_BY_STATUS.get(status, "error"), exc.detail, headers=challenge)


def _missing_body(problem: object) -> bool:
    return isinstance(problem, dict) and problem.get("source") == "body" and problem.get("key") == "data"


def database_unavailable(request: Request, exc: OperationalError) -> Response:
    log.warning("database unavailable on %s: %s", request.url.path, exc.orig)
    return _json(503, "unavailable", "The database is not reachable right now; retry shortly.")


def refused_value(request: Request, exc: DataError) -> Response:
    # A value of the request the database cannot take (PostgreSQL: a NUL character in text, a number
    # beyond its column). SQLite takes both, so only fuzzing the scaled shape showed them (a label
    # filter with a NUL in it answered 500). Translated here, not in core: in a worker the same
    # error is our fault, not a request's.
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else "refused"
    log.info("the database refused a value on %s: %s", request.url.path, reason)
    return _json(422, "invalid", f"The database cannot take a value of this request: {reason}.")


def undecodable(request: Request, exc: UnicodeDecodeError) -> Response:
    # e.g. a multipart part without a file name (so a text field) holding bytes that are not UTF-8
    return _json(400, "bad_request", f"Part of the request is not valid UTF-8 text: {exc.reason}.")


def too_deep(request: Request, exc: RecursionError) -> Response:
    # A JSON body nested thousands deep ({"ids": [[[[…]]]]}) exhausts the decoder's recursion.
    # One line, no traceback: the client's fault, and each such request logged 30 lines of it.
    log.info("request on %s nested too deeply to read", request.url.path)
    return _json(422, "invalid", "The request body is nested too deeply to read.")


def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return _json(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal_error",
        "Something went wrong on our side; it has been logged.",
    )


EXCEPTION_HANDLERS = {
    errors.HeronError: heron_error,
    HTTPException: http_error,
    OperationalError: database_unavailable,
    DataError: refused_value,
    UnicodeDecodeError: undecodable,
    RecursionError: too_deep,
    Exception: unexpected,
}
