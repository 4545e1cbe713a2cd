"""Each gRPC status surfaces as its own exception, with the field and reason the gateway
sent; checked on synthetic errors, through a fake server and against the real gateway."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from tradetrust.chat.client import (
    AsyncChatGatewayClient,
    ChatGatewayClient,
    ChatGatewayError,
    ClientOptions,
    ConflictError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    Reason,
    Role,
    UnauthenticatedError,
    UnavailableError,
    error_class,
    from_rpc_error,
)
from tradetrust.chat.client._status import STATUS_DETAILS_KEY, status_details_bytes

from gateway import domain
from gateway.config import DEV_ORDER_SERVICE_KEY, DEV_WEB_BACKEND_KEY
from gateway.rpc.errors import grpc_code
from tests.helpers.fake_gateway import FakeGateway
from tests.helpers.ports import free_port
from tests.helpers.processes import GatewayProcess
from tests.helpers.raising import RaisingGateway

ORDER_KEY, WEB_KEY = DEV_ORDER_SERVICE_KEY, DEV_WEB_BACKEND_KEY


def aio_error(
    code: grpc.StatusCode, details: str, trailers: tuple[tuple[str, str | bytes], ...] = ()
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details=details
    )


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_every_status_becomes_a_chat_gateway_error(code: grpc.StatusCode) -> None:
    error = from_rpc_error(aio_error(code, "why"))
    assert isinstance(error, error_class(code)) and isinstance(error, ChatGatewayError)
    assert error.code is code and error.details == "why"
    assert str(error) == f"{code.name}: why"


def _sample(cls: type[domain.GatewayError]) -> domain.GatewayError:
    """An instance of a domain error class, built with plausible arguments."""
    if issubclass(cls, domain.InvalidArgumentError):
        return cls("buyer.user_id", "is required")
    if issubclass(cls, domain.RateLimitedError):
        return cls("slow down", 2.0)
    if issubclass(cls, domain.OrderNotFoundError | domain.ParticipantConflictError):
        return cls("ord-1")
    if issubclass(cls, domain.NotParticipantError):
        return cls("ord-1")
    return cls("it failed")


GRPC_ERRORS = [cls for cls in domain.error_classes() if cls.code.grpc_status is not None]
"""The domain errors a gRPC call can end with (the others are the HTTP bridge's own)."""


@pytest.mark.parametrize("cls", GRPC_ERRORS, ids=lambda c: c.__name__)
async def test_each_gateway_error_reaches_the_client_as_its_own_exception(
    raising_gateway: RaisingGateway, cls: type[domain.GatewayError]
) -> None:
    raising_gateway.error = _sample(cls)
    async with AsyncChatGatewayClient(raising_gateway.addr, WEB_KEY) as client:
        with pytest.raises(ChatGatewayError) as caught:
            await client.issue_token("u")
    error = caught.value
    assert error.code is grpc_code(cls.code)
    assert error.reason == cls.reason and error.reason in set(Reason)
    if cls.code is domain.ErrorCode.INTERNAL:
        assert type(error) is ChatGatewayError
    else:  # every status the gateway sends has its own exception class
        assert type(error) is not ChatGatewayError and type(error) is error_class(error.code)


def test_client_reasons_are_the_gateways() -> None:
    assert {r.value for r in Reason} == {cls.reason for cls in GRPC_ERRORS}


def test_invalid_argument_field_comes_from_bad_request_detail() -> None:
    details = status_details_bytes(
        3,
        "buyer.user_id: bad",
        reason="INVALID_ARGUMENT",
        domain="chat.tradetrust.com",
        violations=[FieldViolation("seller.image_url", "must be https")],
    )
    error = from_rpc_error(
        aio_error(
            grpc.StatusCode.INVALID_ARGUMENT, "buyer.user_id: bad", ((STATUS_DETAILS_KEY, details),)
        )
    )
    assert isinstance(error, InvalidArgumentError)
    assert error.field == "seller.image_url"  # the structured detail wins over the message
    assert error.field_violations == (FieldViolation("seller.image_url", "must be https"),)
    assert error.reason == "INVALID_ARGUMENT"
    assert error.rich.domain == "chat.tradetrust.com"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("ttl: must be between 60s and 86400s", "ttl"),
        ("buyer.user_id: empty", "buyer.user_id"),
        ("something else went wrong", None),
        ("", None),
    ],
)
def test_invalid_argument_field_falls_back_to_the_message_prefix(
    message: str, field: str | None
) -> None:
    error = from_rpc_error(aio_error(grpc.StatusCode.INVALID_ARGUMENT, message))
    assert isinstance(error, InvalidArgumentError)
    assert error.field == field


