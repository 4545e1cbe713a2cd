"""Typed results and inputs: frozen dataclasses, converted from and to the proto messages."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from tradetrust.chat.v1 import chat_gateway_pb2 as pb


class Role(enum.Enum):
    """A user's role in an order."""

    BUYER = "buyer"
    SELLER = "seller"


class SyncState(enum.Enum):
    """Whether Stream has the order's channel with both members yet."""

    UNSPECIFIED = "unspecified"
    PENDING = "pending"
    SYNCED = "synced"


_ROLES = {pb.PARTICIPANT_ROLE_BUYER: Role.BUYER, pb.PARTICIPANT_ROLE_SELLER: Role.SELLER}
_SYNC = {pb.SYNC_STATE_PENDING: SyncState.PENDING, pb.SYNC_STATE_SYNCED: SyncState.SYNCED}


def _time(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


@dataclass(frozen=True)
class Participant:
    """One side of an order's chat, as sent to EnsureOrderChannel."""

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
    """An order's private buyer/seller channel."""

    order_id: str
    channel_type: str
    channel_id: str
    cid: str
    buyer_user_id: str
    seller_user_id: str
    sync_state: SyncState
    create_time: datetime

    @classmethod
    def from_proto(cls, m: pb.OrderChannel) -> OrderChannel:
        """From the proto message."""
        return cls(
            order_id=m.order_id,
            channel_type=m.channel_type,
            channel_id=m.channel_id,
            cid=m.cid,
            buyer_user_id=m.buyer_user_id,
            seller_user_id=m.seller_user_id,
            sync_state=_SYNC.get(m.sync_state, SyncState.UNSPECIFIED),
            create_time=_time(m.create_time),
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
