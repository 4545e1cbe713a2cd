"""The order-life calls (get_order_channel, close_order_channel, open_dispute,
revoke_user_tokens) on both clients: against a real dev-profile gateway process (values,
states, history, errors), and against the fake for what goes on the wire."""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

import grpc
import pytest
from tradetrust.chat import client as client_package
from tradetrust.chat.client import (
    AsyncChatGatewayClient,
    Authorization,
    ChatGatewayClient,
    ChatGatewayError,
    ClientOptions,
    DeadlineExceededError,
    EnsuredChannel,
    EventAction,
    InvalidArgumentError,
    IssuedToken,
    NotFoundError,
    OrderChannel,
    OrderChannelDetails,
    OrderChannelEvent,
    OrderChannelState,
    Participant,
    PermissionDeniedError,
    Reason,
    Revocation,
    Role,
    SyncState,
    UnauthenticatedError,
)
from tradetrust.chat.v1 import chat_gateway_pb2 as pb

from gateway.config import DEV_ORDER_SERVICE_KEY, DEV_SUPPORT_TOOL_KEY, DEV_WEB_BACKEND_KEY
from tests.helpers.fake_gateway import FakeGateway
from tests.helpers.processes import GatewayProcess

ORDER_KEY, WEB_KEY, SUPPORT_KEY = DEV_ORDER_SERVICE_KEY, DEV_WEB_BACKEND_KEY, DEV_SUPPORT_TOOL_KEY
ORDER_SERVICE, SUPPORT_TOOL = "order-service", "support-tool"  # the dev profile's names
NEW_METHODS = ("get_order_channel", "close_order_channel", "open_dispute", "revoke_user_tokens")

Flavour = Literal["aio", "sync"]
T = TypeVar("T")


class Gateway:
    """One service's client of either flavour behind async methods (the blocking client
    runs in a worker thread), so one test body checks both clients."""

    def __init__(self, flavour: Flavour, addr: str, key: str) -> None:
        options = ClientOptions(deadline_s=10.0)
        self._aio = AsyncChatGatewayClient(addr, key, options=options) if flavour == "aio" else None
        self._sync = ChatGatewayClient(addr, key, options=options) if flavour == "sync" else None

    async def _run(
        self,
        aio: Callable[[AsyncChatGatewayClient], Awaitable[T]],
        sync: Callable[[ChatGatewayClient], T],
    ) -> T:
        if self._aio is not None:
            return await aio(self._aio)
        assert self._sync is not None
        client = self._sync
        return await asyncio.to_thread(lambda: sync(client))

    async def ensure(self, order_id: str, buyer: str, seller: str) -> EnsuredChannel:
        return await self._run(
            lambda c: c.ensure_order_channel(order_id, buyer, seller),
            lambda c: c.ensure_order_channel(order_id, buyer, seller),
        )

    async def authorize(self, order_id: str, user_id: str) -> Authorization:
        return await self._run(
            lambda c: c.authorize_participant(order_id, user_id),
            lambda c: c.authorize_participant(order_id, user_id),
        )

    async def issue_token(self, user_id: str) -> IssuedToken:
        return await self._run(lambda c: c.issue_token(user_id), lambda c: c.issue_token(user_id))

    async def get(self, order_id: str) -> OrderChannelDetails:
        return await self._run(
            lambda c: c.get_order_channel(order_id), lambda c: c.get_order_channel(order_id)
        )

    async def close(self, order_id: str, reason: str = "") -> OrderChannel:
        return await self._run(
            lambda c: c.close_order_channel(order_id, reason),
            lambda c: c.close_order_channel(order_id, reason),
        )

    async def dispute(
        self, order_id: str, agent: Participant | str, reason: str = ""
    ) -> OrderChannel:
        return await self._run(
            lambda c: c.open_dispute(order_id, agent, reason),
            lambda c: c.open_dispute(order_id, agent, reason),
        )

    async def revoke(self, user_id: str) -> Revocation:
        return await self._run(
            lambda c: c.revoke_user_tokens(user_id), lambda c: c.revoke_user_tokens(user_id)
        )

    async def aclose(self) -> None:
        if self._aio is not None:
            await self._aio.close()
        if self._sync is not None:
            self._sync.close()


Connect = Callable[[str], Gateway]


