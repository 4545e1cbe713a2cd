"""The smaller defects of the abuse report, one test each, each attack on loopback.

As reported:

- a session with ``exp`` = 10^400 got a 500;
- the verified-session memo accepted a fractional ``exp`` up to 1 s after full verification
  would reject it;
- malformed HTTP requests and protobufs with invalid UTF-8 each wrote an ERROR traceback;
- a protobuf with invalid UTF-8 got UNKNOWN with the decoder's text;
- paths with ``%0a``, CONNECT, parser errors and oversized session headers skipped the JSON
  error format, the metrics and the access line;
- unknown HTTP methods became new metric series (50k methods made 50k series);
- in the text log format a line break in a field forged a log line;
- grpc's C core wrote non-JSON lines into the JSON log stream;
- with damaged database pages RPCs got INTERNAL while ``/readyz`` still said 200;
- ``/metrics`` was served on the browser-facing port with no way to move it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from gateway.bridge.guard import KNOWN_METHODS, OTHER_METHOD
from gateway.bridge.session import LEEWAY_S
from gateway.config import DEV_SESSION_SECRET
from tests.helpers.bridge import TOKEN_PATH, bearer, forged_jwt, session_jwt
from tests.helpers.builders import numbered_request
from tests.helpers.gateways import GatewayFactory
from tests.helpers.ports import free_port
from tests.helpers.processes import GatewayChildren, child_env
from tests.helpers.rpc import GATEWAY_METHOD, ORDER_SERVICE, WEB_BACKEND

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Every log record from now to the end of the test, from every logger, DEBUG and up
    (the gateway runs in this process)."""
    root = logging.getLogger()
    collector = _Collector()
    level = root.level
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    try:
        yield collector.records
    finally:
        root.removeHandler(collector)
        root.setLevel(level)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def scrape(http: aiohttp.ClientSession, url: str) -> Samples:
    async with http.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def http_requests(samples: Samples) -> dict[tuple[str, str, str], float]:
    """``(method, route, status)`` -> count of ``chat_gateway_http_requests_total``."""
    out = {}
    for (name, labels), value in samples.items():
        if name == "chat_gateway_http_requests_total":
            label = dict(labels)
            out[(label["method"], label["route"], label["status"])] = value
    return out


