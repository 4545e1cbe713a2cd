"""A real browser against the HTTP bridge: headless Chromium, driven over CDP.

Two tiny static sites on other loopback ports play TradeTrust's web app:

- ``app`` (an origin listed in ``CHAT_GATEWAY_CORS_ORIGINS``) serves a page whose JavaScript
  implements the stream-chat token provider against the bridge, with credentials (the
  session is an HttpOnly cookie the page's "login" set, as TradeTrust's login does);
- ``evil`` (not listed) serves a page that tries the same calls.

Tokens are asked for with the shortest TTL the contract allows (60 s). Rather than sleep a
minute, the test moves the *page's* clock forward to just past the first token's ``exp``: the
provider decodes ``exp`` from the token, sees it expired, and fetches a new one from the real
bridge, which is valid at that page time. Nothing on the server side is faked or shortened.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web

from gateway.app import Gateway
from gateway.config import DEV_STREAM_API_SECRET
from gateway.domain import Participant
from tests.helpers.bridge import BUYER, SELLER, session_jwt
from tests.helpers.gateways import SettingsFactory

pytestmark = pytest.mark.acceptance

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]
STARTUP_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 15.0
ORDER = "ord-browser"

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>TradeTrust chat (test page)</title>
<script>
"use strict";
const BRIDGE = %(bridge)s;

// The page's clock. The test moves it forward instead of waiting for a token to expire.
let clockOffsetMs = 0;
window.advanceClock = (ms) => { clockOffsetMs += ms; return clockOffsetMs; };
window.pageNow = () => Date.now() + clockOffsetMs;

function expOf(token) {
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(part + "===".slice((part.length + 3) %% 4))).exp;
}

// The token provider, as passed to stream-chat's client.connectUser(user, tokenProvider).
window.providerCalls = 0;
window.tokenProvider = async () => {
  window.providerCalls += 1;
  const response = await fetch(`${BRIDGE}/api/chat/stream/token?ttl=60`, {
    credentials: "include",
  });
  if (!response.ok) throw new Error(`token endpoint answered ${response.status}`);
  return (await response.json()).token;
};

// What stream-chat's token manager does with a provider: call it to connect, and call it
// again whenever the token it holds has expired.
class TokenManager {
  async connectUser(user, provider) {
    this.user = user;
    this.provider = provider;
    this.refreshes = 0;
    this.token = await provider();
    return this.token;
  }
  async getToken() {
    if (expOf(this.token) * 1000 <= window.pageNow()) {
      this.token = await this.provider();
      this.refreshes += 1;
    }
    return this.token;
  }
}
window.client = new TokenManager();

// Opening an order's chat: a JSON POST, so the browser sends a CORS preflight first.
window.openChannel = async (orderId) => {
  const response = await fetch(`${BRIDGE}/api/chat/stream/channel`, {
    method: "POST",
    credentials: "include",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({orderId}),
  });
  return {status: response.status, body: await response.json()};
};

// Each call, reported as {ok, status} or {ok: false, error} when the browser blocks it.
window.probe = async () => {
  const attempt = async (url, init) => {
    try {
      const response = await fetch(url, init);
      return {ok: true, status: response.status, body: await response.text()};
    } catch (error) {
      return {ok: false, error: String(error)};
    }
  };
  return {
    token: await attempt(`${BRIDGE}/api/chat/stream/token?ttl=60`, {credentials: "include"}),
    channel: await attempt(`${BRIDGE}/api/chat/stream/channel`, {
      method: "POST",
      credentials: "include",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({orderId: %(order)s}),
    }),
  };
};
window.pageReady = true;
</script>
<p>token provider test page</p>
"""


