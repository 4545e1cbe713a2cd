"""The servicer (proto <-> domain) under grpcio-testing, on fake ports.

grpcio-testing drives synchronous servicers, so the async servicer is adapted: each call
runs on one event loop in a background thread, as the real aio server would run it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import grpc_testing
import jwt
import pytest
from google.protobuf import duration_pb2
from tradetrust.chat.v1 import chat_gateway_pb2 as pb

from gateway.domain import InvalidArgumentError
from gateway.outbox import ChannelSync
from gateway.rpc.servicer import ChatGatewayServicer
from gateway.service import ChatService
from gateway.tokens import StreamTokenSigner
from tests.helpers.clock import FakeClock
from tests.helpers.fakes import FakeChatBackend, FakeRegistry

SERVICE = pb.DESCRIPTOR.services_by_name["ChatGateway"]
SECRET = "unit-test-stream-secret-at-least-32-bytes-long"


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


class _SyncAdapter:
    """Presents the async servicer's methods as blocking ones."""

    def __init__(self, inner: ChatGatewayServicer, loop: _LoopThread) -> None:
        self._inner, self._loop = inner, loop

    def __getattr__(self, name: str) -> Callable[[Any, Any], Any]:
        method = getattr(self._inner, name)
        return lambda request, context: self._loop.run(method(request, context))


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(FakeClock())


@pytest.fixture
def server(registry: FakeRegistry) -> Iterator[grpc_testing.Server]:
    loop = _LoopThread()
    clock = registry.clock
    service = ChatService(
        registry=registry,
        sync=ChannelSync(registry=registry, backend=FakeChatBackend(), clock=clock),
        signer=StreamTokenSigner(api_key="browser-key", api_secret=SECRET, clock=clock),
        clock=clock,
    )
    adapter = _SyncAdapter(ChatGatewayServicer(service), loop)
    yield grpc_testing.server_from_dictionary({SERVICE: adapter}, grpc_testing.strict_real_time())
    loop.close()


def call(server: grpc_testing.Server, method: str, request: Any) -> tuple[Any, grpc.StatusCode]:
    rpc = server.invoke_unary_unary(SERVICE.methods_by_name[method], (), request, timeout=5)
    response, _, code, _ = rpc.termination()
    return response, code


def test_issue_token_maps_fields(server: grpc_testing.Server) -> None:
    request = pb.IssueTokenRequest(user_id="buyer-42", ttl=duration_pb2.Duration(seconds=600))
    response, code = call(server, "IssueToken", request)
    assert code == grpc.StatusCode.OK
    assert response.user_id == "buyer-42" and response.api_key == "browser-key"
    assert response.token.count(".") == 2
    assert response.expire_time.ToDatetime().timestamp() > 0


def test_issue_token_in_one_second_each_user_gets_their_own(
    server: grpc_testing.Server, registry: FakeRegistry
) -> None:
    # The clock stands still: every call below falls in the same second.
    seen: dict[tuple[str, int], str] = {}
    for user, ttl in [("a", 600), ("b", 600), ("a", 600), ("a", 900), ("b", 600)]:
        request = pb.IssueTokenRequest(user_id=user, ttl=duration_pb2.Duration(seconds=ttl))
        response, code = call(server, "IssueToken", request)
        assert code == grpc.StatusCode.OK
        assert response.user_id == user
        expected_exp = int(registry.clock().timestamp()) + ttl
        assert response.expire_time.seconds == expected_exp
        payload = jwt.decode(
            response.token, SECRET, algorithms=["HS256"], options={"verify_exp": False}
        )
        assert (payload["user_id"], payload["exp"]) == (user, expected_exp)
        assert seen.setdefault((user, ttl), response.token) == response.token
    assert len(set(seen.values())) == 3


def _ensure(server: grpc_testing.Server) -> Any:
    request = pb.EnsureOrderChannelRequest(
        order_id="ord-1",
        buyer=pb.Participant(user_id="b", display_name="Bea"),
        seller=pb.Participant(user_id="s"),
    )
    response, code = call(server, "EnsureOrderChannel", request)
    assert code == grpc.StatusCode.OK
    return response


def test_ensure_maps_fields(server: grpc_testing.Server, registry: FakeRegistry) -> None:
    response = _ensure(server)
    assert response.created
    ch = response.channel
    assert (ch.order_id, ch.channel_type, ch.channel_id, ch.cid) == (
        "ord-1",
        "messaging",
        "order-ord-1",
        "messaging:order-ord-1",
    )
    assert (ch.buyer_user_id, ch.seller_user_id) == ("b", "s")
    assert ch.sync_state == pb.SYNC_STATE_SYNCED
    assert ch.create_time.ToDatetime().replace(tzinfo=registry.clock.now.tzinfo) == (
        registry.rows["ord-1"].create_time
    )
    assert registry.rows["ord-1"].buyer.display_name == "Bea"


def test_authorize_maps_fields_of_a_participant(server: grpc_testing.Server) -> None:
    _ensure(server)
    answer, code = call(
        server,
        "AuthorizeParticipant",
        pb.AuthorizeParticipantRequest(order_id="ord-1", user_id="b"),
    )
    assert code == grpc.StatusCode.OK
    assert answer.allowed and answer.role == pb.PARTICIPANT_ROLE_BUYER
    assert answer.channel.cid == "messaging:order-ord-1"


def test_authorize_maps_fields_of_a_stranger(server: grpc_testing.Server) -> None:
    _ensure(server)
    denied, _ = call(
        server,
        "AuthorizeParticipant",
        pb.AuthorizeParticipantRequest(order_id="ord-1", user_id="x"),
    )
    assert not denied.allowed and denied.role == pb.PARTICIPANT_ROLE_UNSPECIFIED
    assert not denied.HasField("channel")


# The servicer sets no status itself (grpc-testing reports an unhandled exception as
# UNKNOWN); the error-mapping interceptor turns domain errors into statuses.
@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("AuthorizeParticipant", pb.AuthorizeParticipantRequest(order_id="nope", user_id="b")),
        (
            "IssueToken",
            pb.IssueTokenRequest(user_id="u", ttl=duration_pb2.Duration(seconds=5, nanos=-1)),
        ),
    ],
    ids=["not found", "invalid argument"],
)
def test_domain_errors_propagate_to_the_edge(
    server: grpc_testing.Server, method: str, request_: Any
) -> None:
    _, code = call(server, method, request_)
    assert code == grpc.StatusCode.UNKNOWN


@pytest.mark.parametrize(("seconds", "nanos"), [(5, -1), (-5, 1), (60, 1_000_000_000), (10**12, 0)])
def test_malformed_durations_are_invalid(seconds: int, nanos: int) -> None:
    from gateway.rpc.convert import ttl_from_proto

    with pytest.raises(InvalidArgumentError, match="^ttl: "):
        ttl_from_proto(
            pb.IssueTokenRequest(
                user_id="u", ttl=duration_pb2.Duration(seconds=seconds, nanos=nanos)
            )
        )
