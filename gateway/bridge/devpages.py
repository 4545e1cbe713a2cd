"""The order chat page (``clients/web``) served by the bridge, for development only
(``CHAT_GATEWAY_DEV_PAGES``, on in the dev profile).

- ``GET /chat/stream/{orderId}``: the page, configured for this bridge (same origin) and
  for the Stream API the gateway uses (``STREAM_CHAT_URL``);
- ``GET /chat/assets/{name}``: its script, styles and fonts (only files of the built page);
- ``GET /chat/dev/login/{userId}?next=/chat/stream/...``: in the dev profile only, signs the
  browser in as ``userId`` (a session cookie signed with the dev session secret) and goes to
  ``next``. Outside the dev profile there is no such route, whatever the setting says.

The built page lives in ``clients/web/dist`` (``make web`` rebuilds it; it is committed, so
``make run`` needs no Node). The container image does not carry it.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import jwt
from aiohttp import web
from multidict import CIMultiDict

from gateway import validation

__all__ = ["DEFAULT_DIST", "DevPages"]

DEFAULT_DIST = Path(__file__).resolve().parents[2] / "clients" / "web" / "dist"
"""Where the built page is in a checkout of the repository."""

PAGE_PATH = "/chat/stream/{order_id}"
ASSET_PATH = "/chat/assets/{name}"
LOGIN_PATH = "/chat/dev/login/{user_id}"

_STREAM_META = '<meta name="tradetrust-chat:stream-url" content="" />'
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".eot": "application/vnd.ms-fontobject",
    ".svg": "image/svg+xml",
}
_SESSION_S = 8 * 3600


class DevPages:
    """The page, its assets and (dev profile only) a sign-in, from a built ``dist``."""

    def __init__(
        self,
        dist: Path,
        *,
        stream_url: str | None,
        session_secret: str | None,
        cookie_name: str,
    ) -> None:
        self._dist = dist
        self._stream_url = stream_url or ""
        self._session_secret = session_secret
        self._cookie_name = cookie_name
        self._assets = (
            {p.name for p in dist.iterdir() if p.is_file() and p.suffix in _TYPES}
            if dist.is_dir()
            else set()
        )

    @property
    def can_sign_in(self) -> bool:
        """Whether the dev sign-in route is served (the dev profile's session secret)."""
        return self._session_secret is not None

    async def page(self, request: web.Request) -> web.Response:
        """The order chat page; the order id is read by the page from its own URL (checked
        here first, so a malformed one gets the bridge's JSON error, not a page)."""
        validation.order_id(request.match_info["order_id"], "orderId")
        template = self._dist / "order-chat.html"
        if not template.is_file():
            raise web.HTTPNotFound(text="the order chat page is not built: run `make web`")
        text = template.read_text(encoding="utf-8").replace(
            _STREAM_META,
            f'<meta name="tradetrust-chat:stream-url" content="{html.escape(self._stream_url)}" />',
        )
        return web.Response(
            text=text,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def asset(self, request: web.Request) -> web.Response:
        """One file of the built page, by its exact name."""
        name = request.match_info["name"]
        if name not in self._assets:
            raise web.HTTPNotFound()
        path = self._dist / name
        cache = (
            "no-cache" if name.startswith("order-chat.") else "public, max-age=31536000, immutable"
        )
        headers = CIMultiDict({"Content-Type": _TYPES[path.suffix], "Cache-Control": cache})
        return web.Response(body=path.read_bytes(), headers=headers)

    async def login(self, request: web.Request) -> web.Response:
        """Sign the browser in as the user of the path and go to ``next`` (a chat page)."""
        assert self._session_secret is not None
        user_id = validation.user_id(request.match_info["user_id"], "userId")
        target = request.query.get("next", "")
        if not _safe_next(target):
            target = "/chat/stream/"
        now = int(time.time())
        session = jwt.encode(
            {"sub": user_id, "iat": now, "exp": now + _SESSION_S},
            self._session_secret,
            algorithm="HS256",
        )
        response = web.Response(
            status=302, headers={"Location": target, "Cache-Control": "no-store"}
        )
        response.set_cookie(
            self._cookie_name, session, httponly=True, samesite="Lax", max_age=_SESSION_S, path="/"
        )
        return response


def _safe_next(target: str) -> bool:
    """Whether ``target`` is a chat page path of this bridge: no other host (``//``,
    ``\\``), nothing that could break out of the ``Location`` header."""
    return (
        target.startswith("/chat/stream/")
        and "//" not in target
        and "\\" not in target
        and target.isascii()
        and target.isprintable()
    )
