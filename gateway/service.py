"""The use cases. Depends only on the ports; knows no gRPC and no HTTP.

Every change follows one pattern: validate, commit the desired state (with its history
event) to the registry, give Stream a bounded inline try (:mod:`gateway.outbox`), and
leave the rest to the sync worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway import lifecycle, validation
from gateway.channels import channel_id_for
from gateway.domain import (
    Authorization,
    EventAction,
    InvalidArgumentError,
    IssuedToken,
    NotParticipantError,
    OrderChannel,
    OrderEvent,
    OrderNotFoundError,
    Participant,
    Revocation,
    Role,
    SyncState,
)
from gateway.outbox import ChannelSync
from gateway.registry import OrderRegistry, Transition
from gateway.tokens import Clock, StreamTokenSigner, utc_now

REVOCATION_CLOCK_MARGIN_S = 0.25
"""How far into the next second RevokeUserTokens waits before it returns, so a replica
whose clock is up to this much behind also issues only tokens Stream accepts."""


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """Bounds of user-token lifetimes, and how far ``iat`` lies in the past."""

    default_ttl: timedelta = timedelta(hours=24)
    min_ttl: timedelta = timedelta(seconds=60)
    max_ttl: timedelta = timedelta(hours=24)
    iat_skew: timedelta = timedelta(seconds=5)


class ChatService:
    """Tokens, order channels through their life, and who may open them, for every
    transport."""

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
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._registry = registry
        self._sync = sync
        self._signer = signer
        self._channel_type = channel_type
        self._token_policy = token_policy or TokenPolicy()
        self._inline_sync_budget_s = inline_sync_budget_s
        self._clock = clock
        self._sleep = sleep

    @property
    def token_policy(self) -> TokenPolicy:
        """The token lifetime bounds in force."""
        return self._token_policy

    # -- tokens ----------------------------------------------------------------------------

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

    def issued_this_second(self, user_id: str, ttl: timedelta | None = None) -> IssuedToken | None:
        """The token :meth:`issue_token` would hand out again now without signing (the one
        issued to ``user_id`` for this lifetime in the current second), or ``None``."""
        policy = self._token_policy
        if ttl is None:
            return self._signer.reusable(user_id, policy.default_ttl)
        lifetime = validation.token_ttl(
            ttl, default=policy.default_ttl, minimum=policy.min_ttl, maximum=policy.max_ttl
        )
        return self._signer.reusable(user_id, lifetime)

    async def revoke_user_tokens(
        self, user_id: str, *, time_remaining_s: float | None = None
    ) -> Revocation:
        """Make Stream refuse every token of ``user_id`` issued before now, while every
        token issued after this returns keeps working.

        The rule (tokens carry ``iat`` = their second minus the skew ``k``): revocation at
        time ``t`` records ``R = floor(t) + 1 - k``. Every token issued up to ``t`` has
        ``iat <= floor(t) - k < R``: revoked. This call returns only once the clock is
        :data:`REVOCATION_CLOCK_MARGIN_S` into second ``floor(t) + 1``, so any token
        issued afterwards, on any replica whose clock is less than that margin behind,
        has ``iat >= floor(t) + 1 - k = R``: valid. The signer's same-second reuse cannot
        hand out an older token either: it never reuses across a second.
        """
        validation.user_id(user_id)
        now = self._clock().timestamp()
        second = int(now)
        skew = int(self._token_policy.iat_skew.total_seconds())
        revoke_time = datetime.fromtimestamp(second + 1 - skew, UTC)
        budget = self._inline_budget(time_remaining_s)
        revocation = await self._registry.revoke(
            user_id, revoke_time, claim_for=timedelta(seconds=budget + 5.0)
        )
        wait_s = second + 1 + REVOCATION_CLOCK_MARGIN_S - now
        revocation, _ = await asyncio.gather(
            self._sync.revoke_inline(revocation, budget), self._sleep(max(wait_s, 0.0))
        )
        if revocation.sync_state is SyncState.PENDING:
            self._sync.wake()
        return revocation

    # -- order channels --------------------------------------------------------------------

    async def ensure_order_channel(
        self,
        order_id: str,
        buyer: Participant,
        seller: Participant,
        *,
        service: str = "",
        time_remaining_s: float | None = None,
    ) -> tuple[OrderChannel, bool]:
        """Record the order's channel (idempotently), then give Stream a bounded first try.

        ``time_remaining_s`` is what is left of the caller's deadline; the inline sync
        stays well inside it, so a slow Stream yields ``PENDING`` rather than a timeout.

        Raises:
            ParticipantConflictError: the order exists with another buyer or seller.
        """
        validation.order_id(order_id)
        validation.participant(buyer, "buyer")
        validation.participant(seller, "seller")
        if buyer.user_id == seller.user_id:
            raise InvalidArgumentError("seller.user_id", "must differ from buyer.user_id")
        budget = self._inline_budget(time_remaining_s)
        now = self._clock()
        proposed = OrderChannel(
            order_id=order_id,
            channel_type=self._channel_type,
            channel_id=channel_id_for(order_id),
            buyer=buyer,
            seller=seller,
            sync_state=SyncState.PENDING,
            create_time=now,
        )
        # Claim the new row for the inline attempt (plus slack), so the worker won't race it.
        channel, created = await self._registry.ensure(
            proposed,
            OrderEvent(now, EventAction.CREATED, service),
            claim_for=timedelta(seconds=budget + 5.0),
        )
        if not created:
            channel.require_participants(buyer, seller)
        elif channel.sync_state is SyncState.PENDING:
            channel = await self._sync.sync_inline(channel, budget)
        if channel.sync_state is SyncState.PENDING:
            # A repeat of a pending order is the worker's job: it may hold the claim now.
            self._sync.wake()
        return channel, created

    async def get_order_channel(self, order_id: str) -> tuple[OrderChannel, list[OrderEvent]]:
        """The order's channel and its history, oldest first.

        Raises:
            OrderNotFoundError: unknown order.
        """
        validation.order_id(order_id)
        channel = await self._registry.get(order_id)
        if channel is None:
            raise OrderNotFoundError(order_id)
        return channel, await self._registry.history(order_id)

    async def close_order_channel(
        self,
        order_id: str,
        reason: str = "",
        *,
        service: str = "",
        time_remaining_s: float | None = None,
    ) -> OrderChannel:
        """The order ended: its chat is frozen (idempotent).

        Raises:
            OrderNotFoundError: unknown order.
        """
        validation.order_id(order_id)
        validation.reason(reason)

        def close(channel: OrderChannel) -> lifecycle.Change | None:
            return lifecycle.close(channel, now=self._clock(), service=service, reason=reason)

        return await self._change(order_id, close, time_remaining_s)

    async def open_dispute(
        self,
        order_id: str,
        agent: Participant,
        reason: str = "",
        *,
        service: str = "",
        time_remaining_s: float | None = None,
    ) -> OrderChannel:
        """A support agent joins the order's chat, which is open for posting (idempotent).

        Raises:
            OrderNotFoundError: unknown order.
            InvalidArgumentError: a bad field, or the agent is the buyer or the seller.
        """
        validation.order_id(order_id)
        validation.participant(agent, "agent")
        validation.reason(reason)

        def dispute(channel: OrderChannel) -> lifecycle.Change | None:
            return lifecycle.open_dispute(
                channel, agent, now=self._clock(), service=service, reason=reason
            )

        return await self._change(order_id, dispute, time_remaining_s)

    async def _change(
        self, order_id: str, transition: Transition, time_remaining_s: float | None
    ) -> OrderChannel:
        budget = self._inline_budget(time_remaining_s)
        channel, changed = await self._registry.change(
            order_id, transition, claim_for=timedelta(seconds=budget + 5.0)
        )
        if changed:
            channel = await self._sync.sync_inline(channel, budget)
        if channel.sync_state is SyncState.PENDING:
            self._sync.wake()
        return channel

    # -- who may open a chat ---------------------------------------------------------------

    async def authorize_participant(self, order_id: str, user_id: str) -> Authorization:
        """Whether ``user_id`` is the buyer, the seller or a support agent of
        ``order_id``; registry only."""
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
        """For a participant about to open the chat: the channel, with one shared inline
        sync attempt first if it is pending and due.

        Raises:
            OrderNotFoundError: unknown order.
            NotParticipantError: ``user_id`` is not the buyer, the seller or an agent.
        """
        answer = await self.authorize_participant(order_id, user_id)
        if not answer.allowed or answer.channel is None or answer.role is None:
            raise NotParticipantError(order_id)
        channel = answer.channel
        if channel.sync_state is SyncState.PENDING:
            budget = self._inline_budget(time_remaining_s)
            channel = await self._sync.sync_claimable(order_id, budget) or channel
        return channel, answer.role

    def _inline_budget(self, time_remaining_s: float | None) -> float:
        budget = self._inline_sync_budget_s
        if time_remaining_s is not None:
            # Keep a margin for the registry write and the response.
            budget = min(budget, time_remaining_s * 0.8 - 0.05)
        return max(budget, 0.0)
