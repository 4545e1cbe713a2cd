"""The three use cases. Depends only on the ports; knows no gRPC and no HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from gateway import validation
from gateway.channels import channel_id_for
from gateway.domain import (
    Authorization,
    InvalidArgumentError,
    IssuedToken,
    NotParticipantError,
    OrderChannel,
    OrderNotFoundError,
    Participant,
    Role,
    SyncState,
)
from gateway.outbox import ChannelSync
from gateway.registry import OrderRegistry
from gateway.tokens import Clock, StreamTokenSigner, utc_now


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """Bounds of user-token lifetimes."""

    default_ttl: timedelta = timedelta(hours=24)
    min_ttl: timedelta = timedelta(seconds=60)
    max_ttl: timedelta = timedelta(hours=24)


class ChatService:
    """IssueToken, EnsureOrderChannel and AuthorizeParticipant, for every transport."""

    def __init__(
        self,
        *,
        registry: OrderRegistry,
        sync: ChannelSync,
        signer: StreamTokenSigner,
        channel_type: str = "messaging",
        token_policy: TokenPolicy | None = None,
        inline_sync_budget_s: float = 2.0,
        clock: Clock = utc_now,
    ) -> None:
        self._registry = registry
        self._sync = sync
        self._signer = signer
        self._channel_type = channel_type
        self._token_policy = token_policy or TokenPolicy()
        self._inline_sync_budget_s = inline_sync_budget_s
        self._clock = clock

    @property
    def token_policy(self) -> TokenPolicy:
        """The token lifetime bounds in force."""
        return self._token_policy

    def issue_token(self, user_id: str, ttl: timedelta | None = None) -> IssuedToken:
        """Sign a Stream user token for ``user_id`` (default lifetime 24 h).

        Synchronous: signing is local CPU work, never I/O.
        """
        validation.user_id(user_id)
        policy = self._token_policy
        if ttl is None:
            return self._signer.sign(user_id, policy.default_ttl)
        lifetime = validation.token_ttl(
            ttl, default=policy.default_ttl, minimum=policy.min_ttl, maximum=policy.max_ttl
        )
        return self._signer.sign(user_id, lifetime)

    async def ensure_order_channel(
        self,
        order_id: str,
        buyer: Participant,
        seller: Participant,
        *,
        time_remaining_s: float | None = None,
    ) -> tuple[OrderChannel, bool]:
        """Record the order's channel (idempotently), then give Stream a bounded first try.

        ``time_remaining_s`` is what is left of the caller's deadline; the inline sync
        stays well inside it, so a slow Stream yields ``PENDING`` rather than a timeout.
        """
        validation.order_id(order_id)
        validation.participant(buyer, "buyer")
        validation.participant(seller, "seller")
        if buyer.user_id == seller.user_id:
            raise InvalidArgumentError("seller.user_id", "must differ from buyer.user_id")
        budget = self._inline_budget(time_remaining_s)
        proposed = OrderChannel(
            order_id=order_id,
            channel_type=self._channel_type,
            channel_id=channel_id_for(order_id),
            buyer=buyer,
            seller=seller,
            sync_state=SyncState.PENDING,
            create_time=self._clock(),
        )
        # Claim the new row for the inline attempt (plus slack), so the worker won't race it.
        channel, created = await self._registry.ensure(
            proposed, claim_for=timedelta(seconds=budget + 5.0)
        )
        if not created:
            channel.require_participants(buyer, seller)
        if created:
            channel = await self._sync.sync_inline(channel, budget)
        if channel.sync_state is SyncState.PENDING:
            # A repeat of a pending order is the worker's job: it may hold the claim now.
            self._sync.wake()
        return channel, created

    async def authorize_participant(self, order_id: str, user_id: str) -> Authorization:
        """Whether ``user_id`` is the buyer or the seller of ``order_id``; registry only."""
        validation.order_id(order_id)
        validation.user_id(user_id)
        channel = await self._registry.get(order_id)
        if channel is None:
            raise OrderNotFoundError(order_id)
        role = channel.role_of(user_id)
        if role is None:
            return Authorization(allowed=False, role=None, channel=None)
        return Authorization(allowed=True, role=role, channel=channel)

    async def open_order_channel(
        self, order_id: str, user_id: str, *, time_remaining_s: float | None = None
    ) -> tuple[OrderChannel, Role]:
        """For a participant about to open the chat: the channel, synced first if pending.

        Raises:
            OrderNotFoundError: unknown order.
            NotParticipantError: ``user_id`` is neither buyer nor seller.
        """
        answer = await self.authorize_participant(order_id, user_id)
        if not answer.allowed or answer.channel is None or answer.role is None:
            raise NotParticipantError(order_id)
        channel = answer.channel
        if channel.sync_state is SyncState.PENDING:
            channel = await self._sync.sync_inline(channel, self._inline_budget(time_remaining_s))
        return channel, answer.role

    def _inline_budget(self, time_remaining_s: float | None) -> float:
        budget = self._inline_sync_budget_s
        if time_remaining_s is not None:
            # Keep a margin for the registry write and the response.
            budget = min(budget, time_remaining_s * 0.8 - 0.05)
        return max(budget, 0.0)