class Cdp:
    """A minimal Chrome DevTools Protocol client over one page target's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message_id = self._next_id
        await self._ws.send_json({"id": message_id, "method": method, "params": params})
        async with asyncio.timeout(CALL_TIMEOUT_S):
            while True:
                message = await self._ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"CDP websocket closed: {message.type}")
                data = json.loads(message.data)
                if data.get("id") == message_id:
                    if "error" in data:
                        raise AssertionError(f"CDP {method} failed: {data['error']}")
                    result: dict[str, Any] = data["result"]
                    return result
                if "method" in data:
                    self.events.append(data)

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (awaiting promises) and return its JSON value."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"page threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def goto(self, url: str) -> None:
        """Navigate and wait (bounded) until the page script has run."""
        await self.call("Page.navigate", url=url)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            ready = await self.evaluate(
                f"location.href === {json.dumps(url)} && window.pageReady === true"
            )
            if ready:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"page {url} did not load within {STARTUP_TIMEOUT_S}s")

    def console_errors(self) -> list[str]:
        texts = []
        for event in self.events:
            if event["method"] == "Log.entryAdded":
                texts.append(str(event["params"]["entry"].get("text", "")))
            elif event["method"] == "Runtime.consoleAPICalled":
                texts.extend(str(a.get("value", "")) for a in event["params"]["args"])
        return texts


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed: apt-get install -y chromium")
    return path


async def _static_site(page: dict[str, str], session: str) -> tuple[web.AppRunner, int]:
    """A one-page site on a free loopback port; its page sets the HttpOnly session cookie."""

    async def index(request: web.Request) -> web.Response:
        response = web.Response(text=page["html"], content_type="text/html")
        # Cookies are per host, not per port: the bridge on 127.0.0.1 receives it too.
        response.set_cookie("tt_session", session, httponly=True, samesite="Lax", path="/")
        return response

    async def favicon(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/favicon.ico", favicon)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])


@pytest.fixture
async def chromium(tmp_path: Path) -> AsyncIterator[Cdp]:
    """Headless Chromium with a fresh profile, connected over CDP to its first page."""
    binary = _chromium()
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log = (tmp_path / "chromium.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        binary,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=log,
        stderr=log,
        start_new_session=True,  # its own process group: we stop exactly what we started
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"chromium did not start: {(tmp_path / 'chromium.log').read_text()[-2000:]}"
                )
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            targets: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not targets:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                    targets = [t for t in await response.json() if t.get("type") == "page"]
                if not targets:
                    await asyncio.sleep(0.1)
            assert targets, "chromium has no page target"
            async with http.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                cdp = Cdp(ws)
                await cdp.call("Page.enable")
                await cdp.call("Runtime.enable")
                await cdp.call("Log.enable")
                yield cdp
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        log.close()


def _stream_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, DEV_STREAM_API_SECRET, algorithms=["HS256"])
    return claims


async def test_token_provider_refreshes_and_cors_blocks_other_origins(
    chromium: Cdp, make_settings: SettingsFactory
) -> None:
    app_page: dict[str, str] = {}
    evil_page: dict[str, str] = {}
    session = session_jwt(BUYER, exp_in=600)
    app_runner, app_port = await _static_site(app_page, session)
    evil_runner, evil_port = await _static_site(evil_page, session)
    app_origin, evil_origin = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{evil_port}"
    gateway = Gateway(make_settings(cors_origins=(app_origin,)))
    await gateway.start()
    try:
        bridge = f"http://127.0.0.1:{gateway.http_port}"
        for page in (app_page, evil_page):
            page["html"] = PAGE % {"bridge": json.dumps(bridge), "order": json.dumps(ORDER)}
        await gateway.service.ensure_order_channel(ORDER, Participant(BUYER), Participant(SELLER))

        # The allowed origin: connect with the token provider.
        await chromium.goto(app_origin + "/")
        first = await chromium.evaluate("client.connectUser({id: 'buyer-1'}, tokenProvider)")
        first_claims = _stream_claims(first)
        assert first_claims["user_id"] == BUYER
        assert first_claims["exp"] - first_claims["iat"] == 60 + 5
        # Not expired yet: the provider is not called again.
        assert await chromium.evaluate("client.getToken()") == first
        assert await chromium.evaluate("window.providerCalls") == 1

        # Let a real second pass (tokens carry whole seconds, so the next one expires at
        # least a second later), then move the page's clock to half a second past the
        # first token's expiry: the next use must go back to the bridge for a new token,
        # which is still valid at that page time.
        await asyncio.sleep(1.1)
        expired_at_ms = first_claims["exp"] * 1000 + 500
        await chromium.evaluate(f"advanceClock({expired_at_ms} - pageNow())")
        assert await chromium.evaluate("pageNow()") >= first_claims["exp"] * 1000
        second = await chromium.evaluate("client.getToken()")
        assert await chromium.evaluate("window.providerCalls") == 2
        assert await chromium.evaluate("client.refreshes") == 1
        assert second != first
        second_claims = _stream_claims(second)
        assert second_claims["user_id"] == BUYER
        assert second_claims["exp"] > first_claims["exp"]
        assert second_claims["exp"] * 1000 > await chromium.evaluate("pageNow()")

        # A JSON POST with credentials: preflight, then the channel, readable by the page.
        opened = await chromium.evaluate(f"openChannel({json.dumps(ORDER)})")
        assert opened["status"] == 200
        assert opened["body"]["role"] == "buyer"
        assert opened["body"]["members"] == [BUYER, SELLER]
        allowed = await chromium.evaluate("probe()")
        assert allowed["token"]["ok"] and allowed["token"]["status"] == 200
        assert allowed["channel"]["ok"] and allowed["channel"]["status"] == 200

        # Another origin, same browser, same session cookie: the browser blocks both calls.
        chromium.events.clear()
        await chromium.goto(evil_origin + "/")
        blocked = await chromium.evaluate("probe()")
        assert blocked["token"]["ok"] is False, blocked
        assert blocked["channel"]["ok"] is False, blocked
        assert "Failed to fetch" in blocked["token"]["error"]
        await asyncio.sleep(0.2)  # let the console report arrive
        await chromium.evaluate("1")
        cors_reports = [t for t in chromium.console_errors() if "CORS policy" in t]
        assert any(evil_origin in t for t in cors_reports), chromium.console_errors()
    finally:
        await gateway.stop(grace_s=1.0)
        await app_runner.cleanup()
        await evil_runner.cleanup()
