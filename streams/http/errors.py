"""Every error answer of the HTTP API in one place: the JSON error body, the handlers
that produce it, the responses documented per route, and how a failed publish becomes
a status. Pure apart from the handlers' JSONResponse."""

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from processors.core.errors import PermanentError, is_retriable
from processors.core.reasons import Reason
from streams.http.models import Accepted, ErrorOut

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no or unknown API key"},
    403: {"model": ErrorOut, "description": "the key may not touch this tenant"},
    422: {"model": ErrorOut, "description": "invalid request"},
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"model": Accepted, "description": "indexed (with wait=true)"},
    409: {"model": ErrorOut, "description": "rejected: no such live memory (with wait=true)"},
    413: {"model": ErrorOut, "description": "the event is larger than the broker accepts"},
    503: {"model": ErrorOut, "description": "Kafka unreachable; retry after Retry-After seconds"},
    504: {"model": ErrorOut, "description": "accepted but not indexed in time (wait=true)"},
    **ERRORS,
}
PUBLISH_RETRY_AFTER_S = 5
STATUS_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    405: "method_not_allowed",
    413: "too_large",
    422: "invalid_request",
    503: "unavailable",
    504: "timeout",
}


def publish_refused(exc: Exception) -> HTTPException | None:
    """The answer to a publish that raised ``exc``; None for an error that is a bug.

    A refusal for good is 413 (too large) or 422; a retriable error (Kafka away) is 503
    with Retry-After: the event was not accepted and may be sent again (same event id,
    no duplicate)."""
    if isinstance(exc, PermanentError):
        status = 413 if exc.reason == Reason.RECORD_TOO_LARGE else 422
        return HTTPException(status, f"Kafka refused the event: {exc}")
    if is_retriable(exc):
        return HTTPException(
            503,
            f"Kafka is unreachable ({type(exc).__name__}); the event was not accepted",
            headers={"Retry-After": str(PUBLISH_RETRY_AFTER_S)},
        )
    return None


def rejected(event_id: str, outcome: str) -> HTTPException | None:
    """The answer to an ack whose outcome is ``rejected:<reason>``; None otherwise."""
    if not outcome.startswith("rejected:"):
        return None
    reason = outcome.removeprefix("rejected:")
    status = 409 if reason == "memory_not_found" else 422
    return HTTPException(status, f"event {event_id} was rejected: {reason}")


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Any HTTPException (ours, and routing's own 404 and 405) as an ErrorOut body."""
    name = STATUS_NAMES.get(exc.status_code, "error")
    return JSONResponse(
        {"error": name, "message": str(exc.detail)}, exc.status_code, headers=exc.headers
    )


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A request that failed validation: 422 naming the first five problems."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
    )
    return JSONResponse({"error": "invalid_request", "message": problems}, 422)


def install_error_handlers(app: FastAPI) -> None:
    app.exception_handler(StarletteHTTPException)(http_error)
    app.exception_handler(RequestValidationError)(invalid_request)
