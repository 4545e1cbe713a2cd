"""Client checks run by the interpreter of a fresh venv holding only tradetrust-chat-client.

Usage: python fresh_venv_check.py HOST:PORT  (a dev-profile gateway). Exits 0 and prints
"fresh-venv client checks passed" when every check holds; any failure raises.
"""

# ruff: noqa: T201

from __future__ import annotations

import asyncio
import importlib.util
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import grpc
import tradetrust
from tradetrust.chat.client import (
    AsyncChatGatewayClient,
    AsyncTokenCache,
    ChatGatewayClient,
    ClientOptions,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    OrderChannelState,
    Participant,
    PermissionDeniedError,
    Role,
    SyncState,
    UnauthenticatedError,
)
from tradetrust.chat.v1 import chat_gateway_pb2, chat_gateway_pb2_grpc

ORDER_KEY, WEB_KEY = "dev-order-service-key", "dev-web-backend-key"
SUPPORT_KEY = "dev-support-tool-key"


def check_installation() -> None:
    for absent in ("gateway", "grpc_tools", "grpc_status", "google.rpc", "jwt"):
        try:
            found = importlib.util.find_spec(absent) is not None
        except ModuleNotFoundError:
            found = False
        assert not found, f"{absent} must not be importable in the client-only venv"
    root = Path(tradetrust.__file__).parent
    assert "site-packages" in str(root), f"not the installed package: {root}"
    for shipped in (
        "py.typed",
        "chat/v1/chat_gateway_pb2.pyi",
        "chat/v1/chat_gateway_pb2_grpc.pyi",
    ):
        assert (root / shipped).is_file(), f"{shipped} is not shipped"
    assert chat_gateway_pb2.DESCRIPTOR.package == "tradetrust.chat.v1"
    assert hasattr(chat_gateway_pb2_grpc, "ChatGatewayStub")


async def check_async(addr: str) -> None:
    order_id = f"fv-{uuid.uuid4().hex[:10]}"
    options = ClientOptions(deadline_s=5)
    async with (
        AsyncChatGatewayClient(addr, ORDER_KEY, options=options) as order,
        AsyncChatGatewayClient(addr, WEB_KEY, options=options) as web,
    ):
        await order.wait_until_ready(5)
        buyer = Participant("fv-buyer", display_name="Buyer")
        ensured = await order.ensure_order_channel(order_id, buyer, "fv-seller")
        assert ensured.created and ensured.channel.cid.endswith(order_id)
        assert ensured.channel.sync_state is SyncState.SYNCED
        again = await order.ensure_order_channel(order_id, buyer, "fv-seller")
        assert not again.created and again.channel == ensured.channel
        answer = await web.authorize_participant(order_id, "fv-buyer")
        assert answer.allowed and answer.role is Role.BUYER

        async with AsyncChatGatewayClient(addr, SUPPORT_KEY, options=options) as support:
            disputed = await support.open_dispute(order_id, "fv-agent", "check")
            assert disputed.state is OrderChannelState.DISPUTED
            closed = await order.close_order_channel(order_id, "done")
            assert closed.support_agent_user_ids == ("fv-agent",)
            details = await support.get_order_channel(order_id)
            assert [e.action for e in details.history] == ["created", "dispute_opened", "closed"]
            agent = await web.authorize_participant(order_id, "fv-agent")
            assert agent.allowed and agent.role is Role.SUPPORT
            revocation = await web.revoke_user_tokens("fv-buyer")
            assert revocation.user_id == "fv-buyer" and revocation.revoke_time.tzinfo is not None

        for call, expected in [
            (order.ensure_order_channel(order_id, "fv-buyer", "other"), ConflictError),
            (web.authorize_participant("fv-unknown", "fv-buyer"), NotFoundError),
            (order.issue_token("fv-buyer"), PermissionDeniedError),
            (web.issue_token("fv-buyer", ttl=1), InvalidArgumentError),
        ]:
            try:
                await call
            except expected as exc:
                assert exc.code.name, exc
            else:
                raise AssertionError(f"expected {expected.__name__}")

        cache = AsyncTokenCache(web, ttl=timedelta(minutes=10))
        tokens = await asyncio.gather(*(cache.get("fv-buyer") for _ in range(5)))
        assert all(t is tokens[0] for t in tokens) and tokens[0].api_key == "local-dev-key"
        await cache.close()


def check_sync(addr: str) -> None:
    with ChatGatewayClient(addr, WEB_KEY) as web:
        token = web.issue_token("fv-sync", ttl=timedelta(minutes=2))
        assert token.user_id == "fv-sync" and token.token.count(".") == 2
        assert "token=" not in repr(token), "the token must not show in repr"
        try:
            web.ensure_order_channel("fv-x", "a", "a")
        except PermissionDeniedError:
            pass
    with ChatGatewayClient(addr, "wrong-key") as stranger:
        try:
            stranger.issue_token("fv-sync")
        except UnauthenticatedError as exc:
            assert exc.code is grpc.StatusCode.UNAUTHENTICATED
        else:
            raise AssertionError("expected UnauthenticatedError")


def main() -> int:
    addr = sys.argv[1]
    check_installation()
    asyncio.run(check_async(addr))
    check_sync(addr)
    print("fresh-venv client checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
