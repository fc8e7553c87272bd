"""Every error a client can get: one hierarchy, each with its HTTP status and machine code.

Domain code raises these; the handlers registered by `install_error_handlers` turn them, and
FastAPI's own validation errors, into one JSON envelope:

    {"error": {"code": "k_cap_exceeded", "message": "...", "param": "documents"}}

Unexpected exceptions are logged with a request id and answered generically: their text may hold
internals and is never echoed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Final

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger(__name__)

JSON_MEDIA_TYPE: Final = "application/json"
#: How many validation problems one error message lists before saying "and N more".
MAX_LISTED_PROBLEMS: Final = 3


class RerankerError(Exception):
    """Base of every client-visible error."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    #: What rejections_total counts this as, when it is a rejection at all.
    rejection: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def headers(self) -> dict[str, str]:
        return {}


class BadRequest(RerankerError):
    """The body is not JSON or not UTF-8: nothing in it could be read."""

    status = 400
    code = "invalid_body"
    rejection = "bad_request"


class InvalidRequest(RerankerError):
    """The body is JSON but a field is missing, of the wrong type or out of range."""

    status = 422
    code = "invalid_request"
    rejection = "bad_request"


class BodyTooLarge(RerankerError):
    status = 413
    code = "body_too_large"
    rejection = "bad_request"


class Unauthorized(RerankerError):
    """API keys are required (--api-keys-file) and the request had none, or one that is not valid."""

    status = 401
    code = "unauthorized"
    rejection = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="kube-reranker"'}


class KCapExceeded(RerankerError):
    """More candidates than the k cap, under the reject policy."""

    status = 413
    code = "k_cap_exceeded"
    rejection = "k_cap"


class NotFound(RerankerError):
    status = 404
    code = "not_found"


class MethodNotAllowed(RerankerError):
    status = 405
    code = "method_not_allowed"


class Overloaded(RerankerError):
    """The queued work cannot finish within this request's budget (the SLO): come back later."""

    status = 429
    code = "overloaded"
    rejection = "overload"

    def __init__(self, message: str, *, retry_after_s: int, predicted_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        #: The latency the request would have had: what the autoscaler's P95 counts it at.
        self.predicted_s = predicted_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class DeadlineExceeded(RerankerError):
    """The request's deadline passed before it was scored; expired work never reaches the model."""

    status = 503
    code = "deadline_exceeded"
    rejection = "deadline"


class NotReady(RerankerError):
    """The model is loading, warming up, failed to load, or the server is shutting down."""

    status = 503
    code = "not_ready"


class InferenceFailed(RerankerError):
    """Scoring this request failed; its batch companions were still answered."""

    status = 500
    code = "inference_failed"


def envelope(error: RerankerError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.param is not None:
        body["param"] = error.param
    return {"error": body}


def error_response(error: RerankerError) -> Response:
    return Response(
        orjson.dumps(envelope(error)),
        status_code=error.status,
        media_type=JSON_MEDIA_TYPE,
        headers=error.headers(),
    )


def from_validation_errors(errors: Sequence[Mapping[str, Any]]) -> RerankerError:
    """Rewrite pydantic/FastAPI validation errors into one error naming the dotted parameter."""
    if any(error.get("type") == "json_invalid" for error in errors):
        detail = next(error for error in errors if error.get("type") == "json_invalid")
        reason = (detail.get("ctx") or {}).get("error", "invalid JSON")
        position = detail.get("loc", ("body", None))[-1]
        where = f" at character {position}" if isinstance(position, int) else ""
        return BadRequest(f"the request body is not valid JSON: {reason}{where}", param="body")
    problems = [
        (dotted_param(error.get("loc", ())), str(error.get("msg", "invalid")).removeprefix("Value error, "))
        for error in errors
    ]
    if not problems:
        return InvalidRequest("the request body is invalid")
    listed = "; ".join(f"{param or 'body'}: {message}" for param, message in problems[:MAX_LISTED_PROBLEMS])
    if len(problems) > MAX_LISTED_PROBLEMS:
        listed += f"; and {len(problems) - MAX_LISTED_PROBLEMS} more"
    return InvalidRequest(listed, param=problems[0][0] or "body")


def dotted_param(location: Sequence[Any]) -> str:
    """('body', 'documents', 3, 'text') -> 'documents.3.text'; pydantic's union branch names dropped."""
    parts = [str(part) for part in location if part not in ("body",)]
    return ".".join(part for part in parts if not _is_union_branch(part))


def _is_union_branch(part: str) -> bool:
    return part in {"str", "DocumentObject", "tei", "infinity"} or part.startswith(
        ("function-", "list[", "dict[", "union[")
    )


def install_error_handlers(app: FastAPI, *, on_error: Callable[[RerankerError], None]) -> None:
    """Register every translation into the envelope, in one place; `on_error` sees each one (metrics)."""

    async def on_reranker_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RerankerError)
        on_error(exc)
        return error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        error = from_validation_errors(exc.errors())
        on_error(error)
        return error_response(error)

    async def on_http_exception(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        by_status: dict[int, type[RerankerError]] = {
            400: BadRequest,
            404: NotFound,
            405: MethodNotAllowed,
            413: BodyTooLarge,
        }
        kind = by_status.get(exc.status_code)
        if kind is None:
            return Response(
                orjson.dumps({"error": {"code": f"http_{exc.status_code}", "message": str(exc.detail)}}),
                status_code=exc.status_code,
                media_type=JSON_MEDIA_TYPE,
            )
        error = kind(str(exc.detail))
        on_error(error)
        response = error_response(error)
        # Starlette says which methods a path takes (Allow on a 405); clients and proxies read it.
        response.headers.update(exc.headers or {})
        return response

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        request_id = uuid.uuid4().hex[:12]
        log.error("unexpected error, request id %s", request_id, exc_info=exc)
        return error_response(RerankerError(f"internal error (request id {request_id}); see the server log"))

    app.add_exception_handler(RerankerError, on_reranker_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(Exception, on_unexpected)
