"""The order chat page (clients/web, built with esbuild from npm) in headless Chromium.

Real parts only: stream-chat and stream-chat-react from npm in Debian's Chromium, the
gateway's bridge on loopback, and the Stream double over HTTP and WebSocket standing in for
Stream. Buyer and seller each sign in (their own browser context, their own session cookie)
and use the page as people do: typing, choosing a file, pressing Enter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.web.bundle import ROOT
from tests.acceptance.web.chat_page import ChatPage
from tests.acceptance.web.fixtures import (  # noqa: F401  (fixtures)
    ChatWorld,
    browser,
    eventually,
    web_bundles,
    world,
)
from tests.acceptance.web.images import png

pytestmark = pytest.mark.acceptance

ORDER = "ord-web-1"
BUYER, SELLER, STRANGER = "buyer-web", "seller-web", "stranger-web"
SCREENSHOT = ROOT / "var" / "acceptance" / "order-chat-buyer.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def test_buyer_and_seller_exchange_text_and_image_with_read_receipts(
    world: ChatWorld, tmp_path: Path
) -> None:
    await world.order(ORDER, BUYER, SELLER)
    buyer = ChatPage(await world.signed_in(BUYER))
    seller = ChatPage(await world.signed_in(SELLER))
    await world.open_chat(buyer.page, ORDER)
    await world.open_chat(seller.page, ORDER)
    await buyer.wait_state("open")
    await seller.wait_state("open")
    assert len(world.stream.open_connections(BUYER)) == 1
    assert len(world.stream.open_connections(SELLER)) == 1

    # The buyer writes and attaches an image; the seller, on the page, sees both arrive.
    await buyer.send_text("The goods left the warehouse today.")
    await seller.wait_text("The goods left the warehouse today.", own=False)
    await buyer.send_image(png(tmp_path / "waybill.png", 96, 64, (200, 30, 30)))
    image_url = await seller.wait_image(own=False)
    assert image_url.startswith(world.double.url + "/uploads/")

    stored = world.stream.log(f"messaging:order-{ORDER}").messages
    assert [m["user"]["id"] for m in stored] == [BUYER, BUYER]
    assert stored[0]["text"] == "The goods left the warehouse today."
    assert [a["type"] for a in stored[1]["attachments"]] == ["image"]
    # (stream-chat-react asks Stream's CDN for a resized copy: ?h=..&w=..)
    assert stored[1]["attachments"][0]["image_url"] == image_url.split("?")[0]

    # The seller's page read them: the buyer sees "read" on the image, the last of them.
    await buyer.wait_receipt("read")
    shot = await buyer.page.screenshot(SCREENSHOT)
    assert shot.read_bytes().startswith(PNG_MAGIC)

    # The seller leaves: the double sees the socket close. What the buyer writes now
    # stays "sent".
    await seller.page.goto("about:blank")
    await eventually(
        lambda: not world.stream.open_connections(SELLER), what="the seller's socket closed"
    )
    # Closed by the page (1000), not dropped.
    assert [c.close_code for c in world.stream.connections_of(SELLER)] == [1000]
    await buyer.send_text("Tracking number follows.")
    await buyer.wait_receipt("sent")
    assert len(world.stream.open_connections(BUYER)) == 1
