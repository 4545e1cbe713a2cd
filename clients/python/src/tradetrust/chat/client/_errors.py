"""Exceptions the client raises: one root carrying the gRPC status, a leaf per status that
callers branch on."""

from __future__ import annotations

import enum
import re
from typing import Any

import grpc

from tradetrust.chat.client._status import FieldViolation, RichStatus, parse_status_details

# "field: reason", as the gateway words INVALID_ARGUMENT messages.
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\[\]]*): ")


class Reason(enum.StrEnum):
    """Every ``google.rpc.ErrorInfo.reason`` the gateway sends (:attr:`ChatGatewayError.reason`).

    Part of the gateway's contract: the gateway's test suite checks this list against the
    gateway's own error table.
    """

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    PARTICIPANT_CONFLICT = "PARTICIPANT_CONFLICT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_PARTICIPANT = "NOT_PARTICIPANT"
    UNAVAILABLE = "UNAVAILABLE"
    RATE_LIMITED = "RATE_LIMITED"
    OVERLOADED = "OVERLOADED"
    INTERNAL = "INTERNAL"


class ChatGatewayError(Exception):
    """A ChatGateway call failed. ``code`` and ``details`` are the gRPC status."""

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        *,
        rich: RichStatus | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.rich = rich if rich is not None else RichStatus()

    @property
    def reason(self) -> str:
        """``google.rpc.ErrorInfo.reason`` sent by the gateway (e.g. ``ORDER_NOT_FOUND``),
        or ``""``."""
        return self.rich.reason


class NotFoundError(ChatGatewayError):
    """``NOT_FOUND``: the order is unknown to the gateway."""


class PermissionDeniedError(ChatGatewayError):
    """``PERMISSION_DENIED``: this service's key is not granted the method."""


class UnauthenticatedError(ChatGatewayError):
    """``UNAUTHENTICATED``: the service key is missing or unknown."""


class ConflictError(ChatGatewayError):
    """``FAILED_PRECONDITION``: the order already has a channel with other participants;
    nothing was changed."""


class InvalidArgumentError(ChatGatewayError):
    """``INVALID_ARGUMENT``: a request field is invalid; nothing was written."""

    @property
    def field(self) -> str | None:
        """The offending field path (``buyer.user_id``, ``ttl``...), if the gateway named it."""
        if self.rich.field_violations:
            return self.rich.field_violations[0].field
        match = _FIELD_PREFIX.match(self.details)
        return match.group(1) if match else None

    @property
    def field_violations(self) -> tuple[FieldViolation, ...]:
        """Every violation from ``google.rpc.BadRequest`` (may be empty)."""
        return self.rich.field_violations


class UnavailableError(ChatGatewayError):
    """``UNAVAILABLE``: the gateway (or its registry) could not be reached, after retries."""


class ResourceExhaustedError(ChatGatewayError):
    """``RESOURCE_EXHAUSTED``: the gateway is at its limit of concurrent calls
    (reason ``OVERLOADED``); retry shortly, ideally on another replica."""


class DeadlineExceededError(ChatGatewayError):
    """``DEADLINE_EXCEEDED``: no answer within the call's deadline. For EnsureOrderChannel
    the order may or may not be recorded; repeating the call is safe."""


_BY_CODE: dict[grpc.StatusCode, type[ChatGatewayError]] = {
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.FAILED_PRECONDITION: ConflictError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
}


def error_class(code: grpc.StatusCode) -> type[ChatGatewayError]:
    """The exception class for a status code (the root class for unlisted codes)."""
    return _BY_CODE.get(code, ChatGatewayError)


def from_rpc_error(error: grpc.RpcError) -> ChatGatewayError:
    """Convert a failed call (sync ``grpc.RpcError`` or ``grpc.aio.AioRpcError``)."""
    call: Any = error  # both flavours expose code(), details(), trailing_metadata()
    code: grpc.StatusCode = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
    details = (call.details() if hasattr(call, "details") else None) or ""
    metadata = call.trailing_metadata() if hasattr(call, "trailing_metadata") else None
    rich = parse_status_details(metadata)
    return error_class(code)(code, details, rich=rich)