@pytest.fixture(params=["aio", "sync"])
async def connect(
    request: pytest.FixtureRequest, gateway_proc: GatewayProcess
) -> AsyncIterator[Connect]:
    """Opens clients of one flavour (``AsyncChatGatewayClient`` or ``ChatGatewayClient``)
    to the module's real gateway, by service key; closes them after the test."""
    flavour: Flavour = request.param
    opened: list[Gateway] = []

    def open_client(key: str) -> Gateway:
        gateway = Gateway(flavour, gateway_proc.addr, key)
        opened.append(gateway)
        return gateway

    try:
        yield open_client
    finally:
        for gateway in opened:
            await gateway.aclose()


def new_order() -> str:
    return f"lc-{uuid.uuid4().hex[:12]}"


def assert_aware_utc(moment: datetime) -> None:
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0), moment


def near_now(moment: datetime) -> bool:
    return abs(datetime.now(UTC) - moment) < timedelta(minutes=1)


def same_channel(a: OrderChannel, b: OrderChannel) -> bool:
    """Equal but for ``sync_state`` (the background sync may finish between two answers)."""
    return replace(a, sync_state=b.sync_state) == b


def iat(token: IssuedToken) -> datetime:
    """The token's ``iat`` claim (payload decoded, signature not checked)."""
    payload = token.token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return datetime.fromtimestamp(claims["iat"], UTC)


# --- the order's life against the real gateway ------------------------------------------


async def test_the_order_life_through_the_client(connect: Connect) -> None:
    order, support, web = connect(ORDER_KEY), connect(SUPPORT_KEY), connect(WEB_KEY)
    order_id = new_order()

    ensured = await order.ensure(order_id, "buyer-1", "seller-1")
    opened = ensured.channel
    assert ensured.created
    assert opened.state is OrderChannelState.OPEN and opened.support_agent_user_ids == ()
    assert opened.update_time == opened.create_time and near_now(opened.create_time)
    for moment in (opened.create_time, opened.update_time):
        assert_aware_utc(moment)

    got = await order.get(order_id)
    assert same_channel(got.channel, opened)
    assert [(e.action, e.service) for e in got.history] == [(EventAction.CREATED, ORDER_SERVICE)]

    sue = Participant("sue-1", display_name="Sue Support")
    disputed = await support.dispute(order_id, sue, "item not as described")
    assert disputed.state is OrderChannelState.DISPUTED
    assert disputed.support_agent_user_ids == ("sue-1",)
    assert (disputed.order_id, disputed.cid, disputed.create_time) == (
        order_id,
        opened.cid,
        opened.create_time,
    )
    assert (disputed.buyer_user_id, disputed.seller_user_id) == ("buyer-1", "seller-1")
    assert disputed.update_time > opened.update_time
    assert disputed.sync_state in (SyncState.SYNCED, SyncState.PENDING)

    second = await support.dispute(order_id, "tom-2")  # a bare user id, no reason
    assert second.state is OrderChannelState.DISPUTED
    assert second.support_agent_user_ids == ("sue-1", "tom-2")  # in joining order

    closed = await order.close(order_id, "delivered")
    assert closed.state is OrderChannelState.CLOSED
    assert closed.support_agent_user_ids == ("sue-1", "tom-2")  # agents stay members
    assert closed.update_time > second.update_time

    # The agents may open the closed chat; AuthorizeParticipant says SUPPORT.
    answer = await web.authorize(order_id, "tom-2")
    assert answer.allowed and answer.role is Role.SUPPORT
    assert answer.channel is not None and answer.channel.state is OrderChannelState.CLOSED
    buyer = await web.authorize(order_id, "buyer-1")
    assert buyer.allowed and buyer.role is Role.BUYER

    details = await support.get(order_id)
    assert same_channel(details.channel, closed)
    assert [(e.action, e.service, e.reason, e.agent_user_id) for e in details.history] == [
        ("created", ORDER_SERVICE, "", ""),
        ("dispute_opened", SUPPORT_TOOL, "item not as described", "sue-1"),
        ("agent_added", SUPPORT_TOOL, "", "tom-2"),
        ("closed", ORDER_SERVICE, "delivered", ""),
    ]
    times = [e.time for e in details.history]
    for moment in times:
        assert_aware_utc(moment)
    assert times == sorted(times) and times[0] >= opened.create_time
    assert times[-1] <= details.channel.update_time


async def test_close_is_idempotent(connect: Connect) -> None:
    order, support = connect(ORDER_KEY), connect(SUPPORT_KEY)
    order_id = new_order()
    await order.ensure(order_id, "buyer-1", "seller-1")

    first = await order.close(order_id, "delivered")
    again = await support.close(order_id, "closed twice")  # another service, another reason

    assert first.state is again.state is OrderChannelState.CLOSED
    assert again.update_time == first.update_time  # nothing changed
    history = (await order.get(order_id)).history
    assert [e.action for e in history] == ["created", "closed"]  # no second event
    assert history[-1].reason == "delivered" and history[-1].service == ORDER_SERVICE


