"""Proto messages <-> domain objects. Pure functions, no I/O."""

from __future__ import annotations

from datetime import timedelta

from google.protobuf import duration_pb2, timestamp_pb2
from tradetrust.chat.v1 import chat_gateway_pb2 as pb

from gateway.domain import (
    Authorization,
    InvalidArgumentError,
    IssuedToken,
    OrderChannel,
    Participant,
    Role,
    SyncState,
)

_ROLE = {Role.BUYER: pb.PARTICIPANT_ROLE_BUYER, Role.SELLER: pb.PARTICIPANT_ROLE_SELLER}
_SYNC = {SyncState.PENDING: pb.SYNC_STATE_PENDING, SyncState.SYNCED: pb.SYNC_STATE_SYNCED}
_NANOS_PER_SECOND = 1_000_000_000


def ttl_from_proto(request: pb.IssueTokenRequest) -> timedelta | None:
    """The requested ttl, ``None`` when unset; rejects malformed Durations."""
    if not request.HasField("ttl"):
        return None
    d: duration_pb2.Duration = request.ttl
    if abs(d.nanos) >= _NANOS_PER_SECOND or (d.seconds > 0 > d.nanos) or (d.seconds < 0 < d.nanos):
        raise InvalidArgumentError("ttl", "is not a valid google.protobuf.Duration")
    if abs(d.seconds) > 10 * 365 * 86_400:
        raise InvalidArgumentError("ttl", "is out of range")
    return timedelta(seconds=d.seconds, microseconds=d.nanos // 1000)


def participant_from_proto(message: pb.Participant) -> Participant:
    """A domain participant from its message (absent message -> empty fields)."""
    return Participant(
        user_id=message.user_id, display_name=message.display_name, image_url=message.image_url
    )


def token_to_proto(token: IssuedToken) -> pb.IssueTokenResponse:
    """The IssueToken response."""
    response = pb.IssueTokenResponse(
        token=token.token, api_key=token.api_key, user_id=token.user_id
    )
    response.expire_time.seconds = token.expire_epoch
    return response


def channel_to_proto(channel: OrderChannel, out: pb.OrderChannel | None = None) -> pb.OrderChannel:
    """An OrderChannel message (filled into ``out`` when given)."""
    message = out if out is not None else pb.OrderChannel()
    message.order_id = channel.order_id
    message.channel_type = channel.channel_type
    message.channel_id = channel.channel_id
    message.cid = channel.cid
    message.buyer_user_id = channel.buyer.user_id
    message.seller_user_id = channel.seller.user_id
    message.sync_state = _SYNC[channel.sync_state]
    created: timestamp_pb2.Timestamp = message.create_time
    # Timestamp.FromDatetime is slow pure Python; create_time is an aware UTC datetime.
    moment = channel.create_time
    created.seconds = int(moment.timestamp())
    created.nanos = moment.microsecond * 1000
    return message


def ensure_to_proto(channel: OrderChannel, created: bool) -> pb.EnsureOrderChannelResponse:
    """The EnsureOrderChannel response."""
    response = pb.EnsureOrderChannelResponse(created=created)
    channel_to_proto(channel, response.channel)
    return response


def authorization_to_proto(answer: Authorization) -> pb.AuthorizeParticipantResponse:
    """The AuthorizeParticipant response."""
    response = pb.AuthorizeParticipantResponse(allowed=answer.allowed)
    if answer.role is not None:
        response.role = _ROLE[answer.role]
    if answer.allowed and answer.channel is not None:
        channel_to_proto(answer.channel, response.channel)
    return response
