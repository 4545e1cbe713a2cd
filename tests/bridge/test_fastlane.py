"""The token fast lane against aiohttp: for any request it takes, the bytes the routed
handler answers; for any it declines, nothing counted or changed.

The differential test sends each generated request to the lane (called on the gateway's
loop) and, when the lane answers, the same bytes to the same gateway's bridge with the lane
off (aiohttp's routed handler). Answers compare byte for byte, but for ``Date`` and the
token's own second. Requests are generated from the headers real clients send and hostile
ones: case variants, duplicates, odd whitespace, control and non-ASCII bytes, obs-fold,
bare line feeds, bodies and pipelined requests, and every kind of session.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import jwt
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.app import Gateway
from gateway.bridge.fastlane import TokenFastLane
from gateway.bridge.server import FAST_LANE
from gateway.config import DEV_STREAM_API_SECRET, load_settings
from tests.helpers.bridge import TOKEN_PATH, session_jwt
from tests.helpers.gateways import GatewayFactory
from tests.helpers.threaded import ThreadedGateway, read_response

USER = "buyer-1"
GOOD = session_jwt(USER, exp_in=3600)
OTHER = session_jwt("seller-7", exp_in=3600)
EXPIRED = session_jwt(USER, exp_in=-3600)
FORGED = session_jwt(USER, key="another-secret-of-at-least-32-bytes-0123", exp_in=3600)
ORIGIN = "http://localhost:5173"
LINE = b"GET /api/chat/stream/token HTTP/1.1\r\n"


def request(
    *headers: tuple[str, str], line: bytes = LINE, tail: bytes = b"", host: str | None = "x"
) -> bytes:
    """A request head with ``headers`` after ``Host`` (unless ``host`` is None)."""
    if host is not None:
        headers = (("Host", host), *headers)
    return line + b"".join(f"{n}: {v}\r\n".encode() for n, v in headers) + b"\r\n" + tail


@pytest.fixture(scope="module")
def tg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedGateway]:
    """A dev-profile gateway with the lane off (its bridge is aiohttp's routed handler) and
    no practical rate limit (both answers of a comparison come from one limiter)."""
    tmp: Path = tmp_path_factory.mktemp("fastlane")
    environ = {
        "CHAT_GATEWAY_DATABASE_URL": f"sqlite:///{tmp / 'registry.db'}",
        "CHAT_GATEWAY_GRPC_ADDR": "127.0.0.1:0",
        "CHAT_GATEWAY_HTTP_ADDR": "127.0.0.1:0",
        "CHAT_GATEWAY_HTTP_FAST_LANE": "false",
        "CHAT_GATEWAY_CORS_ORIGINS": ORIGIN,
        "CHAT_GATEWAY_TOKEN_RATE_LIMIT": "1000000000",
        "CHAT_GATEWAY_TOKEN_RATE_BURST": "1000000000",
    }
    with ThreadedGateway(load_settings(environ, dev=True)) as gateway:
        yield gateway


def lane_of(tg: ThreadedGateway) -> TokenFastLane:
    return tg.gateway.bridge.app[FAST_LANE]


def token_metrics(gateway: Gateway) -> list[str]:
    return [
        line
        for line in gateway.metrics.render().decode().splitlines()
        if line.startswith("chat_gateway_http_requests") and TOKEN_PATH in line
    ]


_DATE = re.compile(rb"\r\nDate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n")


def normalized(response: bytes) -> tuple[bytes, dict[str, object]]:
    """The head with ``Date``'s value blanked (its format checked), and the body with the
    token's timestamps replaced by its lifetime (the two answers may straddle a second)."""
    head, _, body = response.partition(b"\r\n\r\n")
    head, dates = _DATE.subn(b"\r\nDate: -\r\n", head + b"\r\n")
    assert dates == 1, response
    data = json.loads(body)
    claims = jwt.decode(data.pop("token"), DEV_STREAM_API_SECRET, algorithms=["HS256"])
    data.pop("expiresAt")
    data["lifetime"] = claims.pop("exp") - claims.pop("iat")
    data["claims"] = claims
    head = re.sub(rb"Content-Length: \d+", b"Content-Length: -", head)
    return head, data


def assert_same_as_routed(tg: ThreadedGateway, data: bytes) -> bytes:
    answer = tg.call(lane_of(tg).answer, data)
    assert answer is not None, data
    routed = tg.exchange(data)
    assert routed.startswith(b"HTTP/1.1 200 OK\r\n"), routed
    assert normalized(answer) == normalized(routed)
    assert len(answer) == len(routed)
    return answer


# -- what real clients send is taken, and answered as aiohttp answers it --------------------


@pytest.mark.parametrize(
    "data",
    [
        request(("Authorization", f"Bearer {GOOD}"), host="127.0.0.1:8080"),  # wrk
        request(
            ("Host", "localhost:8080"),
            ("User-Agent", "curl/8.5.0"),
            ("Accept", "*/*"),
            ("Authorization", f"Bearer {GOOD}"),
            host=None,
        ),
        request(  # the browser's same-origin fetch of the token provider
            ("Host", "chat.tradetrust.example"),
            ("Connection", "keep-alive"),
            ("sec-ch-ua-platform", '"Linux"'),
            ("authorization", f"Bearer {OTHER}"),
            ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0 Safari/537.36"),
            ("Accept", "application/json"),
            ("Sec-Fetch-Site", "same-origin"),
            ("Sec-Fetch-Mode", "cors"),
            ("Referer", "http://chat.tradetrust.example/chat/stream/ord-1"),
            ("Accept-Encoding", "gzip, deflate, br, zstd"),
            ("Accept-Language", "en-US,en;q=0.9"),
            ("Cookie", "tt_session=whatever; theme=dark"),
            ("X-Request-Id", "req-123"),
            host=None,
        ),
        request(("AUTHORIZATION", f"bearer \t {GOOD} \t"), ("host", ""), host=None),
    ],
    ids=["wrk", "curl", "browser", "odd-case-and-space"],
)
def test_common_requests_are_taken_and_answered_as_routed(tg: ThreadedGateway, data: bytes) -> None:
    before = token_metrics(tg.gateway)
    assert_same_as_routed(tg, data)
    assert token_metrics(tg.gateway) != before  # counted (twice: lane and routed)


# -- what it declines is left to aiohttp, untouched ---------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        request(("Authorization", f"Bearer {GOOD}"), host=None),  # aiohttp refuses it
        request(("Authorization", f"Bearer {EXPIRED}")),
        request(("Authorization", f"Bearer {FORGED}")),
        request(("Authorization", "Basic dXNlcjpwYXNz")),
        request(("Cookie", f"tt_session={GOOD}")),  # the cookie is the routed handler's
        request(("Origin", ORIGIN), ("Authorization", f"Bearer {GOOD}")),
        request(("Authorization", f"Bearer {GOOD}"), ("Connection", "close")),
        request(("Authorization", f"Bearer {GOOD}"), ("Authorization", f"Bearer {OTHER}")),
        request(("Authorization", f"Bearer {GOOD}"), ("Content-Length", "2"), tail=b"{}"),
        request(("Authorization", f"Bearer {GOOD}"), ("Transfer-Encoding", "chunked")),
        request(("Authorization", f"Bearer {GOOD}"), ("Expect", "100-continue")),
        request(("Authorization", f"Bearer {GOOD}"), ("Upgrade", "websocket")),
        request(("Authorization", f"Bearer {GOOD}"), tail=request()),  # pipelined
        request(("Authorization", f"Bearer {GOOD}"))[:-2],  # the head is not complete
        request(
            ("Authorization", f"Bearer {GOOD}"), line=b"HEAD /api/chat/stream/token HTTP/1.1\r\n"
        ),
        request(
            ("Authorization", f"Bearer {GOOD}"),
            line=b"GET /api/chat/stream/token?ttl=60 HTTP/1.1\r\n",
        ),
        request(
            ("Authorization", f"Bearer {GOOD}"), line=b"GET /api/chat/stream/token HTTP/1.0\r\n"
        ),
        request(("Authorization", f"Bearer {GOOD}"), ("X-Note", "caf\u00e9")),
        request(("Authorization", f"Bearer {GOOD}"), *[(f"X-H{i}", "v") for i in range(64)]),
        LINE + f"Host: x\r\nAuthorization: Bearer {GOOD}\r\n X-Folded: yes\r\n\r\n".encode(),
        LINE + f"Authorization: Bearer {GOOD}\nHost: x\r\n\r\n".encode(),
        LINE + f"Host: x\r\nAuthorization : Bearer {GOOD}\r\n\r\n".encode(),
        LINE + f"Host: x\r\nAuthorization: Bearer {GOOD}\r\n\r\r\n".encode(),
    ],
)
def test_declined_requests_change_nothing(tg: ThreadedGateway, data: bytes) -> None:
    before = token_metrics(tg.gateway)
    assert tg.call(lane_of(tg).answer, data) is None
    assert token_metrics(tg.gateway) == before