async def test_a_dispute_reopens_a_closed_chat(connect: Connect) -> None:
    order, support = connect(ORDER_KEY), connect(SUPPORT_KEY)
    order_id = new_order()
    await order.ensure(order_id, "buyer-1", "seller-1")
    await order.close(order_id)

    reopened = await support.dispute(order_id, "sue-1", "buyer complains after delivery")

    assert reopened.state is OrderChannelState.DISPUTED
    assert reopened.support_agent_user_ids == ("sue-1",)
    history = (await support.get(order_id)).history
    assert [e.action for e in history] == ["created", "closed", "dispute_opened"]


async def test_the_same_agent_again_changes_nothing(connect: Connect) -> None:
    order, support = connect(ORDER_KEY), connect(SUPPORT_KEY)
    order_id = new_order()
    await order.ensure(order_id, "buyer-1", "seller-1")

    first = await support.dispute(order_id, "sue-1", "first")
    again = await support.dispute(order_id, Participant("sue-1"), "second")

    assert again.support_agent_user_ids == ("sue-1",)
    assert again.update_time == first.update_time
    assert [e.action for e in (await support.get(order_id)).history] == [
        "created",
        "dispute_opened",
    ]


async def test_revoke_user_tokens_splits_tokens_at_revoke_time(connect: Connect) -> None:
    web = connect(WEB_KEY)
    user_id = f"rv-{uuid.uuid4().hex[:8]}"
    before = await web.issue_token(user_id)

    revocation = await web.revoke(user_id)
    after = await web.issue_token(user_id)

    assert revocation.user_id == user_id
    assert revocation.sync_state in (SyncState.SYNCED, SyncState.PENDING)
    assert_aware_utc(revocation.revoke_time)
    assert near_now(revocation.revoke_time)
    assert iat(before) < revocation.revoke_time <= iat(after)

    # Again: revoke_time moves forward (the call returns only once a new second began).
    later = await web.revoke(user_id)
    assert later.revoke_time > revocation.revoke_time


# --- errors from the real gateway ---------------------------------------------------------


async def test_unknown_order_is_not_found(connect: Connect) -> None:
    order, support = connect(ORDER_KEY), connect(SUPPORT_KEY)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: order.get("lc-no-such-order"),
        lambda: order.close("lc-no-such-order", "why"),
        lambda: support.dispute("lc-no-such-order", "sue-1"),
    ]
    for call in calls:
        with pytest.raises(NotFoundError) as missing:
            await call()
        assert missing.value.code is grpc.StatusCode.NOT_FOUND
        assert missing.value.reason == Reason.ORDER_NOT_FOUND


async def test_invalid_fields_are_named_and_nothing_is_written(connect: Connect) -> None:
    order, support, web = connect(ORDER_KEY), connect(SUPPORT_KEY), connect(WEB_KEY)
    order_id = new_order()
    await order.ensure(order_id, "buyer-1", "seller-1")
    cases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("order_id", lambda: order.get("no spaces allowed")),
        ("order_id", lambda: order.close("", "why")),
        ("reason", lambda: order.close(order_id, "x" * 501)),
        ("reason", lambda: order.close(order_id, "bell\x07")),
        ("order_id", lambda: support.dispute("bad/order", "sue-1")),
        ("agent.user_id", lambda: support.dispute(order_id, "")),
        ("agent.user_id", lambda: support.dispute(order_id, "buyer-1")),  # the buyer
        ("agent.user_id", lambda: support.dispute(order_id, "seller-1")),  # the seller
        ("agent.display_name", lambda: support.dispute(order_id, Participant("sue", "x" * 101))),
        ("agent.image_url", lambda: support.dispute(order_id, Participant("sue", "", "ftp://x"))),
        ("reason", lambda: support.dispute(order_id, "sue-1", "\u202eevil")),
        ("user_id", lambda: web.revoke("not a user id")),
        ("user_id", lambda: web.revoke("")),
    ]
    for field, call in cases:
        with pytest.raises(InvalidArgumentError) as invalid:
            await call()
        assert invalid.value.field == field, (field, invalid.value.details)
        assert invalid.value.reason == Reason.INVALID_ARGUMENT

    details = await order.get(order_id)
    assert details.channel.state is OrderChannelState.OPEN
    assert details.channel.support_agent_user_ids == ()
    assert [e.action for e in details.history] == ["created"]


