"""Domain model and domain errors. No gRPC, no HTTP, no I/O.

Every domain error carries an :class:`ErrorCode`. That enum is the one table that maps
a failure to its gRPC status code (by name), HTTP status and stable snake_case reason;
the gRPC and HTTP edges read it and nothing else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar


class ErrorCode(enum.Enum):
    """Canonical error codes (google.rpc.Code names) with their HTTP status."""

    INVALID_ARGUMENT = ("invalid_argument", 400)
    UNAUTHENTICATED = ("unauthenticated", 401)
    PERMISSION_DENIED = ("permission_denied", 403)
    NOT_FOUND = ("not_found", 404)
    FAILED_PRECONDITION = ("failed_precondition", 409)
    RESOURCE_EXHAUSTED = ("rate_limited", 429)
    UNAVAILABLE = ("unavailable", 503)
    INTERNAL = ("internal", 500)

    def __init__(self, reason: str, http_status: int) -> None:
        self.reason = reason
        self.http_status = http_status


class Role(enum.Enum):
    """A user's role in an order."""

    BUYER = "buyer"
    SELLER = "seller"


class SyncState(enum.Enum):
    """Whether Stream has caught up with the registry for an order."""

    PENDING = "pending"
    SYNCED = "synced"


@dataclass(frozen=True, slots=True)
class Participant:
    """One side of an order's chat. Empty strings mean "not given"."""

    user_id: str
    display_name: str = ""
    image_url: str = ""


@dataclass(frozen=True, slots=True)
class OrderChannel:
    """An order's private buyer/seller channel as the registry records it."""

    order_id: str
    channel_type: str
    channel_id: str
    buyer: Participant
    seller: Participant
    sync_state: SyncState
    create_time: datetime

    @property
    def cid(self) -> str:
        """``type:id``, as Stream writes it."""
        return f"{self.channel_type}:{self.channel_id}"

    @property
    def member_ids(self) -> tuple[str, str]:
        """The two members' user ids, buyer first."""
        return (self.buyer.user_id, self.seller.user_id)

    def role_of(self, user_id: str) -> Role | None:
        """The user's role in this order, or ``None`` for anybody else."""
        if user_id == self.buyer.user_id:
            return Role.BUYER
        if user_id == self.seller.user_id:
            return Role.SELLER
        return None

    def same_participants(self, buyer: Participant, seller: Participant) -> bool:
        """Whether a repeated request names the same buyer and seller (by user id)."""
        return buyer.user_id == self.buyer.user_id and seller.user_id == self.seller.user_id


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

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(GatewayError):
    """A request field is invalid. ``field`` is its proto field path."""

    code = ErrorCode.INVALID_ARGUMENT

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class OrderNotFoundError(GatewayError):
    """No channel is recorded for the order."""

    code = ErrorCode.NOT_FOUND

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id!r} has no chat channel")
        self.order_id = order_id


class ParticipantConflictError(GatewayError):
    """The order exists with other participants; nothing was changed."""

    code = ErrorCode.FAILED_PRECONDITION

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"order {order_id!r} already has a channel with a different buyer or seller"
        )
        self.order_id = order_id


class UnauthenticatedError(GatewayError):
    """The caller did not prove who it is (no or unknown key, bad session)."""

    code = ErrorCode.UNAUTHENTICATED


class PermissionDeniedError(GatewayError):
    """The caller is known but may not do this."""

    code = ErrorCode.PERMISSION_DENIED


class NotParticipantError(PermissionDeniedError):
    """The user is not the order's buyer or seller (HTTP bridge only)."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"not a participant of order {order_id!r}")
        self.order_id = order_id


class UnavailableError(GatewayError):
    """A dependency (registry, Stream) cannot be reached right now; retry later."""

    code = ErrorCode.UNAVAILABLE


class RateLimitedError(GatewayError):
    """The caller is over its rate limit."""

    code = ErrorCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class OverloadedError(GatewayError):
    """The gateway is at its limit of concurrent requests; retry shortly (or elsewhere)."""

    code = ErrorCode.RESOURCE_EXHAUSTED