def test_a_user_over_the_rate_limit_is_declined_and_refused_by_the_route(
    tmp_path: Path,
) -> None:
    environ = {
        "CHAT_GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "CHAT_GATEWAY_GRPC_ADDR": "127.0.0.1:0",
        "CHAT_GATEWAY_HTTP_ADDR": "127.0.0.1:0",
        "CHAT_GATEWAY_HTTP_FAST_LANE": "false",
        "CHAT_GATEWAY_TOKEN_RATE_LIMIT": "1",
        "CHAT_GATEWAY_TOKEN_RATE_BURST": "1",
    }
    with ThreadedGateway(load_settings(environ, dev=True)) as limited:
        lane = lane_of(limited)
        data = request(("Authorization", f"Bearer {GOOD}"))
        assert limited.call(lane.answer, data) is not None  # the burst's one token
        time.sleep(1.1)  # the next second: no token of this second to hand out again
        before = token_metrics(limited.gateway)
        assert limited.call(lane.answer, data) is None
        assert token_metrics(limited.gateway) == before
        assert limited.exchange(data).startswith(b"HTTP/1.1 429 ")


def test_draining_gateway_declines(tg: ThreadedGateway) -> None:
    admission = tg.gateway.admission
    data = request(("Authorization", f"Bearer {GOOD}"))
    tg.call(setattr, admission, "draining", True)
    try:
        assert tg.call(lane_of(tg).answer, data) is None
    finally:
        tg.call(setattr, admission, "draining", False)
    assert tg.call(lane_of(tg).answer, data) is not None


