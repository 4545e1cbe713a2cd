"""Headless Chromium (Debian's), driven over the Chrome DevTools Protocol from Python.

One browser process per test, one CDP websocket to it; each page is a flattened session on
that socket. Pages can live in separate browser contexts (separate cookie jars), so a buyer
and a seller are signed in side by side. Every wait is bounded by time and by count.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.acceptance.web.bundle import unavailable

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1100,900",
)
STARTUP_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 60.0
POLL_S = 0.1


class PageError(AssertionError):
    """The page threw, or a condition did not hold in time."""


@dataclass
class Page:
    """One tab: a CDP session with its own event log."""

    browser: Browser
    target_id: str
    session_id: str
    events: list[dict[str, Any]] = field(default_factory=list)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.call(method, session_id=self.session_id, **params)

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (awaiting promises); its JSON value."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise PageError(f"page threw: {text}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, timeout_s: float = 15.0, what: str = "") -> Any:
        """Poll ``expression`` until it is truthy (at most ``timeout_s``); its value."""
        deadline = time.monotonic() + timeout_s
        for _ in range(int(timeout_s / POLL_S) + 1):
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_S)
        body = await self.evaluate("document.body ? document.body.innerText.slice(0, 1500) : ''")
        raise PageError(
            f"not within {timeout_s}s: {what or expression}\npage text: {body!r}\n"
            f"console: {self.console()[-15:]}"
        )

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_for(
            f"location.href === {json.dumps(url)} && document.readyState === 'complete'",
            what=f"navigation to {url}",
        )

    async def screenshot(self, path: Path) -> Path:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def set_file_input(self, selector: str, files: list[Path]) -> None:
        """Choose ``files`` in the file input matching ``selector``, as a user would."""
        found = await self.call(
            "Runtime.evaluate", expression=f"document.querySelector({json.dumps(selector)})"
        )
        object_id = found["result"].get("objectId")
        if object_id is None:
            raise PageError(f"no element matches {selector}")
        await self.call("DOM.setFileInputFiles", files=[str(f) for f in files], objectId=object_id)

    async def type_text(self, selector: str, text: str) -> None:
        """Focus the element and type ``text`` as keyboard input."""
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.call("Input.insertText", text=text)

    async def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Enter",
                code="Enter",
                windowsVirtualKeyCode=13,
                nativeVirtualKeyCode=13,
                text="\r" if kind == "keyDown" else "",
            )

    def responses(self, url_part: str) -> list[dict[str, Any]]:
        """HTTP responses the page received whose URL contains ``url_part`` (preflights
        excluded), each with its ``timestamp`` (monotonic seconds)."""
        preflights = {
            e["params"]["requestId"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
            and e["params"]["request"]["method"] == "OPTIONS"
        }
        return [
            {**e["params"]["response"], "timestamp": e["params"]["timestamp"]}
            for e in self.events
            if e["method"] == "Network.responseReceived"
            and url_part in e["params"]["response"]["url"]
            and e["params"]["requestId"] not in preflights
            and e["params"].get("type") != "Preflight"
        ]

    def requests(self, url_part: str) -> list[dict[str, Any]]:
        """Requests the page sent (preflights excluded) whose URL contains ``url_part``."""
        return [
            e["params"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
            and url_part in e["params"]["request"]["url"]
            and e["params"]["request"]["method"] != "OPTIONS"
        ]

    def console(self) -> list[str]:
        texts = []
        for event in self.events:
            if event["method"] == "Runtime.consoleAPICalled":
                args = event["params"]["args"]
                texts.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            elif event["method"] == "Runtime.exceptionThrown":
                details = event["params"]["exceptionDetails"]
                texts.append(str(details.get("exception", {}).get("description", details)))
        return texts


class Browser:
    """A Chromium process and the CDP websocket to it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.pages: dict[str, Page] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif "sessionId" in data and data["sessionId"] in self.pages:
                self.pages[data["sessionId"]].events.append(data)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(PageError("the CDP websocket closed"))

    async def call(
        self, method: str, session_id: str | None = None, **params: Any
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session_id is not None:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next_id] = future
        await self._ws.send_json(message)
        async with asyncio.timeout(CALL_TIMEOUT_S):
            data = await future
        if "error" in data:
            raise PageError(f"CDP {method} failed: {data['error']}")
        result: dict[str, Any] = data["result"]
        return result

    async def new_context(self) -> str:
        """A fresh browser context (its own cookies and storage)."""
        return str((await self.call("Target.createBrowserContext"))["browserContextId"])

    async def set_cookie(self, context_id: str, name: str, value: str, host: str) -> None:
        await self.call(
            "Storage.setCookies",
            browserContextId=context_id,
            cookies=[
                {
                    "name": name,
                    "value": value,
                    "domain": host,
                    "path": "/",
                    "httpOnly": True,
                    "sameSite": "Lax",
                }
            ],
        )

    async def new_page(self, context_id: str) -> Page:
        target = await self.call(
            "Target.createTarget", url="about:blank", browserContextId=context_id
        )
        target_id = str(target["targetId"])
        attached = await self.call("Target.attachToTarget", targetId=target_id, flatten=True)
        page = Page(self, target_id, str(attached["sessionId"]))
        self.pages[page.session_id] = page
        for domain in ("Page", "Runtime", "Network", "DOM"):
            await page.call(f"{domain}.enable")
        await page.call("Emulation.setFocusEmulationEnabled", enabled=True)
        return page

    async def close_page(self, page: Page) -> None:
        await self.call("Target.closeTarget", targetId=page.target_id)

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        unavailable("chromium is not installed: apt-get install -y chromium")
        raise AssertionError("unreachable")
    return path


@contextlib.asynccontextmanager
async def launch(workdir: Path) -> AsyncIterator[Browser]:
    """Start headless Chromium with a fresh profile in ``workdir``; stop exactly it after."""
    binary = chromium_path()
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True)
    log_path = workdir / "chromium.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own process group: we stop what we started
        )
        try:
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
                if process.returncode is not None or time.monotonic() > deadline:
                    raise AssertionError(f"chromium did not start: {log_path.read_text()[-2000:]}")
                await asyncio.sleep(POLL_S)
            port, ws_path = port_file.read_text().split()[:2]
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(f"ws://127.0.0.1:{port}{ws_path}", max_msg_size=0) as ws,
            ):
                browser = Browser(ws)
                try:
                    yield browser
                finally:
                    await browser.close()
        finally:
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), timeout=10)
                except TimeoutError:
                    os.killpg(process.pid, signal.SIGKILL)
                    await process.wait()
