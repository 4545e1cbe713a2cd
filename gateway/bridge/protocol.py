"""aiohttp's request handler with the bridge's answers to requests it cannot even parse.

aiohttp answers a malformed request (bad request line, a header too long or with invalid
characters, a bad method) before any route runs, in plain text, and logs a traceback at
ERROR that may quote the offending header. :class:`BridgeRequestHandler` answers it the
bridge's way instead: the JSON error model, one access line and the request metrics
(through the route guard's ``malformed`` callback), and a one-line DEBUG log without the
request's content; so is a request no route can match (CONNECT's authority form, a path
with a line break). Its :meth:`~BridgeRequestHandler.shutdown` takes a timeout of 0 to
mean "cancel now", as the bridge's stop means it (aiohttp reads it as "wait forever").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web_protocol
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from gateway.bridge.errors import error_response
from gateway.domain import ErrorCode

MalformedCallback = Callable[[BaseRequest, int, str], None]
"""``malformed(request, status, reason)``: count and log a request aiohttp refused."""

_BY_STATUS = {code.http_status: code for code in ErrorCode}
_CANCEL_NOW_S = 0.05
"""What a shutdown timeout of 0 becomes: time for a cancelled request to end cleanly."""


class BridgeRequestHandler(web_protocol.RequestHandler):
    """One HTTP connection, with JSON answers to malformed requests."""

    def __init__(self, *args: Any, malformed: MalformedCallback, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._malformed = malformed

    async def shutdown(self, timeout: float | None = 15.0) -> None:
        """Close the connection, cancelling its request after ``timeout`` seconds.

        The bridge is stopped with a timeout of 0 (the gateway's drain has already given
        in-flight requests the shutdown grace), but aiohttp reads a timeout <= 0 as *no*
        timeout: a client stalled half-way through a body kept the process from exiting
        for as long as it liked. Here 0 means cancel now.
        """
        if timeout is not None and timeout <= 0:
            timeout = _CANCEL_NOW_S
        await super().shutdown(timeout)

    async def _handle_request(
        self,
        request: BaseRequest,
        start_time: float | None,
        request_handler: Callable[[BaseRequest], Awaitable[StreamResponse]],
    ) -> tuple[StreamResponse, bool]:
        """Route the request, unless no route can match its target: CONNECT's authority
        form (no leading ``/``) or a path with a line break (a decoded ``%0a``: the routes'
        patterns, the catch-all's included, stop at line breaks). aiohttp answered those
        with its own plain-text 404, past the route guard: no metric, no access line."""
        path = request.path
        if path.startswith("/") and "\n" not in path:
            return await super()._handle_request(request, start_time, request_handler)
        response = self.handle_error(request, 400, UnroutableRequest())
        return await self.finish_response(request, response, start_time)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        """The JSON error for a request aiohttp could not handle; closes the connection."""
        if request.writer.output_size > 0:
            raise ConnectionError("a response was sent already; the connection is broken")
        if status >= 500:
            self.log_exception("HTTP bridge: error handling a request", exc_info=exc)
            code, text = ErrorCode.INTERNAL, "internal error"
        else:
            # The exception's text may quote the request (a header value): not logged.
            self.logger.debug(
                "HTTP bridge: malformed request refused (%d, %s)", status, type(exc).__name__
            )
            code = _BY_STATUS.get(status, ErrorCode.INVALID_ARGUMENT)
            text = (
                "malformed HTTP request" if code is ErrorCode.INVALID_ARGUMENT else code.json_code
            )
        response = error_response(code.http_status, code.json_code, text)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.force_close()
        self._malformed(request, code.http_status, type(exc).__name__ if exc else "malformed")
        return response


class UnroutableRequest(Exception):
    """A request target no route can match (refused as malformed)."""