# -- generated requests: the lane answers as aiohttp does, or declines ----------------------

_NAME = st.from_regex(r"\A[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}\Z")
_OWS = st.sampled_from(["", " ", "\t", "  ", " \t "])
_AUTH = st.sampled_from(
    [
        f"Bearer {GOOD}",
        f"bearer {OTHER}",
        f"BEARER   {GOOD}",
        f"Bearer {EXPIRED}",
        f"Bearer {FORGED}",
        f"Bearer {GOOD}x",
        f"Bearer {GOOD[:-3]}",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "",
        GOOD,
    ]
)
_PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
_BENIGN = st.one_of(  # headers the lane reads past
    st.tuples(
        st.sampled_from(["Connection", "connection"]), st.sampled_from(["keep-alive", "Keep-Alive"])
    ),
    st.tuples(st.sampled_from(["X-Request-Id", "x-request-id"]), _PRINTABLE),
    st.tuples(st.just("Cookie"), st.sampled_from([f"tt_session={OTHER}", "a=b", ""])),
    st.tuples(
        st.sampled_from(["Accept", "User-Agent", "Accept-Encoding", "Referer", "X-Custom"]),
        _PRINTABLE,
    ),
    st.tuples(_NAME, _PRINTABLE),
)
_HOSTILE = st.one_of(  # headers that change the answer, or break the grammar
    st.tuples(st.sampled_from(["Authorization", "authorization", "AUTHORIZATION"]), _AUTH),
    st.tuples(st.sampled_from(["Host", "host"]), st.sampled_from(["127.0.0.1", "x.example", ""])),
    st.tuples(st.just("Origin"), st.sampled_from([ORIGIN, ORIGIN, "https://evil.example"])),
    st.tuples(
        st.sampled_from(["Connection", "connection"]),
        st.sampled_from(["close", "Upgrade", "keep-alive, close"]),
    ),
    st.tuples(st.sampled_from(["Content-Length", "content-length"]), st.sampled_from(["0", "3"])),
    st.tuples(st.just("Transfer-Encoding"), st.sampled_from(["chunked", "gzip, chunked"])),
    st.tuples(st.sampled_from(["Expect", "Upgrade"]), st.sampled_from(["100-continue", "h2c"])),
    st.tuples(_NAME, st.text(max_size=12)),  # any value: control, non-ASCII, CR, LF
)
_LINE = st.sampled_from(
    [LINE] * 30
    + [
        b"get /api/chat/stream/token HTTP/1.1\r\n",
        b"GET /api/chat/stream/token/ HTTP/1.1\r\n",
        b"GET //api/chat/stream/token HTTP/1.1\r\n",
        b"GET /api/chat/stream/token HTTP/1.0\r\n",
        b"GET  /api/chat/stream/token HTTP/1.1\r\n",
        b"GET /api/chat/stream/token HTTP/1.1\n",
    ]
)
_END = st.sampled_from([b"\r\n"] * 30 + [b"\n", b"", b"\r\n" + LINE + b"\r\n", b"\r\nabc"])


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A head of the plain request's shape: mostly benign extra headers, now and then a
    hostile one, now and then no session or no host, odd whitespace, odd ends."""
    headers = draw(
        st.lists(st.tuples(_BENIGN, _OWS, _OWS), max_size=6, unique_by=lambda h: h[0][0].lower())
    )
    for _ in range(draw(st.sampled_from([0] * 3 + [1, 2]))):
        headers.insert(draw(st.integers(0, len(headers))), (draw(_HOSTILE), "", ""))
    if not draw(st.integers(0, 9)):  # a cross-origin request: CORS headers in the answer
        headers.insert(draw(st.integers(0, len(headers))), (("Origin", ORIGIN), "", ""))
    for wanted in (("Authorization", f"Bearer {GOOD}"), ("Host", "127.0.0.1")):
        if draw(st.integers(0, 7)):  # most requests carry a session and a host
            headers.insert(draw(st.integers(0, len(headers))), (wanted, draw(_OWS), draw(_OWS)))
    parts = [draw(_LINE)]
    for (name, value), before, after in headers:
        parts.append(f"{name}:{before}{value}{after}\r\n".encode("utf-8", "surrogatepass"))
    return b"".join(parts) + draw(_END)


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=requests())
def test_the_lane_answers_as_aiohttp_or_declines(tg: ThreadedGateway, data: bytes) -> None:
    before = token_metrics(tg.gateway)
    answer = tg.call(lane_of(tg).answer, data)
    if answer is None:
        event("declined")
        assert token_metrics(tg.gateway) == before
        return
    event("answered")
    routed = tg.exchange(data)
    assert routed.startswith(b"HTTP/1.1 200 OK\r\n"), (data, routed)
    assert normalized(answer) == normalized(routed), data


# -- through the bridge's connections ------------------------------------------------------


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    await writer.drain()
    return await _read_answer(reader)


@asynccontextmanager
async def _connected(
    gw: Gateway,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A connection to ``gw``'s bridge, closed on exit."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.http_port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def _read_answer(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


async def test_a_connection_leaves_the_lane_for_good_once_aiohttp_has_it(
    start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway({"CHAT_GATEWAY_CORS_ORIGINS": ORIGIN})
    plain = request(("Authorization", f"Bearer {GOOD}"))
    async with _connected(gw) as (reader, writer):
        first = await _exchange(reader, writer, plain)
        assert first.startswith(b"HTTP/1.1 200 OK")
        with_origin = request(("Origin", ORIGIN), ("Authorization", f"Bearer {GOOD}"))
        cors = await _exchange(reader, writer, with_origin)
        assert f"Access-Control-Allow-Origin: {ORIGIN}".encode() in cors
        # Split over two reads and pipelined: aiohttp's, in order.
        writer.write(plain[:10])
        await writer.drain()
        await asyncio.sleep(0.05)
        both = await _exchange(reader, writer, plain[10:] + request(("Authorization", "Basic x")))
        assert both.startswith(b"HTTP/1.1 200 OK")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 401 ")


async def test_lane_requests_are_measured_and_logged_like_routed_ones(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gw = await start_gateway()
    async with _connected(gw) as (reader, writer):
        with caplog.at_level("INFO", logger="gateway.access"):
            await _exchange(
                reader,
                writer,
                request(("Authorization", f"Bearer {GOOD}"), ("X-Request-Id", "lane-1")),
            )
            await _exchange(reader, writer, request(("Authorization", f"Bearer {GOOD}")))
    lines = [r for r in caplog.records if r.name == "gateway.access"]
    assert [(r.method, r.path, r.status) for r in lines] == [("GET", TOKEN_PATH, 200)] * 2  # type: ignore[attr-defined]
    assert lines[0].request_id == "lane-1"  # type: ignore[attr-defined]
    assert lines[1].request_id and lines[1].request_id != "lane-1"  # type: ignore[attr-defined]
    assert any('status="200"' in line for line in token_metrics(gw))


async def test_an_idle_lane_connection_closes_after_the_keepalive(
    start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway({"CHAT_GATEWAY_HTTP_KEEPALIVE": "0.3"})
    async with _connected(gw) as (reader, writer):
        plain = request(("Authorization", f"Bearer {GOOD}"))
        for _ in range(3):  # each answer restarts the keep-alive
            await _exchange(reader, writer, plain)
            await asyncio.sleep(0.2)
        assert not reader.at_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the gateway


def test_the_lane_is_off_when_configured(tg: ThreadedGateway) -> None:
    # The module's gateway has it off: its connections never ask the lane.
    assert tg.gateway.bridge.connections.lane is None
    with socket.create_connection(("127.0.0.1", tg.gateway.http_port), 5) as s:
        s.sendall(request(("Authorization", f"Bearer {GOOD}")))
        assert read_response(s).startswith(b"HTTP/1.1 200 OK")


async def test_stopping_the_bridge_closes_connections_only_the_lane_served(
    start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway()
    async with _connected(gw) as (reader, writer):
        await _exchange(reader, writer, request(("Authorization", f"Bearer {GOOD}")))
        await gw.bridge.stop()  # aiohttp has never seen this connection
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert gw.bridge.connections.open_connections == 0


async def test_answers_keep_the_order_of_their_requests(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway()
    for _ in range(20):  # the second request arrives in the lane answer's turn or later
        async with _connected(gw) as (reader, writer):
            writer.write(request(("Authorization", f"Bearer {GOOD}")))
            writer.write(request(("Authorization", "Basic eA==")))
            await writer.drain()
            assert (await _read_answer(reader)).startswith(b"HTTP/1.1 200 OK")
            assert (await _read_answer(reader)).startswith(b"HTTP/1.1 401 ")


async def test_a_refused_session_is_logged_once(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gw = await start_gateway()
    async with _connected(gw) as (reader, writer):
        with caplog.at_level("INFO", logger="gateway.bridge.session"):
            answer = await _exchange(reader, writer, request(("Authorization", f"Bearer {FORGED}")))
    assert answer.startswith(b"HTTP/1.1 401 ")
    rejected = [r for r in caplog.records if r.getMessage().startswith("session rejected")]
    assert len(rejected) == 1  # by the routed handler, not by the lane that declined first
