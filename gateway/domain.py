"""Domain model and domain errors. No gRPC, no HTTP, no I/O.

Every domain error class declares, in its own body, its stable ``reason`` (the gRPC
``google.rpc.ErrorInfo.reason``, part of the public contract) and its :class:`ErrorCode`,
the one table of gRPC status, HTTP status and JSON code. The gRPC and HTTP edges, the
OpenAPI document and the Python client's exceptions derive from (or are tested against)
these declarations; ``tests/unit/test_error_table.py`` pins every public reason.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar


class ErrorCode(enum.Enum):
    """The one error table: each category's gRPC status (``google.rpc.Code`` name), HTTP
    status and the bridge's JSON ``error.code``. Every edge maps from here and nowhere else.
    """

    INVALID_ARGUMENT = ("INVALID_ARGUMENT", 400, "invalid_argument")
    UNAUTHENTICATED = ("UNAUTHENTICATED", 401, "unauthenticated")
    PERMISSION_DENIED = ("PERMISSION_DENIED", 403, "permission_denied")
    NOT_FOUND = ("NOT_FOUND", 404, "not_found")
    FAILED_PRECONDITION = ("FAILED_PRECONDITION", 409, "failed_precondition")
    RESOURCE_EXHAUSTED = ("RESOURCE_EXHAUSTED", 429, "rate_limited")
    UNAVAILABLE = ("UNAVAILABLE", 503, "unavailable")
    INTERNAL = ("INTERNAL", 500, "internal")
    # HTTP only: the bridge's own request handling; never a gRPC status.
    METHOD_NOT_ALLOWED = (None, 405, "method_not_allowed")
    REQUEST_TIMEOUT = (None, 408, "request_timeout")
    PAYLOAD_TOO_LARGE = (None, 413, "payload_too_large")
    UNSUPPORTED_MEDIA_TYPE = (None, 415, "unsupported_media_type")

    def __init__(self, grpc_status: str | None, http_status: int, json_code: str) -> None:
        self.grpc_status = grpc_status
        self.http_status = http_status
        self.json_code = json_code


class Role(enum.Enum):
    """A user's role in an order."""

    BUYER = "buyer"
    SELLER = "seller"
    SUPPORT = "support"


class SyncState(enum.Enum):
    """Whether Stream has caught up with the registry (an order, or a revocation)."""

    PENDING = "pending"
    SYNCED = "synced"


class OrderState(enum.Enum):
    """Where an order's chat is in its life."""

    OPEN = "open"
    """Buyer and seller post."""
    CLOSED = "closed"
    """Frozen in Stream: members read the history, nobody posts."""
    DISPUTED = "disputed"
    """Not frozen; support agents are members (channel moderators)."""


class EventAction(enum.StrEnum):
    """What happened to an order's channel (``OrderChannelEvent.action``)."""

    CREATED = "created"
    CLOSED = "closed"
    DISPUTE_OPENED = "dispute_opened"
    AGENT_ADDED = "agent_added"


@dataclass(frozen=True, slots=True)
class Participant:
    """One side of an order's chat. Empty strings mean "not given"."""

    user_id: str
    display_name: str = ""
    image_url: str = ""


