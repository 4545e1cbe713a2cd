"""The public error contract, pinned: every domain error's ErrorInfo reason, gRPC status,
HTTP status and JSON code. A rename or a moved status fails here: that is a contract
change, to be made on purpose (README, proto comments and client updated with it)."""

from __future__ import annotations

from gateway.domain import error_classes

GOLDEN = {
    # class: (ErrorInfo.reason, gRPC status, HTTP status, bridge error.code)
    "GatewayError": ("INTERNAL", "INTERNAL", 500, "internal"),
    "InvalidArgumentError": ("INVALID_ARGUMENT", "INVALID_ARGUMENT", 400, "invalid_argument"),
    "OrderNotFoundError": ("ORDER_NOT_FOUND", "NOT_FOUND", 404, "not_found"),
    "ParticipantConflictError": (
        "PARTICIPANT_CONFLICT",
        "FAILED_PRECONDITION",
        409,
        "failed_precondition",
    ),
    "UnauthenticatedError": ("UNAUTHENTICATED", "UNAUTHENTICATED", 401, "unauthenticated"),
    "PermissionDeniedError": ("PERMISSION_DENIED", "PERMISSION_DENIED", 403, "permission_denied"),
    "NotParticipantError": ("NOT_PARTICIPANT", "PERMISSION_DENIED", 403, "permission_denied"),
    "UnavailableError": ("UNAVAILABLE", "UNAVAILABLE", 503, "unavailable"),
    "RateLimitedError": ("RATE_LIMITED", "RESOURCE_EXHAUSTED", 429, "rate_limited"),
    "OverloadedError": ("OVERLOADED", "RESOURCE_EXHAUSTED", 429, "rate_limited"),
    "RequestTimeoutError": ("REQUEST_TIMEOUT", None, 408, "request_timeout"),  # HTTP only
}


def test_every_public_error_is_pinned() -> None:
    declared = {
        cls.__name__: (cls.reason, cls.code.grpc_status, cls.code.http_status, cls.code.json_code)
        for cls in error_classes()
    }
    assert declared == GOLDEN


def test_reasons_are_unique() -> None:
    reasons = [cls.reason for cls in error_classes()]
    assert len(reasons) == len(set(reasons))
