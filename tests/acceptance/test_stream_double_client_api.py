"""The Stream double's client-side API, which the browser tests stand on, over real HTTP and
WebSocket (aiohttp, no browser): Stream's answers, events and errors for a user's token.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest

from tests.stream_double import StreamDouble
from tests.stream_double.fixtures import STREAM_TEST_KEY, STREAM_TEST_SECRET
from tests.stream_double.realtime import state_of

BUYER, SELLER, STRANGER = "buyer-d", "seller-d", "stranger-d"
ORIGIN = "http://127.0.0.1:9"
CID = "messaging:order-d"
CHANNEL = "/channels/messaging/order-d"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def user_token(user_id: str, exp_in: int = 600) -> str:
    claims = {"user_id": user_id, "exp": int(time.time()) + exp_in}
    return jwt.encode(claims, STREAM_TEST_SECRET, algorithm="HS256")


@pytest.fixture
async def http(stream_double: StreamDouble) -> AsyncIterator[aiohttp.ClientSession]:
    stream_double.put_channel("messaging", "order-d", [BUYER, SELLER])
    state_of(stream_double).cors_origins.add(ORIGIN)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


class Client:
    """Calls as stream-chat makes them for ``user_id``."""

    def __init__(self, double: StreamDouble, http: aiohttp.ClientSession, user_id: str) -> None:
        self.double, self.http, self.user_id = double, http, user_id
        self.token = user_token(user_id)

    def params(self, **extra: str) -> dict[str, str]:
        return {"api_key": STREAM_TEST_KEY, "user_id": self.user_id, **extra}

    async def post(self, path: str, body: Any = None, **params: str) -> tuple[int, Any]:
        data = (
            b""
            if body is None
            else (body if isinstance(body, bytes) else json.dumps(body).encode())
        )
        async with self.http.post(
            self.double.url + path,
            params=self.params(**params),
            data=data,
            headers={
                "Authorization": self.token,
                "Stream-Auth-Type": "jwt",
                "Content-Type": "application/json",
                "Origin": ORIGIN,
            },
        ) as response:
            return response.status, await response.json()

    async def connect(self) -> aiohttp.ClientWebSocketResponse:
        payload = json.dumps({"user_id": self.user_id, "user_details": {"id": self.user_id}})
        return await self.http.ws_connect(
            self.double.url + "/connect",
            params=self.params(
                json=payload, authorization=self.token, **{"stream-auth-type": "jwt"}
            ),
        )


def assert_stream_error(status: int, body: Any, want_status: int, want_code: int) -> None:
    assert status == want_status, body
    assert body["code"] == want_code and body["StatusCode"] == want_status, body
    assert isinstance(body["message"], str) and body["message"]


async def test_sockets_watch_messages_and_reads(
    stream_double: StreamDouble, http: aiohttp.ClientSession
) -> None:
    buyer, seller = Client(stream_double, http, BUYER), Client(stream_double, http, SELLER)
    async with await buyer.connect() as buyer_ws, await seller.connect() as seller_ws:
        hello = [await ws.receive_json(timeout=5) for ws in (buyer_ws, seller_ws)]
        assert [h["type"] for h in hello] == ["health.check"] * 2
        assert [h["me"]["id"] for h in hello] == [BUYER, SELLER]
        for client, h in ((buyer, hello[0]), (seller, hello[1])):
            status, state = await client.post(
                CHANNEL + "/query", {"state": True, "watch": True}, connection_id=h["connection_id"]
            )
            assert status == 200, state
            assert state["channel"]["cid"] == CID
            assert "send-message" in state["channel"]["own_capabilities"]
            assert [m["user_id"] for m in state["members"]] == [BUYER, SELLER]

        status, sent = await buyer.post(
            CHANNEL + "/message", {"message": {"id": "m-1", "text": "hi"}}
        )
        assert status == 200 and sent["message"]["id"] == "m-1"
        event = await seller_ws.receive_json(timeout=5)
        assert (event["type"], event["message"]["text"], event["unread_count"]) == (
            "message.new",
            "hi",
            1,
        )
        assert (await buyer_ws.receive_json(timeout=5))["type"] == "message.new"

        status, read = await seller.post(CHANNEL + "/read", {})
        assert status == 200 and read["event"]["last_read_message_id"] == "m-1"
        for ws in (buyer_ws, seller_ws):
            event = await ws.receive_json(timeout=5)
            assert (event["type"], event["user"]["id"]) == ("message.read", SELLER)

        await buyer_ws.send_json([{"type": "health.check", "client_id": "x"}])
        assert (await buyer_ws.receive_json(timeout=5))["type"] == "health.check"
    assert [c.close_code for c in state_of(stream_double).connections] == [1000, 1000]


async def test_an_expired_token_is_refused_on_the_socket_and_over_http(
    stream_double: StreamDouble, http: aiohttp.ClientSession
) -> None:
    buyer = Client(stream_double, http, BUYER)
    buyer.token = user_token(BUYER, exp_in=-10)
    async with await buyer.connect() as ws:
        refusal = await ws.receive_json(timeout=5)
        assert refusal["error"]["code"] == 40 and refusal["error"]["StatusCode"] == 401
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1000
    status, body = await buyer.post(CHANNEL + "/query", {"state": True})
    assert_stream_error(status, body, 401, 40)

    # expire_tokens_seen: a token that was fine is refused from now on, a newer one is not.
    buyer.token = user_token(BUYER)
    assert (await buyer.post(CHANNEL + "/query", {"state": True}))[0] == 200
    state_of(stream_double).expire_tokens_seen()
    assert_stream_error(*await buyer.post(CHANNEL + "/query", {"state": True}), 401, 40)
    buyer.token = user_token(BUYER, exp_in=700)
    assert (await buyer.post(CHANNEL + "/query", {"state": True}))[0] == 200


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        (CHANNEL + "/query", b"{not json", 400, 4),
        (CHANNEL + "/query", [1, 2], 400, 4),
        (CHANNEL + "/query", {"watch": True}, 400, 4),  # no connection_id
        (CHANNEL + "/query", {"messages": {"limit": "ten"}}, 400, 4),
        (CHANNEL + "/message", {}, 400, 4),
        (CHANNEL + "/message", {"message": {"text": 7}}, 400, 4),
        (CHANNEL + "/message", {"message": {"text": "  "}}, 400, 4),
        (CHANNEL + "/message", {"message": {"text": "x" * 5001}}, 400, 4),
        (CHANNEL + "/message", {"message": {"text": "a", "attachments": ["img"]}}, 400, 4),
        (CHANNEL + "/read", {"message_id": "nope"}, 400, 4),
        (CHANNEL + "/event", {"event": {"type": "order.paid"}}, 400, 4),
        (CHANNEL + "/image", b"not multipart", 400, 4),
        ("/channels", {"filter_conditions": {"name": "x"}}, 400, 4),
        ("/channels/messaging/order-unknown/message", {"message": {"text": "a"}}, 404, 16),
        ("/channels/messaging/order-unknown/query", {}, 403, 17),
        ("/channels/messaging/order-d/truncate", {}, 404, 16),
    ],
)
async def test_bad_input_gets_a_stream_error(
    stream_double: StreamDouble,
    http: aiohttp.ClientSession,
    path: str,
    body: Any,
    status: int,
    code: int,
) -> None:
    assert_stream_error(*await Client(stream_double, http, BUYER).post(path, body), status, code)


async def test_only_members_act_and_a_frozen_channel_takes_no_message(
    stream_double: StreamDouble, http: aiohttp.ClientSession
) -> None:
    stranger = Client(stream_double, http, STRANGER)
    for path in ("/query", "/message", "/read"):
        assert_stream_error(
            *await stranger.post(CHANNEL + path, {"message": {"text": "a"}}), 403, 17
        )
    object.__setattr__(stream_double.channels[CID], "frozen", True)
    buyer = Client(stream_double, http, BUYER)
    assert_stream_error(
        *await buyer.post(CHANNEL + "/message", {"message": {"text": "a"}}), 403, 17
    )
    status, state = await buyer.post(CHANNEL + "/query", {"state": True})
    assert status == 200 and "send-message" not in state["channel"]["own_capabilities"]


async def test_images_only_and_served_back(
    stream_double: StreamDouble, http: aiohttp.ClientSession
) -> None:
    buyer = Client(stream_double, http, BUYER)

    async def upload(data: bytes, content_type: str) -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("file", data, filename="a b.png", content_type=content_type)
        async with http.post(
            stream_double.url + CHANNEL + "/image",
            params=buyer.params(),
            data=form,
            headers={"Authorization": buyer.token, "Stream-Auth-Type": "jwt"},
        ) as response:
            return response.status, await response.json()

    assert_stream_error(*await upload(b"%PDF-1.7 ...", "application/pdf"), 400, 4)
    assert_stream_error(*await upload(b"%PDF-1.7 ...", "image/png"), 400, 4)  # not a PNG
    status, body = await upload(PNG, "image/png")
    assert status == 200 and body["file"].startswith(stream_double.url + "/uploads/")
    async with http.get(body["file"]) as served:
        assert served.status == 200 and served.content_type == "image/png"
        assert await served.read() == PNG


async def test_cors_for_the_allowed_origin_only(
    stream_double: StreamDouble, http: aiohttp.ClientSession
) -> None:
    url = stream_double.url + CHANNEL + f"/query?api_key={STREAM_TEST_KEY}"
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,stream-auth-type",
    }
    async with http.options(url, headers={**preflight, "Origin": ORIGIN}) as allowed:
        assert allowed.status == 204
        assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "stream-auth-type" in allowed.headers["Access-Control-Allow-Headers"]
    async with http.options(url, headers={**preflight, "Origin": "http://evil.example"}) as other:
        assert other.status == 403
        assert "Access-Control-Allow-Origin" not in other.headers
    # Errors carry CORS headers too, so the SDK can read code 40.
    buyer = Client(stream_double, http, BUYER)
    buyer.token = user_token(BUYER, exp_in=-10)
    async with http.post(
        stream_double.url + CHANNEL + "/query",
        params=buyer.params(),
        json={},
        headers={"Authorization": buyer.token, "Stream-Auth-Type": "jwt", "Origin": ORIGIN},
    ) as refused:
        assert refused.status == 401
        assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_an_outage_closes_the_sockets_going_away(
    stream_double: StreamDouble, http: aiohttp.ClientSession
) -> None:
    async with await Client(stream_double, http, BUYER).connect() as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "health.check"
        await stream_double.stop()
        closing = await ws.receive(timeout=5)
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1001)
    assert [c.close_code for c in state_of(stream_double).connections] == [1001]