@dataclass(frozen=True, slots=True)
class OrderChannel:
    """An order's channel as the registry records it: the state Stream must match.

    ``version`` grows with every change, so a sync of an older version never marks a
    newer one synced. ``update_time`` defaults to ``create_time``.
    """

    order_id: str
    channel_type: str
    channel_id: str
    buyer: Participant
    seller: Participant
    sync_state: SyncState
    create_time: datetime
    state: OrderState = OrderState.OPEN
    agents: tuple[Participant, ...] = ()
    update_time: datetime | None = None
    version: int = 1

    def __post_init__(self) -> None:
        if self.update_time is None:
            object.__setattr__(self, "update_time", self.create_time)

    @property
    def cid(self) -> str:
        """``type:id``, as Stream writes it."""
        return f"{self.channel_type}:{self.channel_id}"

    @property
    def agent_ids(self) -> tuple[str, ...]:
        """The support agents' user ids, in joining order."""
        return tuple(agent.user_id for agent in self.agents)

    @property
    def member_ids(self) -> tuple[str, ...]:
        """Every member's user id: buyer, seller, then the support agents."""
        return (self.buyer.user_id, self.seller.user_id, *self.agent_ids)

    @property
    def frozen(self) -> bool:
        """Whether Stream must hold the channel frozen."""
        return self.state is OrderState.CLOSED

    def role_of(self, user_id: str) -> Role | None:
        """The user's role in this order, or ``None`` for anybody else."""
        if user_id == self.buyer.user_id:
            return Role.BUYER
        if user_id == self.seller.user_id:
            return Role.SELLER
        if user_id in self.agent_ids:
            return Role.SUPPORT
        return None

    def require_participants(self, buyer: Participant, seller: Participant) -> None:
        """The rule for repeated ``EnsureOrderChannel`` calls: they must name the same
        buyer and seller (by user id) as the order was recorded with.

        Raises:
            ParticipantConflictError: another buyer or seller; nothing may change.
        """
        if buyer.user_id != self.buyer.user_id or seller.user_id != self.seller.user_id:
            raise ParticipantConflictError(self.order_id)


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One change in an order channel's life, as its history records it."""

    time: datetime
    action: EventAction
    service: str
    """The calling service's name."""
    reason: str = ""
    agent_user_id: str = ""


@dataclass(frozen=True, slots=True)
class Revocation:
    """A user's token revocation: Stream must refuse their tokens with ``iat`` before
    ``revoke_time`` (whole seconds)."""

    user_id: str
    revoke_time: datetime
    sync_state: SyncState


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A signed Stream user token; times are its ``iat``/``exp`` claims (epoch seconds)."""

    token: str
    user_id: str
    api_key: str
    issue_epoch: int
    expire_epoch: int

    @property
    def issue_time(self) -> datetime:
        """``iat`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.issue_epoch, UTC)

    @property
    def expire_time(self) -> datetime:
        """``exp`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.expire_epoch, UTC)


@dataclass(frozen=True, slots=True)
class Authorization:
    """The answer to "may this user open this order's chat?"."""

    allowed: bool
    role: Role | None
    channel: OrderChannel | None


class GatewayError(Exception):
    """Root of every error the gateway reports to a caller."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    reason: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(GatewayError):
    """A request field is invalid. ``field`` is its proto field path."""

    code = ErrorCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


class OrderNotFoundError(GatewayError):
    """No channel is recorded for the order."""

    code = ErrorCode.NOT_FOUND
    reason = "ORDER_NOT_FOUND"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id!r} has no chat channel")
        self.order_id = order_id


class ParticipantConflictError(GatewayError):
    """The order exists with other participants; nothing was changed."""

    code = ErrorCode.FAILED_PRECONDITION
    reason = "PARTICIPANT_CONFLICT"

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"order {order_id!r} already has a channel with a different buyer or seller"
        )
        self.order_id = order_id


class UnauthenticatedError(GatewayError):
    """The caller did not prove who it is (no or unknown key, bad session)."""

    code = ErrorCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDeniedError(GatewayError):
    """The caller is known but may not do this."""

    code = ErrorCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class NotParticipantError(PermissionDeniedError):
    """The user is not the order's buyer or seller (HTTP bridge only)."""

    reason = "NOT_PARTICIPANT"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"not a participant of order {order_id!r}")
        self.order_id = order_id


class UnavailableError(GatewayError):
    """A dependency (registry, Stream) cannot be reached right now; retry later."""

    code = ErrorCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class RateLimitedError(GatewayError):
    """The caller is over its rate limit."""

    code = ErrorCode.RESOURCE_EXHAUSTED
    reason = "RATE_LIMITED"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTimeoutError(GatewayError):
    """An HTTP request's body did not arrive in time (HTTP bridge only)."""

    code = ErrorCode.REQUEST_TIMEOUT
    reason = "REQUEST_TIMEOUT"


class OverloadedError(GatewayError):
    """The gateway is at its limit of concurrent requests; retry shortly (or elsewhere)."""

    code = ErrorCode.RESOURCE_EXHAUSTED
    reason = "OVERLOADED"


def error_classes() -> tuple[type[GatewayError], ...]:
    """Every domain error class, :class:`GatewayError` first (the error table's rows)."""
    found: list[type[GatewayError]] = [GatewayError]
    for cls in found:
        found.extend(cls.__subclasses__())
    return tuple(found)
