"""The test-side web server for the page: TradeTrust's web app on its own loopback origin.

It serves the built page at ``/chat/stream/{orderId}`` (its assets under ``/chat/assets/``)
and the test harness at ``/harness/``, filling the page's ``<meta>`` configuration with the
bridge's URL (another origin, allowed by ``CHAT_GATEWAY_CORS_ORIGINS``) and the Stream
double's.
"""

from __future__ import annotations

import html
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.acceptance.web.bundle import Bundles

SESSION_COOKIE = "tt_session"
_BRIDGE_META = '<meta name="tradetrust-chat:bridge-url" content="" />'
_STREAM_META = '<meta name="tradetrust-chat:stream-url" content="" />'


@dataclass
class Config:
    """What the pages are told; set once the bridge and the double listen."""

    bridge_url: str = ""
    stream_url: str = ""


def _configured(template: str, config: Config) -> str:
    if _BRIDGE_META not in template or _STREAM_META not in template:
        raise AssertionError("the page template lost its configuration <meta> tags")
    return template.replace(
        _BRIDGE_META,
        _BRIDGE_META.replace('content=""', f'content="{html.escape(config.bridge_url)}"'),
    ).replace(
        _STREAM_META,
        _STREAM_META.replace('content=""', f'content="{html.escape(config.stream_url)}"'),
    )


def _file(directory: Path, name: str) -> web.FileResponse:
    path = (directory / name).resolve()
    if path.parent != directory.resolve() or not path.is_file():
        raise web.HTTPNotFound()
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return web.FileResponse(
        path, headers={"Content-Type": content_type, "Cache-Control": "no-store"}
    )


def _login(session_for: Callable[[str], str]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``GET /dev/login/{user}?next=/chat/stream/...``: sign in as ``user`` (sets the
    HttpOnly session cookie, which the bridge on the same host receives too) and go on."""

    async def login(request: web.Request) -> web.Response:
        target = request.query.get("next", "/")
        if not target.startswith("/chat/stream/"):
            target = "/"
        response = web.HTTPFound(target)
        response.set_cookie(
            SESSION_COOKIE, session_for(request.match_info["user"]), httponly=True, samesite="Lax"
        )
        raise response

    return login


def build_app(
    bundles: Bundles, config: Config, session_for: Callable[[str], str] | None = None
) -> web.Application:
    page_html = (bundles.page / "order-chat.html").read_text()
    harness_html = (bundles.harness / "harness.html").read_text()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=_configured(page_html, config), content_type="text/html")

    async def asset(request: web.Request) -> web.FileResponse:
        return _file(bundles.page, request.match_info["name"])

    async def harness(request: web.Request) -> web.Response:
        return web.Response(text=_configured(harness_html, config), content_type="text/html")

    async def harness_js(request: web.Request) -> web.FileResponse:
        return _file(bundles.harness, "harness.js")

    async def favicon(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/chat/stream/{order_id}", page)
    app.router.add_get("/chat/assets/{name}", asset)
    app.router.add_get("/harness/", harness)
    app.router.add_get("/harness/harness.js", harness_js)
    app.router.add_get("/favicon.ico", favicon)
    if session_for is not None:
        app.router.add_get("/dev/login/{user}", _login(session_for))
    return app


@dataclass(frozen=True)
class Site:
    origin: str
    config: Config

    def page_url(self, order_id: str) -> str:
        return f"{self.origin}/chat/stream/{order_id}"

    @property
    def harness_url(self) -> str:
        return f"{self.origin}/harness/"


@asynccontextmanager
async def serve(
    bundles: Bundles, *, port: int = 0, session_for: Callable[[str], str] | None = None
) -> AsyncIterator[Site]:
    """The site on 127.0.0.1 (a free port by default; configure it through ``site.config``).
    With ``session_for`` (user id -> session JWT) it also signs people in at ``/dev/login``."""
    config = Config()
    runner = web.AppRunner(build_app(bundles, config, session_for), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield Site(f"http://127.0.0.1:{runner.addresses[0][1]}", config)
    finally:
        await runner.cleanup()
