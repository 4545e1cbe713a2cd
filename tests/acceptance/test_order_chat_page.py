"""The order chat page (clients/web, built with esbuild from npm) in headless Chromium.

Real parts only: stream-chat and stream-chat-react from npm in Debian's Chromium, the
gateway's bridge on loopback, and the Stream double over HTTP and WebSocket standing in for
Stream. Buyer and seller each sign in (their own browser context, their own session cookie)
and use the page as people do: typing, choosing a file, pressing Enter.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.acceptance.web.bundle import ROOT
from tests.acceptance.web.chat_page import ChatPage
from tests.acceptance.web.fixtures import ChatWorld, next_second
from tests.acceptance.web.images import png
from tests.helpers.polling import eventually

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
        lambda: not world.stream.open_connections(SELLER),
        timeout_s=15.0,
        message="the seller's socket closed",
    )
    # Closed by the page (1000), not dropped.
    assert [c.close_code for c in world.stream.connections_of(SELLER)] == [1000]
    await buyer.send_text("Tracking number follows.")
    await buyer.wait_receipt("sent")
    assert len(world.stream.open_connections(BUYER)) == 1


async def test_a_stranger_and_an_unknown_order_get_clear_pages(world: ChatWorld) -> None:
    await world.order(ORDER, BUYER, SELLER)
    stranger = ChatPage(await world.signed_in(STRANGER))

    await world.open_chat(stranger.page, ORDER)
    await stranger.wait_state("error")
    assert await stranger.page.evaluate("document.querySelector('main').dataset.errorCode") == (
        "permission_denied"
    )
    assert "not a participant" in await stranger.page.evaluate("document.body.innerText")

    await world.open_chat(stranger.page, "ord-nobody-placed")
    await stranger.wait_state("error")
    assert await stranger.page.evaluate("document.querySelector('main').dataset.errorCode") == (
        "not_found"
    )
    # The bridge said no: the page never opened a socket to Stream, nor asked for a token.
    assert world.stream.connections_of(STRANGER) == []
    assert stranger.page.requests("/api/chat/stream/token") == []


async def test_a_pending_channel_opens_by_itself_once_stream_has_it(world: ChatWorld) -> None:
    await world.double.stop()  # Stream is down while the order is placed: the channel waits
    await world.order(ORDER, BUYER, SELLER, synced=False)
    buyer = ChatPage(await world.signed_in(BUYER))
    await world.open_chat(buyer.page, ORDER)
    await buyer.wait_state("pending")
    assert "being set up" in await buyer.page.evaluate("document.body.innerText")

    await world.double.start()  # Stream is back: the gateway syncs, the page asks again
    await buyer.wait_state("open", timeout_s=30)
    await buyer.send_text("Hello once the chat is ready.")
    assert len(world.stream.open_connections(BUYER)) == 1


async def test_a_frozen_channel_is_read_only(world: ChatWorld) -> None:
    await world.order(ORDER, BUYER, SELLER)
    buyer = ChatPage(await world.signed_in(BUYER))
    await world.open_chat(buyer.page, ORDER)
    await buyer.wait_state("open")
    await buyer.send_text("Last words before closing.")

    # What Stream holds when the order is closed: a frozen channel (StoredChannel.frozen is
    # being added to the double; set directly until then).
    object.__setattr__(world.double.channels[f"messaging:order-{ORDER}"], "frozen", True)
    seller = ChatPage(await world.signed_in(SELLER))
    await world.open_chat(seller.page, ORDER)
    await seller.wait_state("open")
    await seller.wait_text("Last words before closing.", own=False)
    await seller.page.wait_for(
        "!!document.querySelector('[data-notice]')", what="the read-only notice"
    )
    assert await seller.page.evaluate("!document.querySelector('textarea')")
    assert "read-only" in await seller.page.evaluate("document.body.innerText")


async def test_the_chat_goes_on_when_the_token_expires_without_a_reload(world: ChatWorld) -> None:
    await world.order(ORDER, BUYER, SELLER)
    buyer = ChatPage(await world.signed_in(BUYER))
    seller = ChatPage(await world.signed_in(SELLER))
    for side in (buyer, seller):
        await world.open_chat(side.page, ORDER)
        await side.wait_state("open")
        await side.page.evaluate("window.sameDocument = true")
    await buyer.send_text("Before expiry.")
    await seller.wait_text("Before expiry.", own=False)
    await buyer.wait_receipt("read")  # the seller's page is done with its calls

    # Every token so far expires (for Stream), and Stream drops every socket (a deploy): both
    # pages reconnect with their expired tokens, are refused on the socket with code 40,
    # fetch new tokens and reconnect.
    world.stream.expire_tokens_seen()
    await next_second()
    await world.stream.close_all(1012)
    await eventually(
        lambda: all(len(world.stream.open_connections(u)) == 1 for u in (BUYER, SELLER)),
        timeout_s=40,
        message="both pages connected again",
    )
    assert sorted(world.stream.refused_connects) == [(BUYER, 40), (SELLER, 40)]
    await seller.send_text("Still here after the reconnect.")
    await buyer.wait_text("Still here after the reconnect.", own=False)

    # The tokens expire again, sockets open: the next REST call is refused with code 40, the
    # page fetches one new token and the call goes through.
    world.stream.expire_tokens_seen()
    await next_second()
    expired_at = time.time()
    tokens_before = len(buyer.page.responses("/api/chat/stream/token"))
    await buyer.send_text("After expiry.")
    await seller.wait_text("After expiry.", own=False)
    # (typing events go first: whichever call meets the expiry is refused, then retried)
    since = [c for c in world.double.calls if c.time >= expired_at and c.method == "POST"]
    assert 401 in [c.status for c in since]
    assert [c.status for c in since if c.path.endswith("/message")][-1] == 200
    new_tokens = buyer.page.responses("/api/chat/stream/token")[tokens_before:]
    assert [r["status"] for r in new_tokens] == [200]
    for side in (buyer, seller):
        assert await side.page.evaluate("window.sameDocument === true")  # no reload