async def test_a_key_without_the_grant_is_permission_denied(connect: Connect) -> None:
    order, web = connect(ORDER_KEY), connect(WEB_KEY)
    order_id = new_order()
    await order.ensure(order_id, "buyer-1", "seller-1")
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: order.dispute(order_id, "sue-1"),  # the order service may not open disputes
        lambda: order.revoke("buyer-1"),
        lambda: web.get(order_id),
        lambda: web.close(order_id),
    ]
    for call in calls:
        with pytest.raises(PermissionDeniedError) as denied:
            await call()
        assert denied.value.reason == Reason.PERMISSION_DENIED

    details = await order.get(order_id)
    assert details.channel.state is OrderChannelState.OPEN
    assert [e.action for e in details.history] == ["created"]


async def test_an_unknown_key_is_unauthenticated(connect: Connect) -> None:
    stranger = connect("not-a-key")
    with pytest.raises(UnauthenticatedError):
        await stranger.get("lc-anything")
    with pytest.raises(UnauthenticatedError):
        await stranger.revoke("buyer-1")


# --- the two clients, the wire and the models ---------------------------------------------


def test_both_clients_have_the_same_signatures() -> None:
    for name in NEW_METHODS:
        aio = inspect.signature(getattr(AsyncChatGatewayClient, name))
        sync = inspect.signature(getattr(ChatGatewayClient, name))
        assert aio == sync, name
        assert inspect.iscoroutinefunction(getattr(AsyncChatGatewayClient, name)), name
        assert not inspect.iscoroutinefunction(getattr(ChatGatewayClient, name)), name
        assert "timeout" in aio.parameters, name
        assert aio.parameters["timeout"].kind is inspect.Parameter.KEYWORD_ONLY, name


def test_new_names_are_exported() -> None:
    for name in (
        "EventAction",
        "OrderChannelDetails",
        "OrderChannelEvent",
        "OrderChannelState",
        "Revocation",
    ):
        assert name in client_package.__all__ and hasattr(client_package, name), name


async def test_requests_carry_every_argument(fake: FakeGateway) -> None:
    agent = Participant("sue-1", display_name="Sue", image_url="https://cdn.example.com/s.png")
    async with AsyncChatGatewayClient(fake.addr, "k") as client:
        details = await client.get_order_channel("o-1")
        closed = await client.close_order_channel("o-1", "delivered")
        disputed = await client.open_dispute("o-1", agent, "why\nnot")
        revocation = await client.revoke_user_tokens("u-1")
    assert fake.requests["GetOrderChannel"] == pb.GetOrderChannelRequest(order_id="o-1")
    assert fake.requests["CloseOrderChannel"] == pb.CloseOrderChannelRequest(
        order_id="o-1", reason="delivered"
    )
    assert fake.requests["OpenDispute"] == pb.OpenDisputeRequest(
        order_id="o-1", agent=agent.to_proto(), reason="why\nnot"
    )
    assert fake.requests["RevokeUserTokens"] == pb.RevokeUserTokensRequest(user_id="u-1")
    assert details.channel.order_id == "o-1" and details.history[0].action == "created"
    assert details.channel.state is OrderChannelState.OPEN
    assert closed.state is OrderChannelState.CLOSED
    assert disputed.support_agent_user_ids == ("sue-1",)
    assert revocation.user_id == "u-1" and revocation.sync_state is SyncState.PENDING


