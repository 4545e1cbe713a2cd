"""The order chat page as a user sees it: what to type and click, what to look for."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.web.cdp import Page

TEXTAREA = "textarea.str-chat__textarea__textarea"
FILE_INPUT = "input.str-chat__file-input"
SEND = "button.str-chat__send-button"

_OWN = ".str-chat__li .str-chat__message--me"
_OTHERS = ".str-chat__li .str-chat__message--other"


def _js(value: object) -> str:
    return json.dumps(value)


class ChatPage:
    def __init__(self, page: Page) -> None:
        self.page = page

    async def state(self) -> str | None:
        value = await self.page.evaluate(
            "document.querySelector('main[data-state]')?.dataset.state ?? null"
        )
        return None if value is None else str(value)

    async def wait_state(self, state: str, timeout_s: float = 20.0) -> None:
        await self.page.wait_for(
            f"document.querySelector('main[data-state]')?.dataset.state === {_js(state)}",
            timeout_s=timeout_s,
            what=f"the page in state {state}",
        )

    async def send_text(self, text: str) -> None:
        await self.page.wait_for(f"!!document.querySelector({_js(TEXTAREA)})", what="the composer")
        await self.page.type_text(TEXTAREA, text)
        await self.page.press_enter()
        await self.wait_text(text, own=True)
        await self.wait_accepted()

    async def send_image(self, image: Path) -> None:
        await self.page.set_file_input(FILE_INPUT, [image])
        await self.page.wait_for(
            "!!document.querySelector('.str-chat__attachment-preview-image img, "
            ".str-chat__attachment-preview-list img') && "
            f"!document.querySelector({_js(SEND)}).disabled && "
            "!document.querySelector('.str-chat__attachment-preview-image--loading, "
            ".str-chat__loading-indicator')",
            what="the image uploaded and ready to send",
        )
        await self.page.evaluate(f"document.querySelector({_js(SEND)}).click()")
        await self.wait_image(own=True)
        await self.wait_accepted()

    async def wait_accepted(self) -> None:
        """Wait until Stream has taken the last own message (shown at once, "sending" until
        then; then "sent" or "read")."""
        await self.page.wait_for(
            f"(() => {{ const own = [...document.querySelectorAll({_js(_OWN)})];"
            " return !!own[own.length - 1]?.querySelector('[data-receipt]'); })()",
            what="the last own message taken by Stream",
        )

    async def wait_text(self, text: str, *, own: bool, timeout_s: float = 15.0) -> None:
        scope = _OWN if own else _OTHERS
        await self.page.wait_for(
            f"[...document.querySelectorAll({_js(scope + ' .str-chat__message-text')})]"
            f".some(e => e.innerText.trim() === {_js(text)})",
            timeout_s=timeout_s,
            what=f"{'own' if own else 'received'} message {text!r}",
        )

    async def wait_image(self, *, own: bool, timeout_s: float = 15.0) -> str:
        """Wait until an image attachment is shown, loaded; its URL."""
        scope = _OWN if own else _OTHERS
        src = await self.page.wait_for(
            f"(() => {{ const img = [...document.querySelectorAll({_js(scope + ' img')})]"
            ".find(i => i.src.includes('/uploads/') && i.complete && i.naturalWidth > 0);"
            " return img ? img.src : null; })()",
            timeout_s=timeout_s,
            what=f"{'own' if own else 'received'} image loaded",
        )
        return str(src)

    async def last_own_receipt(self) -> str | None:
        value = await self.page.evaluate(
            f"(() => {{ const own = [...document.querySelectorAll({_js(_OWN)})];"
            " const last = own[own.length - 1];"
            " return last?.querySelector('[data-receipt]')?.dataset.receipt ?? null; })()"
        )
        return None if value is None else str(value)

    async def wait_receipt(self, receipt: str, timeout_s: float = 15.0) -> None:
        await self.page.wait_for(
            f"(() => {{ const own = [...document.querySelectorAll({_js(_OWN)})];"
            " const last = own[own.length - 1];"
            " return last?.querySelector('[data-receipt]')?.dataset.receipt"
            f" === {_js(receipt)}; }})()",
            timeout_s=timeout_s,
            what=f"the last own message marked {receipt!r}",
        )
