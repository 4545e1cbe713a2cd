"""The chat backend port: what the gateway needs from GetStream.io Chat."""

from __future__ import annotations

from typing import Protocol

from gateway.domain import OrderChannel

__all__ = ["ChatBackend", "ChatBackendError"]


class ChatBackendError(Exception):
    """The chat backend could not finish a call.

    Attributes:
        transient: retrying later may succeed (timeouts, 429, 5xx, connection errors).
        retry_after_s: the earliest sensible retry, when the backend said (rate limits).
    """

    def __init__(self, message: str, *, transient: bool, retry_after_s: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after_s = retry_after_s


class ChatBackend(Protocol):
    """Makes the chat provider hold each order's channel with exactly its two members."""

    async def ensure_channel(self, channel: OrderChannel) -> None:
        """Upsert both users, create the channel if needed, and make its members exactly
        the buyer and the seller. Idempotent.

        Raises:
            ChatBackendError: the provider failed; ``transient`` says whether to retry.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