def test_malformed_status_details_are_ignored() -> None:
    error = from_rpc_error(
        aio_error(grpc.StatusCode.NOT_FOUND, "gone", ((STATUS_DETAILS_KEY, b"\xff\xff\xff"),))
    )
    assert isinstance(error, NotFoundError) and error.reason == ""


async def test_status_details_travel_from_a_server(fake: FakeGateway) -> None:
    details = status_details_bytes(
        3, "bad", reason="INVALID_ARGUMENT", violations=[FieldViolation("order_id", "empty")]
    )
    fake.abort = (grpc.StatusCode.INVALID_ARGUMENT, "bad", ((STATUS_DETAILS_KEY, details),))
    async with AsyncChatGatewayClient(fake.addr, "k") as client:
        with pytest.raises(InvalidArgumentError) as caught:
            await client.authorize_participant("", "u")
    assert caught.value.field == "order_id"
    assert caught.value.__cause__ is None  # raised "from None": no grpc noise chained


async def test_service_key_is_sent_as_bearer_metadata(fake: FakeGateway) -> None:
    async with AsyncChatGatewayClient(fake.addr, "secret-key") as client:
        await client.issue_token("u")
    await asyncio.to_thread(lambda: ChatGatewayClient(fake.addr, "other-key").issue_token("u"))
    assert fake.keys == ["Bearer secret-key", "Bearer other-key"]


@pytest.mark.parametrize("key", ["", " padded", "two\nlines"])
def test_a_malformed_key_is_refused_up_front(key: str) -> None:
    with pytest.raises(ValueError):
        ChatGatewayClient("127.0.0.1:1", key)


# --- against the real gateway process -------------------------------------------------


async def test_real_gateway_conflict_is_a_conflict_error(gateway_proc: GatewayProcess) -> None:
    async with AsyncChatGatewayClient(gateway_proc.addr, ORDER_KEY) as order:
        ensured = await order.ensure_order_channel("err-1", "buyer-1", "seller-1")
        assert ensured.created
        with pytest.raises(ConflictError) as conflict:
            await order.ensure_order_channel("err-1", "buyer-1", "mallory")
    assert conflict.value.code is grpc.StatusCode.FAILED_PRECONDITION


async def test_real_gateway_unknown_order_is_not_found_with_a_reason(
    gateway_proc: GatewayProcess,
) -> None:
    async with AsyncChatGatewayClient(gateway_proc.addr, WEB_KEY) as web:
        with pytest.raises(NotFoundError) as missing:
            await web.authorize_participant("no-such-order", "buyer-1")
    assert missing.value.reason  # ErrorInfo.reason arrived


async def test_real_gateway_invalid_participants_name_the_field(
    gateway_proc: GatewayProcess,
) -> None:
    async with AsyncChatGatewayClient(gateway_proc.addr, ORDER_KEY) as order:
        with pytest.raises(InvalidArgumentError) as invalid:
            await order.ensure_order_channel("err-2", "same", "same")
    assert invalid.value.field == "seller.user_id"


async def test_real_gateway_invalid_ttl_names_the_field(gateway_proc: GatewayProcess) -> None:
    async with AsyncChatGatewayClient(gateway_proc.addr, WEB_KEY) as web:
        with pytest.raises(InvalidArgumentError) as bad_ttl:
            await web.issue_token("buyer-1", ttl=5)
    assert bad_ttl.value.field == "ttl"