async def raw_http(port: int, request: bytes) -> tuple[int, bytes, bytes]:
    """Send ``request`` as is; the status, head and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(5):
            head = (await reader.readuntil(b"\r\n\r\n"))[:-4]
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            body = await reader.readexactly(int(length.group(1))) if length else b""
    finally:
        writer.close()
    return int(head.split(b" ", 2)[1]), head, body


def errors_logged(records: list[logging.LogRecord]) -> list[str]:
    """Records at ERROR or above, or carrying a traceback."""
    return [
        f"{r.name} {r.levelname} {r.getMessage()[:200]}"
        for r in records
        if r.levelno >= logging.ERROR or r.exc_info
    ]


# -- sessions -----------------------------------------------------------------------------


async def test_a_session_with_an_absurd_exp_is_not_a_500(
    gateway: Gateway, http: aiohttp.ClientSession, records: list[logging.LogRecord]
) -> None:
    url = f"http://127.0.0.1:{gateway.http_port}{TOKEN_PATH}"
    huge = session_jwt("buyer-1", exp_in=None, exp=10**400)  # a JSON integer of 401 digits
    # exp 1e400: a JSON number that parses as a float, infinity (forged_jwt signs it right).
    infinite = forged_jwt(
        {"alg": "HS256", "typ": "JWT"},
        {"sub": "buyer-1", "iat": int(time.time()), "exp": 1e400},
        DEV_SESSION_SECRET.encode(),
    )
    statuses = []
    for token in (huge, huge, infinite, infinite):  # the repeats are answered from the memo
        async with http.get(url, headers=bearer(token)) as response:
            statuses.append(response.status)
    # 10^400 is a valid, if absurd, expiry (PyJWT compares integers): the session is good.
    # Infinity is not an integer: refused, as PyJWT refuses it.
    assert statuses == [200, 200, 401, 401]
    assert not errors_logged(records)


async def test_the_session_memo_does_not_outlive_a_fractional_exp(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    # Full verification compares int(exp): a session with exp = E + 0.9 is refused from
    # E + LEEWAY_S on. A memo keeping the float accepted it until E + 0.9 + LEEWAY_S.
    url = f"http://127.0.0.1:{gateway.http_port}{TOKEN_PATH}"
    outcomes = []
    for _ in range(3):  # bounded: a try whose second request missed the window is repeated
        base = math.ceil(time.time()) - LEEWAY_S + 1  # refused from 1-2 s from now on
        token = session_jwt("buyer-1", exp_in=None, exp=base + 0.9)
        async with http.get(url, headers=bearer(token)) as response:
            first = response.status
        refused_from = base + LEEWAY_S
        await asyncio.sleep(max(refused_from + 0.2 - time.time(), 0))
        sent = time.time()
        async with http.get(url, headers=bearer(token)) as response:
            second = response.status
        outcomes.append((first, second, round(sent - refused_from, 3)))
        if sent < refused_from + 0.8:  # inside the window where only the memo could say 200
            break
    first, second, into_window = outcomes[-1]
    assert into_window < 0.8, f"no try landed in the window: {outcomes}"
    assert first == 200
    assert second == 401, outcomes


# -- malformed input ----------------------------------------------------------------------

MALFORMED = {
    "path with %0a": b"GET /api/chat/stream/token%0aX HTTP/1.1\r\nHost: x\r\n\r\n",
    "CONNECT": b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n",
    "parser error": b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "oversized Authorization": b"GET " + TOKEN_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
    b"Authorization: Bearer " + b"e" * 10_000 + b"\r\n\r\n",
    "oversized cookie": b"GET " + TOKEN_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
    b"Cookie: tt_session=" + b"e" * 10_000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_requests_get_json_a_metric_and_an_access_line(
    case: str, gateway: Gateway, http: aiohttp.ClientSession, records: list[logging.LogRecord]
) -> None:
    port = gateway.http_port
    before = http_requests(await scrape(http, f"http://127.0.0.1:{port}/metrics"))
    seen = len(records)
    status, head, body = await raw_http(port, MALFORMED[case])
    after = http_requests(await scrape(http, f"http://127.0.0.1:{port}/metrics"))
    assert 400 <= status < 500, head
    assert b"application/json" in head
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message"}
    counted = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    scrapes = {k: v for k, v in counted.items() if k[1] == "/metrics"}
    assert len(counted) - len(scrapes) == 1 and sum(counted.values()) - sum(scrapes.values()) == 1
    ((method, route, counted_status),) = [k for k in counted if k not in scrapes]
    assert counted_status == str(status)
    assert route in {"malformed", "unmatched"}  # one label each, whatever the path was
    assert method in KNOWN_METHODS | {OTHER_METHOD}
    access = [
        r
        for r in records[seen:]
        if r.name == "gateway.access" and getattr(r, "status", None) == status
    ]
    assert len(access) == 1, [r.getMessage() for r in records[seen:]]
    assert "\n" not in str(getattr(access[0], "path", ""))
    assert not errors_logged(records[seen:])


async def test_a_protobuf_with_invalid_utf8_is_invalid_argument_without_a_traceback(
    gateway: Gateway, records: list[logging.LogRecord]
) -> None:
    # IssueTokenRequest.user_id (field 1, a string) holding the lone byte 0xc3.
    bad = b"\x0a\x01\xc3"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            GATEWAY_METHOD + "IssueToken"
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(bad, metadata=WEB_BACKEND, timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert not re.search(r"codec|position|utf-?8|0xc3|parsing", details, re.IGNORECASE), details
    assert not errors_logged(records)


UNKNOWN_TO_US = (
    # Methods the HTTP parser knows (WebDAV, UPnP, ...), none a route serves.
    *("PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH"),
    *("REPORT", "MKACTIVITY", "CHECKOUT", "MERGE", "M-SEARCH", "NOTIFY", "SUBSCRIBE"),
    *("UNSUBSCRIBE", "PURGE", "MKCALENDAR", "LINK", "UNLINK", "SOURCE", "QUERY", "ACL"),
)
MADE_UP = tuple(f"X{n:03d}" for n in range(100))


async def test_unknown_methods_share_one_metric_series(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    port = gateway.http_port
    for method in (*UNKNOWN_TO_US, *MADE_UP):
        status, head, _ = await raw_http(
            port, f"{method} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        assert status in (400, 405), (method, head)
    methods = {
        m for m, _, _ in http_requests(await scrape(http, f"http://127.0.0.1:{port}/metrics"))
    }
    assert methods <= KNOWN_METHODS | {OTHER_METHOD}, sorted(methods - KNOWN_METHODS)
    assert OTHER_METHOD in methods


# -- logs -----------------------------------------------------------------------------------

FORGED = "1999-01-01 00:00:00,000 ERROR gateway.forged FORGED-LINE"


@pytest.mark.slow
async def test_text_log_lines_cannot_be_forged(
    tmp_path: Path, gateway_children: GatewayChildren
) -> None:
    env = {"CHAT_GATEWAY_LOG_FORMAT": "text", "CHAT_GATEWAY_LOG_LEVEL": "DEBUG"}
    child = await gateway_children.start(child_env(tmp_path, env))
    async with aiohttp.ClientSession() as http:
        # A field name is quoted in the error (and so in the access line's reason), a
        # path in the debug line of a refused request: each with a line break and a line.
        async with http.post(
            f"{child.http_url}/api/chat/stream/channel",
            data=json.dumps({"orderId": "ord-1", f"x\n{FORGED}": 1}),
            headers={**bearer(session_jwt("buyer-1")), "Content-Type": "application/json"},
        ) as response:
            assert response.status == 400
        async with http.get(f"{child.http_url}/nothing%0a{FORGED.replace(' ', '%20')}") as r:
            assert r.status in (400, 404)
    assert await child.terminate() == 0
    lines = child.lines()
    forged = [line for line in lines if line.startswith("1999")]
    mentioned = [line for line in lines if "FORGED-LINE" in line]
    print(f"text log: {len(lines)} lines; the attack appears in {len(mentioned)}")  # noqa: T201
    assert not forged, forged
    assert mentioned, "the attack never reached the log"
    for line in mentioned:
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+ ", line), line
        assert not line.startswith("1999")


@pytest.mark.slow
async def test_grpc_core_output_stays_json(
    tmp_path: Path, gateway_children: GatewayChildren
) -> None:
    env = {
        "CHAT_GATEWAY_LOG_FORMAT": "json",
        "GRPC_VERBOSITY": "debug",
        "GRPC_TRACE": "api,server_channel,call_error",
    }
    child = await gateway_children.start(child_env(tmp_path, env))
    async with grpc.aio.insecure_channel(child.grpc_addr) as channel:
        stub = pb_grpc.ChatGatewayStub(channel)
        for n in range(3):
            await stub.IssueToken(pb.IssueTokenRequest(user_id=f"u-{n}"), metadata=WEB_BACKEND)
    assert await child.terminate() == 0
    lines = child.lines()
    not_json = []
    native = 0
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            not_json.append(line[:200])
            continue
        native += record["logger"] == "native.stderr"
    print(f"GRPC_VERBOSITY=debug: {len(lines)} lines, {native} from native stderr")  # noqa: T201
    assert not not_json, not_json[:5]
    assert native > 0, "grpc's C core wrote nothing: the test proves nothing"


# -- the registry ---------------------------------------------------------------------------


async def test_a_damaged_database_is_unavailable_and_not_ready(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    first = await start_gateway()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.grpc_port}") as channel:
        stub = pb_grpc.ChatGatewayStub(channel)
        for n in range(300):
            await stub.EnsureOrderChannel(numbered_request(n), metadata=ORDER_SERVICE, timeout=10)
    await first.stop()
    db = tmp_path / "registry.db"
    assert (
        not (tmp_path / "registry.db-wal").exists()
        or not (tmp_path / "registry.db-wal").stat().st_size
    ), "the WAL was not checkpointed into the file"
    data = bytearray(db.read_bytes())
    page_size = int.from_bytes(data[16:18], "big") or 65536
    # The orders table's page holding ord-150's row (the only page naming its buyer).
    at = data.find(b"buyer-150")
    assert at > page_size, "ord-150's row not found past the first page"
    page = at // page_size * page_size
    data[page : page + page_size] = b"\xff" * page_size
    db.write_bytes(bytes(data))

    second = await start_gateway()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{second.grpc_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await pb_grpc.ChatGatewayStub(channel).AuthorizeParticipant(
                pb.AuthorizeParticipantRequest(order_id="ord-150", user_id="buyer-150"),
                metadata=ORDER_SERVICE,
                timeout=5,
            )
    async with http.get(f"http://127.0.0.1:{second.http_port}/readyz") as response:
        ready = response.status
    print(f"damaged page: RPC {caught.value.code().name}, /readyz {ready}")  # noqa: T201
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert ready == 503


# -- metrics --------------------------------------------------------------------------------


async def test_metrics_can_move_off_the_browser_port(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    metrics_port = free_port()
    gw = await start_gateway(metrics_addr=f"127.0.0.1:{metrics_port}")
    async with http.get(f"http://127.0.0.1:{gw.http_port}/metrics") as response:
        on_bridge = response.status
        assert response.content_type == "application/json"
    samples = await scrape(http, f"http://127.0.0.1:{metrics_port}/metrics")
    assert on_bridge == 404
    assert any(name == "chat_gateway_http_requests_total" for name, _ in samples)
