"""Proto messages <-> domain objects. Pure functions, no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2
from tradetrust.chat.v1 import chat_gateway_pb2 as pb

from gateway.domain import (
    Authorization,
    InvalidArgumentError,
    IssuedToken,
    OrderChannel,
    OrderEvent,
    OrderState,
    Participant,
    Revocation,
    Role,
    SyncState,
)

_ROLE = {
    Role.BUYER: pb.PARTICIPANT_ROLE_BUYER,
    Role.SELLER: pb.PARTICIPANT_ROLE_SELLER,
    Role.SUPPORT: pb.PARTICIPANT_ROLE_SUPPORT,
}
_SYNC = {SyncState.PENDING: pb.SYNC_STATE_PENDING, SyncState.SYNCED: pb.SYNC_STATE_SYNCED}
_STATE = {
    OrderState.OPEN: pb.ORDER_CHANNEL_STATE_OPEN,
    OrderState.CLOSED: pb.ORDER_CHANNEL_STATE_CLOSED,
    OrderState.DISPUTED: pb.ORDER_CHANNEL_STATE_DISPUTED,
}
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
    _set_time(message.create_time, channel.create_time)
    message.state = _STATE[channel.state]
    message.support_agent_user_ids.extend(channel.agent_ids)
    _set_time(message.update_time, channel.update_time or channel.create_time)
    return message


def _set_time(out: timestamp_pb2.Timestamp, moment: datetime) -> None:
    # Timestamp.FromDatetime is slow pure Python; domain times are aware UTC datetimes.
    out.seconds = int(moment.timestamp())
    out.nanos = moment.microsecond * 1000


def get_to_proto(channel: OrderChannel, history: list[OrderEvent]) -> pb.GetOrderChannelResponse:
    """The GetOrderChannel response."""
    response = pb.GetOrderChannelResponse()
    channel_to_proto(channel, response.channel)
    for event in history:
        item = response.history.add(
            action=event.action.value,
            service=event.service,
            reason=event.reason,
            agent_user_id=event.agent_user_id,
        )
        _set_time(item.time, event.time)
    return response


def revocation_to_proto(revocation: Revocation) -> pb.RevokeUserTokensResponse:
    """The RevokeUserTokens response."""
    response = pb.RevokeUserTokensResponse(
        user_id=revocation.user_id, sync_state=_SYNC[revocation.sync_state]
    )
    _set_time(response.revoke_time, revocation.revoke_time)
    return response


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