async def test_real_gateway_method_not_granted_is_permission_denied(
    gateway_proc: GatewayProcess,
) -> None:
    async with AsyncChatGatewayClient(gateway_proc.addr, ORDER_KEY) as order:
        with pytest.raises(PermissionDeniedError):
            await order.issue_token("buyer-1")


async def test_real_gateway_unknown_key_is_unauthenticated(gateway_proc: GatewayProcess) -> None:
    async with AsyncChatGatewayClient(gateway_proc.addr, "not-a-key") as stranger:
        with pytest.raises(UnauthenticatedError):
            await stranger.authorize_participant("err-1", "buyer-1")


async def test_real_gateway_authorizes_a_participant(gateway_proc: GatewayProcess) -> None:
    addr = gateway_proc.addr
    async with (
        AsyncChatGatewayClient(addr, ORDER_KEY) as order,
        AsyncChatGatewayClient(addr, WEB_KEY) as web,
    ):
        ensured = await order.ensure_order_channel("err-3", "buyer-1", "seller-1")
        answer = await web.authorize_participant("err-3", "seller-1")
    assert answer.allowed and answer.role is Role.SELLER
    assert answer.channel is not None and answer.channel.cid == ensured.channel.cid


async def test_real_gateway_refuses_an_outsider(gateway_proc: GatewayProcess) -> None:
    addr = gateway_proc.addr
    async with (
        AsyncChatGatewayClient(addr, ORDER_KEY) as order,
        AsyncChatGatewayClient(addr, WEB_KEY) as web,
    ):
        await order.ensure_order_channel("err-4", "buyer-1", "seller-1")
        outsider = await web.authorize_participant("err-4", "mallory")
    assert not outsider.allowed and outsider.role is None and outsider.channel is None


def test_real_gateway_conflict_sync(gateway_proc: GatewayProcess) -> None:
    with ChatGatewayClient(gateway_proc.addr, ORDER_KEY) as order:
        order.ensure_order_channel("err-s", "buyer-1", "seller-1")
        with pytest.raises(ConflictError):
            order.ensure_order_channel("err-s", "mallory", "seller-1")


def test_real_gateway_not_found_sync(gateway_proc: GatewayProcess) -> None:
    with ChatGatewayClient(gateway_proc.addr, WEB_KEY) as web:
        with pytest.raises(NotFoundError) as missing:
            web.authorize_participant("no-such-order", "buyer-1")
    assert missing.value.reason  # rich status details parsed on the sync path too


def test_real_gateway_invalid_argument_sync(gateway_proc: GatewayProcess) -> None:
    with ChatGatewayClient(gateway_proc.addr, ORDER_KEY) as order:
        with pytest.raises(InvalidArgumentError) as invalid:
            order.ensure_order_channel("err s", "buyer-1", "seller-1")
    assert invalid.value.field == "order_id"


def test_real_gateway_permission_denied_sync(gateway_proc: GatewayProcess) -> None:
    with ChatGatewayClient(gateway_proc.addr, WEB_KEY) as web:
        with pytest.raises(PermissionDeniedError):
            web.ensure_order_channel("err-s2", "buyer-1", "seller-1")


def test_real_gateway_unauthenticated_sync(gateway_proc: GatewayProcess) -> None:
    with ChatGatewayClient(gateway_proc.addr, "not-a-key") as stranger:
        with pytest.raises(UnauthenticatedError):
            stranger.issue_token("buyer-1")


async def test_unreachable_gateway_is_unavailable_when_failing_fast() -> None:
    options = ClientOptions(wait_for_ready=False, deadline_s=5.0)
    async with AsyncChatGatewayClient(f"127.0.0.1:{free_port()}", "k", options=options) as c:
        with pytest.raises(UnavailableError):
            await c.issue_token("u")
