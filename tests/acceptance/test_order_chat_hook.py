"""useOrderChat and createTokenProvider (clients/web) with the real stream-chat in Chromium.

The harness page (tests/acceptance/web/harness.jsx) mounts the hook in <StrictMode> in
React's development build, where effects run, are cleaned up and run again on mount, as on
a developer's machine. Token expiry is Stream's verdict: the double answers every token seen
so far as expired (code 40), and the browser must get and use a new one.
"""

from __future__ import annotations

import json

import pytest

from tests.acceptance.web.cdp import Page
from tests.acceptance.web.fixtures import ChatWorld, next_second
from tests.helpers.gateways import GatewayFactory
from tests.helpers.polling import eventually

pytestmark = pytest.mark.acceptance

ORDER = "ord-hook-1"
BUYER, SELLER = "buyer-hook", "seller-hook"
TOKEN = "/api/chat/stream/token"
CHANNEL = "/api/chat/stream/channel"
QUERY = f"/channels/messaging/order-{ORDER}/query"
STORM = 50


async def _mounted(world: ChatWorld) -> Page:
    await world.order(ORDER, BUYER, SELLER)
    page = await world.signed_in(BUYER)
    await world.open_harness(page)
    await page.evaluate(f"harness.mount({json.dumps(ORDER)})")
    await page.wait_for("harness.state()?.state === 'open'", what="the hook ready")
    return page


def _statuses(page: Page, path: str, since: int = 0) -> list[int]:
    return [int(r["status"]) for r in page.responses(path)][since:]


async def test_strict_mode_keeps_one_connection_and_unmount_closes_it(world: ChatWorld) -> None:
    page = await _mounted(world)
    # StrictMode ran the effect twice (each run asks the bridge for the channel) ...
    assert len(page.requests(CHANNEL)) == 2
    # ... yet one token request, one connection: the first run stopped before connecting.
    assert _statuses(page, TOKEN) == [200]
    assert [c.open for c in world.stream.connections_of(BUYER)] == [True]
    assert await page.evaluate("harness.state()") == {
        "state": "open",
        "role": "buyer",
        "readOnly": False,
        "cid": f"messaging:order-{ORDER}",
    }

    # New renders keep the provider and the connection.
    for tick in (1, 2, 3):
        await page.evaluate(f"harness.render({json.dumps(ORDER)}, {tick})")
        await page.wait_for(f"document.querySelector('[data-tick=\"{tick}\"]') !== null")
    assert _statuses(page, TOKEN) == [200]
    assert len(world.stream.connections_of(BUYER)) == 1

    await page.evaluate("harness.unmount()")
    await eventually(
        lambda: not world.stream.open_connections(BUYER),
        timeout_s=15.0,
        message="the socket closed on unmount",
    )
    assert [c.close_code for c in world.stream.connections_of(BUYER)] == [1000]


async def test_a_storm_at_expiry_succeeds_with_one_token_request_and_no_429(
    world: ChatWorld,
) -> None:
    page = await _mounted(world)
    tokens_before = len(page.responses(TOKEN))
    world.stream.expire_tokens_seen()
    await next_second()

    results = await page.evaluate(f"harness.storm({STORM})")

    assert [r["ok"] for r in results] == [True] * STORM, results
    assert _statuses(page, TOKEN, tokens_before) == [200]
    refused = [c for c in world.double.calls_to("POST", QUERY) if c.status == 401]
    assert len(refused) == STORM  # every call met the expiry, and went through after it


async def test_a_storm_at_expiry_through_the_bare_provider_succeeds(world: ChatWorld) -> None:
    """stream-chat with createTokenProvider alone (the README's pattern, no useOrderChat):
    stream-chat asks for a token once per refused call, spread over its back-off (up to
    25 s); the shared in-flight request merges what overlaps and a 429 is waited out."""
    await world.order(ORDER, BUYER, SELLER)
    page = await world.signed_in(BUYER)
    await world.open_harness(page)
    await page.evaluate(f"harness.connectBare({json.dumps(ORDER)})")
    tokens_before = len(page.responses(TOKEN))
    world.stream.expire_tokens_seen()
    await next_second()

    results = await page.evaluate(f"harness.bareStorm({STORM})")

    assert [r["ok"] for r in results] == [True] * STORM, results
    statuses = _statuses(page, TOKEN, tokens_before)
    assert 0 < statuses.count(200) < STORM  # merged, yet more than the hook's one
    assert set(statuses) <= {200, 429}


async def test_the_provider_shares_one_request_among_all_callers(world: ChatWorld) -> None:
    page = await world.signed_in(BUYER)
    await world.open_harness(page)

    results = await page.evaluate(f"harness.providerCalls({STORM})")

    assert all(r["ok"] for r in results), results
    assert len({r["value"] for r in results}) == 1
    assert len(page.requests(TOKEN)) == 1


async def test_the_provider_waits_out_a_429_as_retry_after_says(
    world: ChatWorld, start_gateway: GatewayFactory, stream_env: dict[str, str]
) -> None:
    # A bridge that allows one new token every two seconds (burst 1).
    strict = await start_gateway(
        stream_env,
        cors_origins=(world.site.origin,),
        token_rate_limit_per_min=30.0,
        token_rate_limit_burst=1,
    )
    world.site.config.bridge_url = f"http://127.0.0.1:{strict.http_port}"
    page = await world.signed_in(BUYER)
    await world.open_harness(page)
    first = await page.evaluate("harness.providerCalls(1)")
    await next_second()  # a token of this second would be answered again for free
    second = await page.evaluate("harness.providerCalls(1)")  # 429 first, then a token

    assert first[0]["ok"] and second[0]["ok"], (first, second)
    answers = page.responses(TOKEN)
    assert [int(a["status"]) for a in answers] == [200, 429, 200]
    limited, retried = answers[1], answers[2]
    retry_after_s = int(limited["headers"]["Retry-After"])
    assert retry_after_s >= 1
    sent_again = page.requests(TOKEN)[2]["timestamp"]
    assert sent_again >= limited["timestamp"] + retry_after_s - 0.01
    assert retried["status"] == 200


async def test_provider_errors_carry_the_bridge_code(world: ChatWorld) -> None:
    page = await world.browser.new_page(await world.browser.new_context())  # no session
    await world.open_harness(page)

    [result] = await page.evaluate("harness.providerCalls(1)")

    assert result == {
        "ok": False,
        "name": "BridgeError",
        "code": "unauthenticated",
        "status": 401,
        "message": result["message"],
    }
    assert "session" in result["message"]
