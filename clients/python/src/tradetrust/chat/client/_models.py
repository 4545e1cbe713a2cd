"""Typed results and inputs: frozen dataclasses, converted from and to the proto messages."""

from __future__ import annotations

import enum
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from tradetrust.chat.v1 import chat_gateway_pb2 as pb


class Role(enum.Enum):
    """A user's role in an order."""

    BUYER = "buyer"
    SELLER = "seller"
    SUPPORT = "support"
    """A support agent of the order's dispute."""


class SyncState(enum.Enum):
    """Whether Stream matches the gateway's registry yet: for a channel its members, the
    agents' roles and whether it is frozen; for a revocation the revoke time."""

    UNSPECIFIED = "unspecified"
    PENDING = "pending"
    """Recorded by the gateway; its background sync finishes the Stream side."""
    SYNCED = "synced"
    """Stream matches the registry."""


class OrderChannelState(enum.Enum):
    """Where an order's chat is in its life."""

    UNSPECIFIED = "unspecified"
    """Not sent (an older gateway), or a state newer than this client."""
    OPEN = "open"
    """Buyer and seller post."""
    CLOSED = "closed"
    """Frozen in Stream: members read the history, nobody posts."""
    DISPUTED = "disputed"
    """Not frozen; one or more support agents are members (channel moderators)."""


class EventAction(enum.StrEnum):
    """Every :attr:`OrderChannelEvent.action` the gateway records today (the field stays a
    ``str``, so an action added later still arrives)."""

    CREATED = "created"
    CLOSED = "closed"
    DISPUTE_OPENED = "dispute_opened"
    AGENT_ADDED = "agent_added"