async def test_sync_requests_carry_every_argument(fake: FakeGateway) -> None:
    def calls() -> None:
        with ChatGatewayClient(fake.addr, "k") as client:
            client.close_order_channel("o-2")
            client.open_dispute("o-2", "sue-2")
            client.get_order_channel("o-2")
            client.revoke_user_tokens("u-2")

    await asyncio.to_thread(calls)
    assert fake.requests["CloseOrderChannel"] == pb.CloseOrderChannelRequest(order_id="o-2")
    assert fake.requests["OpenDispute"] == pb.OpenDisputeRequest(
        order_id="o-2", agent=pb.Participant(user_id="sue-2")
    )
    assert fake.requests["GetOrderChannel"] == pb.GetOrderChannelRequest(order_id="o-2")
    assert fake.requests["RevokeUserTokens"] == pb.RevokeUserTokensRequest(user_id="u-2")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.NOT_FOUND, NotFoundError),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgumentError),
        (grpc.StatusCode.INTERNAL, ChatGatewayError),
    ],
    ids=lambda v: getattr(v, "name", getattr(v, "__name__", str(v))),
)
async def test_failures_of_the_new_calls_are_mapped(
    fake: FakeGateway, code: grpc.StatusCode, expected: type[ChatGatewayError]
) -> None:
    fake.abort = (code, "order_id: scripted", ())
    async with AsyncChatGatewayClient(fake.addr, "k") as client:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: client.get_order_channel("o-1"),
            lambda: client.close_order_channel("o-1"),
            lambda: client.open_dispute("o-1", "sue"),
            lambda: client.revoke_user_tokens("u"),
        ]
        for call in calls:
            with pytest.raises(expected) as caught:
                await call()
            assert type(caught.value) is expected and caught.value.code is code
            assert caught.value.__cause__ is None

    def sync_calls() -> list[BaseException]:
        caught: list[BaseException] = []
        with ChatGatewayClient(fake.addr, "k") as client:
            for call in (
                lambda: client.get_order_channel("o-1"),
                lambda: client.close_order_channel("o-1"),
                lambda: client.open_dispute("o-1", "sue"),
                lambda: client.revoke_user_tokens("u"),
            ):
                try:
                    call()
                except ChatGatewayError as exc:
                    caught.append(exc)
        return caught

    errors = await asyncio.to_thread(sync_calls)
    assert [type(e) for e in errors] == [expected] * 4
    rpcs = ("GetOrderChannel", "CloseOrderChannel", "OpenDispute", "RevokeUserTokens")
    assert fake.attempts == dict.fromkeys(rpcs, 2)  # once per client: no retry


async def test_timeout_applies_to_the_new_calls(fake: FakeGateway) -> None:
    fake.stall_s = 3.0
    async with AsyncChatGatewayClient(fake.addr, "k") as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(DeadlineExceededError):
            await client.close_order_channel("o-1", timeout=0.3)
        with pytest.raises(DeadlineExceededError):
            await client.revoke_user_tokens("u", timeout=0.3)
        assert loop.time() - started < 2.5  # each gave up after about 0.3 s, not 3 s

    def sync_call() -> None:
        with ChatGatewayClient(fake.addr, "k") as blocking:
            blocking.open_dispute("o-1", "sue", timeout=0.3)

    started = loop.time()
    with pytest.raises(DeadlineExceededError):
        await asyncio.to_thread(sync_call)
    assert loop.time() - started < 2.5


def test_order_channel_from_an_older_gateway() -> None:
    """A gateway that sends neither state, agents nor update_time: UNSPECIFIED, no agents,
    ``update_time`` is ``create_time``; an unknown state number is UNSPECIFIED too."""
    message = pb.OrderChannel(order_id="o-1", cid="messaging:order-o-1")
    message.create_time.FromDatetime(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    old = OrderChannel.from_proto(message)
    assert old.state is OrderChannelState.UNSPECIFIED and old.support_agent_user_ids == ()
    assert old.update_time == old.create_time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    message.state = pb.OrderChannelState.ValueType(42)  # a state added after this client
    assert OrderChannel.from_proto(message).state is OrderChannelState.UNSPECIFIED


def test_order_channel_built_the_old_way_still_works() -> None:
    created = datetime(2026, 1, 2, tzinfo=UTC)
    channel = OrderChannel(
        "o-1", "messaging", "order-o-1", "messaging:order-o-1", "b", "s", SyncState.SYNCED, created
    )
    assert channel.update_time == created
    assert channel.state is OrderChannelState.UNSPECIFIED
    assert channel.support_agent_user_ids == ()
    changed = OrderChannel(
        "o-1",
        "messaging",
        "order-o-1",
        "messaging:order-o-1",
        "b",
        "s",
        SyncState.SYNCED,
        created,
        state=OrderChannelState.DISPUTED,
        support_agent_user_ids=("sue",),
        update_time=created + timedelta(hours=1),
    )
    assert changed.update_time == created + timedelta(hours=1)


def test_support_role_and_history_from_proto() -> None:
    authorization = Authorization.from_proto(
        pb.AuthorizeParticipantResponse(allowed=True, role=pb.PARTICIPANT_ROLE_SUPPORT)
    )
    assert authorization.role is Role.SUPPORT
    event = pb.OrderChannelEvent(
        action="agent_added", service="support-tool", reason="r", agent_user_id="sue"
    )
    event.time.FromDatetime(datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))
    assert OrderChannelEvent.from_proto(event) == OrderChannelEvent(
        time=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        action=EventAction.AGENT_ADDED,
        service="support-tool",
        reason="r",
        agent_user_id="sue",
    )
