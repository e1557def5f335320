"""The service's error tree and the one table that maps errors to HTTP responses.

ApiError
 ├── InvalidRequestError      400 invalid_request_error (bad JSON, schema, values)
 ├── AuthenticationError      401
 ├── NotFoundError            404 (unknown route)
 │    └── ModelNotFoundError  404 model_not_found
 ├── MethodNotAllowedError    405
 ├── PayloadTooLargeError     413
 ├── OverloadedError          429 + Retry-After
 ├── InternalError            500 (generic message; details only in the log)
 ├── NotReadyError            503 + Retry-After
 └── RequestTimeoutError      504 (the request's deadline passed; its queued inputs were dropped)

Errors of the model side (models.errors) map through the same table: an InputError is a
400, anything else a 500. Every response body has OpenAI's shape:
{"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from models.errors import InputError, ModelError

log = logging.getLogger(__name__)


class ApiError(Exception):
    type = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequestError(ApiError):
    pass


class AuthenticationError(ApiError):
    type = "authentication_error"
    code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class NotFoundError(ApiError):
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class MethodNotAllowedError(ApiError):
    code = "method_not_allowed"

    def __init__(self, message: str, *, allow: str | None = None) -> None:
        super().__init__(message)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        # RFC 9110: a 405 lists the methods the resource supports.
        return {"Allow": self.allow} if self.allow else {}


class PayloadTooLargeError(ApiError):
    code = "request_too_large"


class OverloadedError(ApiError):
    type = "rate_limit_error"
    code = "server_overloaded"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class InternalError(ApiError):
    type = "server_error"
    code = "internal_error"


class NotReadyError(ApiError):
    type = "server_error"
    code = "model_not_ready"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class RequestTimeoutError(ApiError):
    type = "server_error"
    code = "request_timeout"


STATUS_BY_ERROR: dict[type[Exception], int] = {
    InvalidRequestError: 400,
    InputError: 400,
    AuthenticationError: 401,
    NotFoundError: 404,
    MethodNotAllowedError: 405,
    PayloadTooLargeError: 413,
    OverloadedError: 429,
    InternalError: 500,
    ModelError: 500,
    NotReadyError: 503,
    RequestTimeoutError: 504,
}


def status_of(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def as_api_error(exc: Exception) -> ApiError:
    """The client-facing form of any exception; internals never leak into messages."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, InputError):
        return InvalidRequestError(str(exc), param=exc.param, code="invalid_input")
    return InternalError("The server failed to process the request; the error has been logged.")


def error_parts(exc: Exception) -> tuple[ApiError, int, bytes]:
    """The client-facing error, its status and its OpenAI-shaped JSON body."""
    error = as_api_error(exc)
    body = {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}
    return error, status_of(error), orjson.dumps(body)


def error_response(exc: Exception) -> Response:
    error, status, body = error_parts(exc)
    return Response(body, status_code=status, media_type="application/json", headers=error.headers())


def install_error_handlers(app: FastAPI, on_error: Any = None) -> None:
    """Every failure, including FastAPI's own validation and routing errors, answers in OpenAI's shape."""

    async def handle(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, (ApiError, InputError)):
            log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        response = error_response(exc)
        if on_error is not None:
            on_error(request, as_api_error(exc), response.status_code)
        return response

    async def handle_validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
        return await handle(request, InvalidRequestError(first["msg"], param=".".join(loc) or None))

    async def handle_http(request: Request, exc: StarletteHTTPException) -> Response:
        mapped: ApiError
        if exc.status_code == 404:
            mapped = NotFoundError(f"no route {request.method} {request.url.path}")
        elif exc.status_code == 405:
            mapped = MethodNotAllowedError(
                f"method {request.method} is not allowed on {request.url.path}", allow=(exc.headers or {}).get("Allow")
            )
        elif exc.status_code == 413:
            mapped = PayloadTooLargeError(str(exc.detail))
        elif exc.status_code < 500:
            mapped = InvalidRequestError(str(exc.detail))
        else:
            mapped = InternalError("The server failed to process the request; the error has been logged.")
        return await handle(request, mapped)

    app.add_exception_handler(RequestValidationError, handle_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, handle_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, handle)
