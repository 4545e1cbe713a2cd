"""Typed client for ``tradetrust.chat.v1.ChatGateway``.

>>> from tradetrust.chat.client import AsyncChatGatewayClient
>>> async with AsyncChatGatewayClient("127.0.0.1:50051", key) as client:
...     ensured = await client.ensure_order_channel("ord-1", "buyer-42", "seller-7")
"""

from tradetrust.chat.client._aio import AsyncChatGatewayClient
from tradetrust.chat.client._blocking import ChatGatewayClient
from tradetrust.chat.client._config import (
    ClientOptions,
    KeepaliveConfig,
    RetryPolicy,
    TlsConfig,
)
from tradetrust.chat.client._errors import (
    ChatGatewayError,
    ConflictError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    Reason,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    error_class,
    from_rpc_error,
)
from tradetrust.chat.client._models import (
    Authorization,
    EnsuredChannel,
    EventAction,
    IssuedToken,
    OrderChannel,
    OrderChannelDetails,
    OrderChannelEvent,
    OrderChannelState,
    Participant,
    Revocation,
    Role,
    SyncState,
)
from tradetrust.chat.client._status import FieldViolation
from tradetrust.chat.client._token_cache import (
    AsyncTokenCache,
    Clock,
    ExpiredTokenError,
    InvalidatedError,
    TokenCache,
)

__all__ = [
    "AsyncChatGatewayClient",
    "AsyncTokenCache",
    "Authorization",
    "ChatGatewayClient",
    "ChatGatewayError",
    "ClientOptions",
    "Clock",
    "ConflictError",
    "DeadlineExceededError",
    "EnsuredChannel",
    "EventAction",
    "ExpiredTokenError",
    "FieldViolation",
    "InvalidArgumentError",
    "InvalidatedError",
    "IssuedToken",
    "KeepaliveConfig",
    "NotFoundError",
    "OrderChannel",
    "OrderChannelDetails",
    "OrderChannelEvent",
    "OrderChannelState",
    "Participant",
    "PermissionDeniedError",
    "Reason",
    "ResourceExhaustedError",
    "RetryPolicy",
    "Revocation",
    "Role",
    "SyncState",
    "TlsConfig",
    "TokenCache",
    "UnauthenticatedError",
    "UnavailableError",
    "error_class",
    "from_rpc_error",
]
