"""Request building and the per-call settings shared by the sync and async clients."""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from google.protobuf import duration_pb2

from tradetrust.chat.client._config import ClientOptions
from tradetrust.chat.client._models import Participant
from tradetrust.chat.v1 import chat_gateway_pb2 as pb

Metadata = tuple[tuple[str, str], ...]


class CallKwargs(TypedDict):
    """Keyword arguments of one stub call."""

    timeout: float
    metadata: Metadata
    wait_for_ready: bool


def call_kwargs(options: ClientOptions, metadata: Metadata, timeout: float | None) -> CallKwargs:
    """Deadline, key and wait-for-ready for one call (``timeout`` overrides the default)."""
    if timeout is not None and timeout <= 0:
        raise ValueError("timeout must be positive")
    return CallKwargs(
        timeout=timeout if timeout is not None else options.deadline_s,
        metadata=metadata,
        wait_for_ready=options.wait_for_ready,
    )


def auth_metadata(service_key: str) -> Metadata:
    """The ``authorization: Bearer <key>`` metadata every ChatGateway call carries."""
    if not service_key or service_key != service_key.strip() or "\n" in service_key:
        raise ValueError("service_key must be a non-empty key without surrounding whitespace")
    return (("authorization", f"Bearer {service_key}"),)


def issue_token_request(user_id: str, ttl: timedelta | float | None) -> pb.IssueTokenRequest:
    """IssueTokenRequest; ``ttl`` as a timedelta or seconds, ``None`` for the server default."""
    request = pb.IssueTokenRequest(user_id=user_id)
    if ttl is not None:
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
        duration: duration_pb2.Duration = request.ttl
        duration.FromNanoseconds(round(seconds * 1_000_000_000))
    return request


def _participant(value: Participant | str) -> pb.Participant:
    return (Participant(value) if isinstance(value, str) else value).to_proto()


def ensure_request(
    order_id: str, buyer: Participant | str, seller: Participant | str
) -> pb.EnsureOrderChannelRequest:
    """EnsureOrderChannelRequest; a participant may be given as a bare user id."""
    return pb.EnsureOrderChannelRequest(
        order_id=order_id, buyer=_participant(buyer), seller=_participant(seller)
    )


def authorize_request(order_id: str, user_id: str) -> pb.AuthorizeParticipantRequest:
    """AuthorizeParticipantRequest."""
    return pb.AuthorizeParticipantRequest(order_id=order_id, user_id=user_id)


def get_request(order_id: str) -> pb.GetOrderChannelRequest:
    """GetOrderChannelRequest."""
    return pb.GetOrderChannelRequest(order_id=order_id)


def close_request(order_id: str, reason: str) -> pb.CloseOrderChannelRequest:
    """CloseOrderChannelRequest; ``reason`` may be empty."""
    return pb.CloseOrderChannelRequest(order_id=order_id, reason=reason)


def dispute_request(order_id: str, agent: Participant | str, reason: str) -> pb.OpenDisputeRequest:
    """OpenDisputeRequest; the agent may be given as a bare user id, ``reason`` may be empty."""
    return pb.OpenDisputeRequest(order_id=order_id, agent=_participant(agent), reason=reason)


def revoke_request(user_id: str) -> pb.RevokeUserTokensRequest:
    """RevokeUserTokensRequest."""
    return pb.RevokeUserTokensRequest(user_id=user_id)
