"""The bridge's dev pages: the order chat page, its assets and the dev-profile sign-in.

The page itself, running in Chromium with the real SDKs, is tested in
``tests/acceptance/test_order_chat_page.py``; here: what the routes answer and refuse."""

from __future__ import annotations

import dataclasses
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote

import aiohttp
import jwt
import pytest
from yarl import URL

from gateway.bridge.devpages import DEFAULT_DIST
from gateway.bridge.server import dev_pages
from gateway.config import DEV_SESSION_SECRET
from tests.helpers.gateways import GatewayFactory, SettingsFactory

ASSETS = sorted(p.name for p in DEFAULT_DIST.iterdir() if p.suffix != ".html")


async def test_the_page_is_served_as_html_for_a_valid_order_id(
    http: aiohttp.ClientSession, bridge_url: str
) -> None:
    async with http.get(f"{bridge_url}/chat/stream/ord-1") as response:
        body = await response.text()
        assert response.status == 200
        assert response.content_type == "text/html"
        assert response.headers["Cache-Control"] == "no-cache"
    assert "order-chat.js" in body and 'name="tradetrust-chat:stream-url"' in body


@pytest.mark.parametrize("order_id", ["has space", "x" * 300, "semi;colon", "%3Cscript%3E"])
async def test_a_malformed_order_id_gets_the_json_error_not_the_page(
    http: aiohttp.ClientSession, bridge_url: str, order_id: str
) -> None:
    async with http.get(f"{bridge_url}/chat/stream/{order_id}") as response:
        assert response.status == 400
        body = await response.json()
    assert body["error"]["code"] == "invalid_argument"
    assert "orderId" in body["error"]["message"]


@pytest.mark.parametrize("name", ASSETS)
async def test_every_built_asset_is_served_with_its_type(
    http: aiohttp.ClientSession, bridge_url: str, name: str
) -> None:
    async with http.get(f"{bridge_url}/chat/assets/{name}") as response:
        body = await response.read()
        assert response.status == 200
        kind = response.headers["Content-Type"]
        cache = response.headers["Cache-Control"]
    assert body == (DEFAULT_DIST / name).read_bytes()
    expected = {
        ".js": "text/javascript",
        ".css": "text/css",
        ".svg": "image/svg+xml",
        ".woff": "font/woff",
        ".ttf": "font/ttf",
        ".eot": "application/vnd.ms-fontobject",
    }
    assert kind.startswith(expected[Path(name).suffix])
    # The page's own script and styles may change under one name; hashed fonts never do.
    assert cache == (
        "no-cache" if name.startswith("order-chat.") else "public, max-age=31536000, immutable"
    )


@pytest.mark.parametrize(
    "name",
    [
        "order-chat.html",  # the template is the page route's, not an asset
        "missing.js",
        "..%2Fpyproject.toml",
        "..%2F..%2Fgateway%2Fconfig.py",
        "%2Fetc%2Fpasswd",
    ],
)
async def test_anything_but_a_built_asset_is_not_found(
    http: aiohttp.ClientSession, bridge_url: str, name: str
) -> None:
    async with http.get(f"{bridge_url}/chat/assets/{name}") as response:
        body = await response.read()
        assert response.status == 404
    assert b"[tool" not in body and b"root:" not in body


def _session_cookie(response: aiohttp.ClientResponse) -> str:
    cookie = SimpleCookie(response.headers["Set-Cookie"])
    morsel = cookie["tt_session"] if "tt_session" in cookie else next(iter(cookie.values()))
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    return morsel.value


async def test_dev_sign_in_sets_a_session_for_the_user_and_goes_to_the_page(
    http: aiohttp.ClientSession, bridge_url: str
) -> None:
    url = f"{bridge_url}/chat/dev/login/buyer-1?next=/chat/stream/ord-1"
    async with http.get(url, allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == "/chat/stream/ord-1"
        session = _session_cookie(response)
    claims = jwt.decode(session, DEV_SESSION_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "buyer-1" and claims["exp"] > claims["iat"]
    # The session works on the bridge.
    async with http.get(
        f"{bridge_url}/api/chat/stream/token", headers={"Authorization": f"Bearer {session}"}
    ) as response:
        assert response.status == 200
        assert (await response.json())["userId"] == "buyer-1"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/chat/stream/x",
        "//evil.example/chat/stream/x",
        "/chat/stream//evil.example",
        "/chat/stream/\\evil.example",
        "/chat/stream/x%0D%0ASet-Cookie:%20a=b",  # sent encoded: CR LF once decoded
        "/api/chat/stream/token",
        "",
    ],
)
async def test_dev_sign_in_never_sends_the_browser_elsewhere(
    http: aiohttp.ClientSession, bridge_url: str, target: str
) -> None:
    query = f"?next={quote(target, safe='%/:')}" if target else ""
    url = URL(f"{bridge_url}/chat/dev/login/buyer-1{query}", encoded=True)
    async with http.get(url, allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == "/chat/stream/"
        assert "a=b" not in response.headers.getall("Set-Cookie", [""])[-1]


async def test_dev_sign_in_refuses_a_malformed_user_id(
    http: aiohttp.ClientSession, bridge_url: str
) -> None:
    async with http.get(f"{bridge_url}/chat/dev/login/bad%20user", allow_redirects=False) as r:
        assert r.status == 400
        assert "Set-Cookie" not in r.headers
        assert (await r.json())["error"]["code"] == "invalid_argument"


async def test_pages_off_means_no_routes(
    http: aiohttp.ClientSession, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway({"CHAT_GATEWAY_DEV_PAGES": "false"})
    base = f"http://127.0.0.1:{gw.http_port}"
    for path in ("/chat/stream/ord-1", "/chat/assets/order-chat.js", "/chat/dev/login/buyer-1"):
        async with http.get(base + path, allow_redirects=False) as response:
            assert response.status == 404, path


def test_sign_in_exists_only_in_the_dev_profile(make_settings: SettingsFactory) -> None:
    dev = make_settings()
    assert dev.bridge.dev_pages
    pages = dev_pages(dev)
    assert pages is not None and pages.can_sign_in
    production = dev_pages(dataclasses.replace(dev, dev_profile=False))
    assert production is not None and not production.can_sign_in
