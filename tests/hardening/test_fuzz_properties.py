"""Property tests (hypothesis): validation, proto <-> domain mapping, the error table."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tradetrust.chat.v1 import chat_gateway_pb2 as pb

from gateway import validation
from gateway.bridge.errors import _from_domain
from gateway.domain import (
    ErrorCode,
    GatewayError,
    InvalidArgumentError,
    OrderChannel,
    OrderNotFoundError,
    OverloadedError,
    Participant,
    ParticipantConflictError,
    PermissionDeniedError,
    RateLimitedError,
    Role,
    SyncState,
    UnauthenticatedError,
    UnavailableError,
)
from gateway.rpc import convert
from gateway.rpc.errors import ERROR_DOMAIN, status_for

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
USER_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@_-")
ORDER_CHARS = USER_CHARS - {"@"}
user_ids = st.text(alphabet=sorted(USER_CHARS), min_size=1, max_size=128)
order_ids = st.text(alphabet=sorted(ORDER_CHARS), min_size=1, max_size=128)


@FAST
@given(st.text(max_size=200))
def test_user_id_accepts_exactly_the_stream_alphabet(value: str) -> None:
    expected = 0 < len(value) <= 128 and set(value) <= USER_CHARS
    try:
        assert validation.user_id(value) == value
        accepted = True
    except InvalidArgumentError as exc:
        assert exc.field == "user_id"
        assert exc.code is ErrorCode.INVALID_ARGUMENT
        accepted = False
    assert accepted is expected


@FAST
@given(st.text(max_size=200))
def test_order_id_accepts_exactly_its_alphabet(value: str) -> None:
    expected = 0 < len(value) <= 128 and set(value) <= ORDER_CHARS
    try:
        validation.order_id(value)
        accepted = True
    except InvalidArgumentError as exc:
        assert exc.field == "order_id"
        accepted = False
    assert accepted is expected


@FAST
@given(st.text(max_size=150))
def test_display_name_rejects_only_with_invalid_argument(value: str) -> None:
    try:
        validation.display_name(value, "buyer.display_name")
    except InvalidArgumentError as exc:
        assert exc.field == "buyer.display_name"
        return
    assert len(value) <= validation.MAX_DISPLAY_NAME_LENGTH
    assert value == value.strip()
    assert not any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} for ch in value)


@FAST
@given(
    st.one_of(
        st.text(max_size=300),
        st.from_regex(
            re.compile(r"https?://[a-z0-9.\-]{1,30}(:[0-9]{1,6})?(/[ -~]{0,40})?"), fullmatch=True
        ),
    )
)
def test_image_url_accepts_only_absolute_http_urls(value: str) -> None:
    try:
        validation.image_url(value, "seller.image_url")
    except InvalidArgumentError as exc:
        assert exc.field == "seller.image_url"
        return
    if value:
        assert value.startswith(("http://", "https://"))
        assert value.isascii() and " " not in value


@FAST
@given(user_ids, st.text(max_size=100), st.text(max_size=100))
def test_participant_from_proto_keeps_every_field(uid: str, name: str, url: str) -> None:
    message = pb.Participant(user_id=uid, display_name=name, image_url=url)
    parsed = pb.Participant.FromString(message.SerializeToString())
    assert convert.participant_from_proto(parsed) == Participant(uid, name, url)


@FAST
@given(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31), 2**31 - 1))
def test_ttl_from_proto_is_a_duration_or_invalid_argument(seconds: int, nanos: int) -> None:
    request = pb.IssueTokenRequest(user_id="u")
    request.ttl.seconds = seconds
    request.ttl.nanos = nanos
    try:
        ttl = convert.ttl_from_proto(request)
    except InvalidArgumentError as exc:
        assert exc.field == "ttl"
        return
    assert ttl is not None
    assert abs(nanos) < 1_000_000_000 and abs(seconds) <= 10 * 365 * 86_400
    assert ttl == timedelta(seconds=seconds, microseconds=nanos // 1000)


@FAST
@given(
    order_ids,
    user_ids,
    user_ids,
    st.sampled_from(list(SyncState)),
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_channel_to_proto_round_trips(
    order_id: str, buyer: str, seller: str, state: SyncState, created: datetime
) -> None:
    channel = OrderChannel(
        order_id=order_id,
        channel_type="messaging",
        channel_id=f"order-{order_id}",
        buyer=Participant(buyer),
        seller=Participant(seller),
        sync_state=state,
        create_time=created,
    )
    message = pb.OrderChannel.FromString(convert.channel_to_proto(channel).SerializeToString())
    assert message.order_id == order_id
    assert message.cid == channel.cid == f"messaging:order-{order_id}"
    assert (message.buyer_user_id, message.seller_user_id) == (buyer, seller)
    assert message.sync_state == (
        pb.SYNC_STATE_SYNCED if state is SyncState.SYNCED else pb.SYNC_STATE_PENDING
    )
    assert message.create_time.ToDatetime(tzinfo=UTC) == created
    assert channel.role_of(buyer) is Role.BUYER


def _errors(message: str) -> list[GatewayError]:
    return [
        InvalidArgumentError("field.path", message),
        OrderNotFoundError(message),
        ParticipantConflictError(message),
        UnauthenticatedError(message),
        PermissionDeniedError(message),
        UnavailableError(message),
        RateLimitedError(message, 1.5),
        OverloadedError(message),
        GatewayError(message),
    ]


@FAST
@given(st.text(max_size=300))
def test_every_domain_error_maps_to_its_table_row(message: str) -> None:
    for error in _errors(message):
        code = error.code
        status = status_for(error)
        assert status.code == grpc.StatusCode[code.grpc_status or ""].value[0]
        assert status.message == error.message
        info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(info)
        assert info.domain == ERROR_DOMAIN and info.reason == error.reason
        response = _from_domain(error)
        body = json.loads(response.text or "")
        if code is ErrorCode.INTERNAL:
            assert response.status == 500  # and the message is never leaked
            assert body == {"error": {"code": "internal", "message": "internal error"}}
        else:
            assert response.status == code.http_status
            assert body == {"error": {"code": code.json_code, "message": error.message}}


def test_overloaded_is_resource_exhausted() -> None:
    assert OverloadedError("x").code is ErrorCode.RESOURCE_EXHAUSTED
    info = error_details_pb2.ErrorInfo()
    status_for(OverloadedError("x")).details[0].Unpack(info)
    assert info.reason == "OVERLOADED"


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_is_a_grpc_status_or_http_only(code: ErrorCode) -> None:
    if code.grpc_status is not None:
        assert grpc.StatusCode[code.grpc_status] is not None
    else:
        assert code.http_status in {405, 408, 413, 415}  # the bridge's own request handling
    assert 400 <= code.http_status < 600