_ROLES = {
    pb.PARTICIPANT_ROLE_BUYER: Role.BUYER,
    pb.PARTICIPANT_ROLE_SELLER: Role.SELLER,
    pb.PARTICIPANT_ROLE_SUPPORT: Role.SUPPORT,
}
_SYNC = {pb.SYNC_STATE_PENDING: SyncState.PENDING, pb.SYNC_STATE_SYNCED: SyncState.SYNCED}
_STATES = {
    pb.ORDER_CHANNEL_STATE_OPEN: OrderChannelState.OPEN,
    pb.ORDER_CHANNEL_STATE_CLOSED: OrderChannelState.CLOSED,
    pb.ORDER_CHANNEL_STATE_DISPUTED: OrderChannelState.DISPUTED,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


@dataclass(frozen=True)
class Participant:
    """One side of an order's chat, as sent to EnsureOrderChannel (or the support agent
    sent to OpenDispute)."""

    user_id: str
    display_name: str = ""
    image_url: str = ""

    def to_proto(self) -> pb.Participant:
        """The proto message."""
        return pb.Participant(
            user_id=self.user_id, display_name=self.display_name, image_url=self.image_url
        )


@dataclass(frozen=True)
class IssuedToken:
    """A Stream user token. The token is a secret: it is left out of ``repr``."""

    token: str = field(repr=False)
    expire_time: datetime
    """Aware UTC datetime of the token's ``exp``."""
    api_key: str
    user_id: str

    @classmethod
    def from_proto(cls, m: pb.IssueTokenResponse) -> IssuedToken:
        """From the IssueToken response."""
        return cls(
            token=m.token, expire_time=_time(m.expire_time), api_key=m.api_key, user_id=m.user_id
        )


@dataclass(frozen=True)
class OrderChannel:
    """An order's private buyer/seller channel, as the gateway's registry has it.

    ``state``, ``support_agent_user_ids`` and ``update_time`` are keyword-only with defaults,
    so code that builds an ``OrderChannel`` from the first eight fields keeps working.
    """

    order_id: str
    channel_type: str
    channel_id: str
    cid: str
    buyer_user_id: str
    seller_user_id: str
    sync_state: SyncState
    create_time: datetime
    """Aware UTC datetime: when the gateway first recorded the order."""
    _: KW_ONLY
    state: OrderChannelState = OrderChannelState.UNSPECIFIED
    support_agent_user_ids: tuple[str, ...] = ()
    """Support agents who are members (channel moderators), in joining order."""
    update_time: datetime = _EPOCH
    """Aware UTC datetime: when the channel last changed in the registry (its creation
    included); ``create_time`` when not given."""

    def __post_init__(self) -> None:
        if self.update_time == _EPOCH:
            object.__setattr__(self, "update_time", self.create_time)

    @classmethod
    def from_proto(cls, m: pb.OrderChannel) -> OrderChannel:
        """From the proto message."""
        create_time = _time(m.create_time)
        return cls(
            order_id=m.order_id,
            channel_type=m.channel_type,
            channel_id=m.channel_id,
            cid=m.cid,
            buyer_user_id=m.buyer_user_id,
            seller_user_id=m.seller_user_id,
            sync_state=_SYNC.get(m.sync_state, SyncState.UNSPECIFIED),
            create_time=create_time,
            state=_STATES.get(m.state, OrderChannelState.UNSPECIFIED),
            support_agent_user_ids=tuple(m.support_agent_user_ids),
            update_time=_time(m.update_time) if m.HasField("update_time") else create_time,
        )


@dataclass(frozen=True)
class OrderChannelEvent:
    """One change in an order channel's life, as the gateway recorded it."""

    time: datetime
    """Aware UTC datetime: when the gateway recorded it."""
    action: str
    """``created``, ``closed``, ``dispute_opened`` or ``agent_added`` (compare with
    :class:`EventAction`)."""
    service: str
    """The calling service's name, as configured with its key."""
    reason: str
    """The reason the caller gave; ``""`` if none."""
    agent_user_id: str
    """The support agent who joined (``dispute_opened``, ``agent_added``); else ``""``."""

    @classmethod
    def from_proto(cls, m: pb.OrderChannelEvent) -> OrderChannelEvent:
        """From the proto message."""
        return cls(
            time=_time(m.time),
            action=m.action,
            service=m.service,
            reason=m.reason,
            agent_user_id=m.agent_user_id,
        )


@dataclass(frozen=True)
class OrderChannelDetails:
    """GetOrderChannel's answer: the channel and every change of it, oldest first."""

    channel: OrderChannel
    history: tuple[OrderChannelEvent, ...]

    @classmethod
    def from_proto(cls, m: pb.GetOrderChannelResponse) -> OrderChannelDetails:
        """From the GetOrderChannel response."""
        return cls(
            channel=OrderChannel.from_proto(m.channel),
            history=tuple(OrderChannelEvent.from_proto(e) for e in m.history),
        )


@dataclass(frozen=True)
class Revocation:
    """RevokeUserTokens' answer: the user's tokens issued before ``revoke_time`` stop
    working at Stream (once ``sync_state`` is ``SYNCED``); later tokens keep working."""

    user_id: str
    revoke_time: datetime
    """Aware UTC datetime: tokens whose ``iat`` is before it are refused by Stream."""
    sync_state: SyncState
    """Whether Stream has the revocation yet (``PENDING``: the gateway finishes it)."""

    @classmethod
    def from_proto(cls, m: pb.RevokeUserTokensResponse) -> Revocation:
        """From the RevokeUserTokens response."""
        return cls(
            user_id=m.user_id,
            revoke_time=_time(m.revoke_time),
            sync_state=_SYNC.get(m.sync_state, SyncState.UNSPECIFIED),
        )


@dataclass(frozen=True)
class EnsuredChannel:
    """EnsureOrderChannel's answer."""

    channel: OrderChannel
    created: bool
    """True only for the call that created the channel."""

    @classmethod
    def from_proto(cls, m: pb.EnsureOrderChannelResponse) -> EnsuredChannel:
        """From the EnsureOrderChannel response."""
        return cls(channel=OrderChannel.from_proto(m.channel), created=m.created)


@dataclass(frozen=True)
class Authorization:
    """AuthorizeParticipant's answer; ``role`` and ``channel`` are set only when allowed."""

    allowed: bool
    role: Role | None
    channel: OrderChannel | None

    @classmethod
    def from_proto(cls, m: pb.AuthorizeParticipantResponse) -> Authorization:
        """From the AuthorizeParticipant response."""
        return cls(
            allowed=m.allowed,
            role=_ROLES.get(m.role),
            channel=OrderChannel.from_proto(m.channel) if m.HasField("channel") else None,
        )
