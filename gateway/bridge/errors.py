"""The bridge's error mapping: every failure becomes ``{"error": {code, message}}``.

Domain errors map through :class:`gateway.domain.ErrorCode` (its ``json_code`` and
``http_status``); aiohttp's own HTTP errors (no route, wrong method, body too large, …)
map by status through the same table. Anything else is logged and reported as
``internal`` without detail.
"""

from __future__ import annotations

import logging
import math

from aiohttp import web

from gateway.domain import ErrorCode, GatewayError, RateLimitedError

logger = logging.getLogger(__name__)

ERROR_REASON = web.RequestKey("error_reason", str)
"""Request key under which a failed request's reason is left for the access line."""

_HTTP_CODES: dict[int, str] = {code.http_status: code.json_code for code in ErrorCode}
"""HTTP status -> the contract's JSON code, from the one table."""


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The contract's JSON error body with ``status``; never cached."""
    response = web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _from_domain(error: GatewayError) -> web.Response:
    code: ErrorCode = error.code
    headers: dict[str, str] = {}
    if isinstance(error, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    if code is ErrorCode.UNAUTHENTICATED:
        headers["WWW-Authenticate"] = 'Bearer realm="tradetrust-chat"'
    if code is ErrorCode.INTERNAL:
        return error_response(500, code.json_code, "internal error")
    return error_response(code.http_status, code.json_code, error.message, headers)


def _from_http(exc: web.HTTPException) -> web.Response:
    status = exc.status
    headers: dict[str, str] = {}
    if status == 405 and "Allow" in exc.headers:
        headers["Allow"] = exc.headers["Allow"]
    code = _HTTP_CODES.get(status)
    if code is None:
        code = "internal" if status >= 500 else "invalid_argument"
    messages = {
        404: "no such resource",
        405: "method not allowed",
        413: "request body too large",
        415: "expected Content-Type: application/json",
    }
    message = exc.text if code == "invalid_argument" and exc.text else messages.get(status, code)
    return error_response(status, code, message, headers)


def response_for(request: web.Request, exc: Exception) -> web.Response:
    """The JSON error response for what a handler raised; logs unexpected ones once.

    Raises:
        web.HTTPException: ``exc`` itself when it is not an error (a redirect, say).
    """
    if isinstance(exc, GatewayError):
        # The access line records the failure with its status and reason at INFO; this log
        # line is for debugging, except for internal errors.
        if exc.code is not ErrorCode.INTERNAL:
            request[ERROR_REASON] = exc.message
        level = logging.ERROR if exc.code is ErrorCode.INTERNAL else logging.DEBUG
        logger.log(
            level,
            "http failed method=%s path=%s code=%s reason=%s",
            request.method,
            request.path,
            exc.code.json_code,
            exc.message,
        )
        return _from_domain(exc)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return _from_http(exc)
    logger.error(
        "http failed method=%s path=%s code=internal",
        request.method,
        request.path,
        exc_info=exc,
    )
    return error_response(500, "internal", "internal error")
