"""The Stream double's order-chat-life behaviour, driven through the real ``stream-chat`` SDK.

Freezing, channel roles, token revocation and client-side token checks, query_channels and
query_users, and the scoped fault switches. Every call goes over HTTP from
``StreamChatAsync`` to the double, as the gateway's own calls do.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import jwt
import pytest
from stream_chat import StreamChatAsync
from stream_chat.base.exceptions import StreamAPIException

from tests.stream_double import StreamDouble
from tests.stream_double.fixtures import STREAM_TEST_KEY, STREAM_TEST_SECRET
from tests.stream_double.model import StreamError

T0 = 1_750_000_000  # a fixed "now" for the double's clock (whole second)


@pytest.fixture
async def client(stream_double: StreamDouble) -> AsyncIterator[Any]:
    """The real async SDK pointed at the double."""
    async with StreamChatAsync(
        api_key=STREAM_TEST_KEY, api_secret=STREAM_TEST_SECRET, base_url=stream_double.url
    ) as sdk:
        yield sdk


async def _users(client: Any, *ids: str) -> None:
    await client.upsert_users([{"id": uid, "name": f"{uid} name"} for uid in ids])


async def _order_channel(client: Any, order_id: str, **extra: Any) -> Any:
    """An order channel as the gateway makes it: buyer and seller, ``order_id`` custom data."""
    buyer, seller = f"b-{order_id}", f"s-{order_id}"
    await _users(client, "system", buyer, seller)
    channel = client.channel(
        "messaging", f"order-{order_id}", {"order_id": order_id, "members": [buyer, seller]}
    )
    await channel.create("system")
    return channel


def _members(state: dict[str, Any]) -> dict[str, str]:
    return {m["user_id"]: m["channel_role"] for m in state["members"]}


async def _api_error(awaitable: Awaitable[Any]) -> Any:
    """The ``StreamAPIException`` the call raised (fails the test if it succeeded)."""
    with pytest.raises(StreamAPIException) as failure:
        await awaitable
    return failure.value


# -- 1. frozen ------------------------------------------------------------------------------


async def test_frozen_is_false_by_default_in_every_channel_json(
    client: Any, stream_double: StreamDouble
) -> None:
    channel = await _order_channel(client, "o-1")
    state = await channel.query()
    assert state["channel"]["frozen"] is False
    listed = await client.query_channels({"cid": "messaging:order-o-1"})
    assert [c["channel"]["frozen"] for c in listed["channels"]] == [False]
    assert stream_double.channels["messaging:order-o-1"].frozen is False


async def test_update_partial_freezes_and_unfreezes_keeping_custom_data(
    client: Any, stream_double: StreamDouble
) -> None:
    channel = await _order_channel(client, "o-1")
    frozen = await channel.update_partial(to_set={"frozen": True})
    assert frozen["channel"]["frozen"] is True
    assert frozen["channel"]["order_id"] == "o-1"
    stored = stream_double.channels["messaging:order-o-1"]
    assert stored.frozen is True and stored.data == {"order_id": "o-1"}
    assert (await channel.query())["channel"]["frozen"] is True

    await channel.update_partial(to_unset=["frozen"])
    assert stored.frozen is False and stored.data == {"order_id": "o-1"}
    await channel.update_partial(to_set={"frozen": True, "dispute.reason": "late"})
    await channel.update_partial(to_set={"frozen": False})
    assert stored.frozen is False
    assert stored.data == {"order_id": "o-1", "dispute": {"reason": "late"}}


async def test_full_update_replaces_custom_data_and_frozen(
    client: Any, stream_double: StreamDouble
) -> None:
    channel = await _order_channel(client, "o-1")
    answer = await channel.update({"frozen": True, "name": "closed order"})
    assert answer["channel"]["frozen"] is True
    assert "order_id" not in answer["channel"]  # dropped, as Stream's full update does
    stored = stream_double.channels["messaging:order-o-1"]
    assert stored.data == {"name": "closed order"}

    # The whole channel object is replaced: leaving frozen out unfreezes.
    await channel.update({"name": "renamed"})
    assert stored.frozen is False and stored.data == {"name": "renamed"}


async def test_partial_update_refuses_builtin_fields_and_bad_frozen(
    client: Any, stream_double: StreamDouble
) -> None:
    channel = await _order_channel(client, "o-1")
    for to_set in ({"members": ["x"]}, {"created_by_id": "x"}, {"frozen": "yes"}):
        error = await _api_error(channel.update_partial(to_set=to_set))
        assert (error.status_code, error.error_code) == (400, 4), to_set
    stored = stream_double.channels["messaging:order-o-1"]
    assert stored.frozen is False and stored.data == {"order_id": "o-1"}


# -- 2. member roles -----------------------------------------------------------------------


async def test_add_members_with_channel_role_assign_roles_and_remove(
    client: Any, stream_double: StreamDouble
) -> None:
    channel = await _order_channel(client, "o-1")
    await _users(client, "agent-1", "auditor")
    stored = stream_double.channels["messaging:order-o-1"]

    answer = await channel.add_members(
        [{"user_id": "agent-1", "channel_role": "channel_moderator"}]
    )
    agent = next(m for m in answer["members"] if m["user_id"] == "agent-1")
    assert agent["channel_role"] == "channel_moderator"
    assert agent["role"] == "moderator" and agent["is_moderator"] is True
    assert agent["user"]["id"] == "agent-1"
    assert stored.members == ["b-o-1", "s-o-1", "agent-1"]
    assert stored.roles == {"agent-1": "channel_moderator"}

    await channel.add_members(["auditor"])
    assert _members(await channel.query()) == {
        "b-o-1": "channel_member",
        "s-o-1": "channel_member",
        "agent-1": "channel_moderator",
        "auditor": "channel_member",
    }

    # add_members leaves an existing member's role alone; assign_roles changes it.
    await channel.add_members([{"user_id": "auditor", "channel_role": "channel_moderator"}])
    assert stored.role_of("auditor") == "channel_member"
    answer = await channel.assign_roles(
        [
            {"user_id": "agent-1", "channel_role": "channel_member"},
            {"user_id": "auditor", "channel_role": "channel_moderator"},
        ]
    )
    assert _members(answer)["agent-1"] == "channel_member"
    assert _members(answer)["auditor"] == "channel_moderator"

    await channel.remove_members(["auditor"])
    assert "auditor" not in stored.members and "auditor" not in stored.roles
    await channel.add_members(["auditor"])  # back as a plain member
    assert _members(await channel.query())["auditor"] == "channel_member"


async def test_creation_honours_member_channel_roles(
    client: Any, stream_double: StreamDouble
) -> None:
    await _users(client, "system", "buyer", "agent-1")
    channel = client.channel(
        "messaging",
        "order-o-2",
        {
            "order_id": "o-2",
            "members": ["buyer", {"user_id": "agent-1", "channel_role": "channel_moderator"}],
        },
    )
    await channel.create("system")
    assert _members(await channel.query()) == {
        "buyer": "channel_member",
        "agent-1": "channel_moderator",
    }
    assert stream_double.channels["messaging:order-o-2"].data == {"order_id": "o-2"}


async def test_add_and_demote_moderators(client: Any, stream_double: StreamDouble) -> None:
    channel = await _order_channel(client, "o-1")
    await _users(client, "agent-1")
    await channel.add_moderators(["agent-1", "s-o-1"])  # agent-1 is added as a member too
    stored = stream_double.channels["messaging:order-o-1"]
    assert stored.members == ["b-o-1", "s-o-1", "agent-1"]
    assert stored.role_of("agent-1") == stored.role_of("s-o-1") == "channel_moderator"
    await channel.demote_moderators(["agent-1"])
    assert stored.role_of("agent-1") == "channel_member"
    assert stored.role_of("s-o-1") == "channel_moderator"


async def test_member_changes_are_checked_before_anything_changes(
    client: Any, stream_double: StreamDouble
) -> None:
    channel = await _order_channel(client, "o-1")
    await _users(client, "agent-1")
    stored = stream_double.channels["messaging:order-o-1"]
    bad_calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: channel.add_members([{"user_id": "agent-1", "channel_role": "channel_boss"}]),
        lambda: channel.add_members(["nobody"]),
        lambda: channel.assign_roles([{"user_id": "agent-1", "channel_role": "channel_moderator"}]),
        lambda: channel.assign_roles([{"user_id": "b-o-1"}]),
    ]
    for n, call in enumerate(bad_calls):
        error = await _api_error(call())
        assert (error.status_code, error.error_code) == (400, 4), n
    assert stored.members == ["b-o-1", "s-o-1"] and stored.roles == {}

    # A custom channel role exists once it is registered (as if made in the dashboard).
    stream_double.channel_roles.add("channel_agent")
    await channel.add_members([{"user_id": "agent-1", "channel_role": "channel_agent"}])
    assert stored.role_of("agent-1") == "channel_agent"


# -- 3. users, revocation, user tokens -----------------------------------------------------


@pytest.fixture
def fixed_clock(stream_double: StreamDouble) -> Iterator[list[float]]:
    """The double's clock, fixed at ``now[0]`` (T0 to start); tests move it by assigning."""
    now = [float(T0)]
    stream_double.clock = lambda: now[0]
    yield now


async def test_revoke_user_token_refuses_older_tokens_only(
    client: Any, stream_double: StreamDouble, fixed_clock: list[float]
) -> None:
    await _users(client, "buyer")
    before = datetime.fromtimestamp(T0 - 100.25, UTC)
    cutoff = math.floor(before.timestamp())
    older = client.create_token("buyer", iat=cutoff - 1)
    same_second = client.create_token("buyer", iat=cutoff)
    newer = client.create_token("buyer", iat=cutoff + 1)
    no_iat = client.create_token("buyer")
    for token in (older, same_second, newer, no_iat):
        assert stream_double.check_user_token(token) == "buyer"  # nothing revoked yet

    answer = await client.revoke_user_token("buyer", before)
    assert stream_double.revoked_before("buyer") == before
    stored = answer["users"]["buyer"]["revoke_tokens_issued_before"]
    assert stored == before.strftime("%Y-%m-%dT%H:%M:%S.750000Z")
    assert [c.kind for c in stream_double.calls][-1] == "update_users_partial"

    for token in (older, no_iat):  # no iat: cannot prove it is newer, so revoked
        with pytest.raises(StreamError) as refused:
            stream_double.check_user_token(token)
        assert (refused.value.status, refused.value.code) == (401, 40)
        assert "revoked" in refused.value.message
    # Whole seconds, like Stream: a token issued in the cutoff's second stays valid.
    assert stream_double.check_user_token(same_second) == "buyer"
    assert stream_double.check_user_token(newer) == "buyer"

    await client.revoke_user_token("buyer", None)  # undo
    assert stream_double.revoked_before("buyer") is None
    assert stream_double.check_user_token(older) == "buyer"


async def test_app_wide_revocation_applies_to_every_user(
    client: Any, stream_double: StreamDouble, fixed_clock: list[float]
) -> None:
    old = client.create_token("seller", iat=T0 - 10)
    fresh = client.create_token("seller", iat=T0 - 1)
    await client.revoke_tokens(datetime.fromtimestamp(T0 - 5, UTC))
    assert stream_double.revoked_before("seller") is None  # not a user-level revocation
    with pytest.raises(StreamError) as refused:
        stream_double.check_user_token(old)
    assert (refused.value.status, refused.value.code) == (401, 40)
    assert stream_double.check_user_token(fresh) == "seller"


async def test_check_user_token_time_claims_against_the_double_clock(
    client: Any, stream_double: StreamDouble, fixed_clock: list[float]
) -> None:
    fixed_clock[0] = T0 + 0.9  # still second T0
    assert stream_double.check_user_token(client.create_token("u", iat=T0)) == "u"
    future = client.create_token("u", iat=T0 + 1)
    with pytest.raises(StreamError) as early:
        stream_double.check_user_token(future)
    assert (early.value.status, early.value.code) == (401, 42)
    assert early.value.message == "JWTAuth error: token used before issue at (iat)"

    expiring = client.create_token("u", exp=T0 + 60, iat=T0)
    assert stream_double.check_user_token(expiring) == "u"
    fixed_clock[0] = T0 + 60.5  # the exp second itself is still valid
    assert stream_double.check_user_token(expiring) == "u"
    fixed_clock[0] = T0 + 61
    with pytest.raises(StreamError) as expired:
        stream_double.check_user_token(expiring)
    assert (expired.value.status, expired.value.code) == (401, 40)
    assert expired.value.message.startswith("JWTAuth error: token is expired")
    assert stream_double.check_user_token(future) == "u"  # its iat is in the past now


def test_check_user_token_refuses_bad_signatures_and_server_tokens(
    stream_double: StreamDouble,
) -> None:
    wrong = jwt.encode({"user_id": "u"}, "another-secret-of-at-least-32-bytes!", "HS256")
    server = jwt.encode({"server": True}, STREAM_TEST_SECRET, "HS256")
    for token, code in ((wrong, 43), (server, 5), ("not-a-jwt", 5)):
        with pytest.raises(StreamError) as refused:
            stream_double.check_user_token(token)
        assert (refused.value.status, refused.value.code) == (401, code)


async def test_upsert_keeps_revocation_unless_it_sets_it(
    client: Any, stream_double: StreamDouble
) -> None:
    await _users(client, "buyer")
    before = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    await client.revoke_users_token(["buyer"], before)
    await client.upsert_user({"id": "buyer", "name": "Ana"})
    assert stream_double.users["buyer"]["name"] == "Ana"
    assert stream_double.revoked_before("buyer") == before
    later = "2025-02-01T00:00:00+02:00"
    await client.upsert_user({"id": "buyer", "revoke_tokens_issued_before": later})
    assert stream_double.revoked_before("buyer") == datetime(2025, 1, 31, 22, tzinfo=UTC)
    assert "name" not in stream_double.users["buyer"]  # upsert replaces custom data


async def test_user_partial_update_and_its_errors(client: Any, stream_double: StreamDouble) -> None:
    await _users(client, "buyer")
    await client.update_user_partial({"id": "buyer", "set": {"tier": "gold"}, "unset": ["name"]})
    assert stream_double.users["buyer"] == {"id": "buyer", "tier": "gold"}

    naive = datetime(2025, 1, 2, 3, 4, 5)  # no time zone: not RFC 3339
    bad_calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: client.revoke_user_token("buyer", naive),
        lambda: client.update_user_partial({"id": "ghost", "set": {"tier": "x"}}),
        lambda: client.update_user_partial({"id": "buyer", "set": {"id": "other"}}),
    ]
    for n, call in enumerate(bad_calls):
        error = await _api_error(call())
        assert (error.status_code, error.error_code) == (400, 4), n
    assert stream_double.revoked_before("buyer") is None
    assert "ghost" not in stream_double.users


async def test_query_users_by_id(client: Any, stream_double: StreamDouble) -> None:
    await _users(client, "c", "a", "b", "d")
    answer = await client.query_users({"id": {"$in": ["d", "a", "zz"]}})
    assert [u["id"] for u in answer["users"]] == ["a", "d"]
    assert answer["users"][0]["name"] == "a name"
    call = stream_double.calls_of("query_users")[-1]
    assert call.method == "GET" and '"$in"' in call.params["payload"]
    page = await client.query_users({}, {"id": -1}, limit=2, offset=1)
    assert [u["id"] for u in page["users"]] == ["c", "b"]
    error = await _api_error(client.query_users({"id": {"$regex": "a"}}))
    assert (error.status_code, error.error_code) == (400, 4)


# -- 4. query_channels ---------------------------------------------------------------------


def _put_orders(double: StreamDouble, count: int) -> list[str]:
    """``count`` order channels created one second apart (two share a second); their cids
    oldest first. Also a channel without order_id and one of another type, to be left out."""
    tick = [T0]
    double.clock = lambda: float(tick[0])
    cids = []
    for n in range(count):
        if n != 5:  # order 5 is created in the same second as order 4
            tick[0] += 1
        order_id = f"o-{n:02d}"
        cids.append(
            double.put_channel(
                "messaging", f"order-{order_id}", [f"b-{n}", f"s-{n}"], order_id=order_id
            ).cid
        )
    double.put_channel("messaging", "lobby", ["b-1"], name="not an order")
    double.channel_types["support"] = {"name": "support"}
    double.put_channel("support", "order-o-99", ["b-1"], order_id="o-99")
    return cids


async def test_query_channels_pages_every_order_channel_once_in_a_stable_order(
    client: Any, stream_double: StreamDouble
) -> None:
    cids = _put_orders(stream_double, 37)
    filters = {"type": "messaging", "order_id": {"$exists": True}}
    # Stream's default order: last_updated (here created_at) newest first; ties by cid.
    newest_first = sorted(
        cids, key=lambda cid: (-stream_double.channels[cid].created_at.timestamp(), cid)
    )
    assert newest_first.index("messaging:order-o-04") < newest_first.index("messaging:order-o-05")

    async def page_through(sort: Any) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + 10
        for _ in range(10):  # 37 channels: two full pages and a short one
            answer = await client.query_channels(filters, sort, limit=30, offset=len(seen))
            page = [c["channel"]["cid"] for c in answer["channels"]]
            seen += page
            if len(page) < 30 or time.monotonic() > deadline:
                break
        return seen

    calls_before = len(stream_double.calls_of("query_channels"))
    first = await page_through(None)
    assert first == newest_first  # every channel exactly once, nothing else
    assert await page_through(None) == first  # stable
    assert len(stream_double.calls_of("query_channels")) - calls_before == 4
    assert len(stream_double.calls_to("POST", "/channels")) == 4

    oldest_first = await page_through({"created_at": 1})
    assert oldest_first == sorted(cids, key=lambda c: (stream_double.channels[c].created_at, c))
    assert set(oldest_first) == set(cids) and len(oldest_first) == 37


async def test_query_channels_filters(client: Any, stream_double: StreamDouble) -> None:
    _put_orders(stream_double, 6)
    stream_double.channels["messaging:order-o-02"].frozen = True

    async def ids(filters: dict[str, Any], **options: Any) -> set[str]:
        answer = await client.query_channels(filters, limit=30, **options)
        return {c["channel"]["id"] for c in answer["channels"]}

    assert await ids({"type": "messaging", "order_id": {"$in": ["o-01", "o-03", "o-77"]}}) == {
        "order-o-01",
        "order-o-03",
    }
    assert await ids({"order_id": "o-99"}) == {"order-o-99"}  # the support channel
    assert await ids({"type": "messaging", "order_id": {"$exists": False}}) == {"lobby"}
    assert await ids({"cid": {"$in": ["messaging:order-o-00", "support:order-o-99"]}}) == {
        "order-o-00",
        "order-o-99",
    }
    assert await ids({"id": {"$eq": "order-o-04"}}) == {"order-o-04"}
    assert await ids({"members": {"$in": ["s-3", "b-4"]}}) == {"order-o-03", "order-o-04"}
    assert await ids({"type": "messaging", "frozen": True}) == {"order-o-02"}
    assert await ids(
        {"$or": [{"order_id": "o-00"}, {"$and": [{"frozen": True}, {"type": "messaging"}]}]}
    ) == {"order-o-00", "order-o-02"}
    answer = await client.query_channels({"cid": "messaging:order-o-01"}, member_limit=1)
    assert [m["user_id"] for m in answer["channels"][0]["members"]] == ["b-1"]


async def test_query_channels_limits_and_bad_filters(
    client: Any, stream_double: StreamDouble
) -> None:
    _put_orders(stream_double, 12)
    everything = {"type": "messaging"}
    assert len((await client.query_channels(everything))["channels"]) == 10  # default limit
    assert len((await client.query_channels(everything, limit=0))["channels"]) == 10
    assert len((await client.query_channels(everything, limit=30))["channels"]) == 13
    bad: list[tuple[dict[str, Any], Any, dict[str, Any]]] = [
        (everything, None, {"limit": 31}),
        (everything, None, {"offset": 1001}),
        (everything, None, {"member_limit": 101}),
        ({"order_id": {"$regex": "o-"}}, None, {}),
        ({"frozen": {"$in": [True]}}, None, {}),  # frozen takes $eq only
        ({"$not": [{"frozen": True}]}, None, {}),
        ({"order_id": {"$in": "o-01"}}, None, {}),
        (everything, {"order_id": 1}, {}),  # sort on a field the double does not model
    ]
    for filters, sort, options in bad:
        error = await _api_error(client.query_channels(filters, sort, **options))
        assert (error.status_code, error.error_code) == (400, 4), (filters, sort, options)


# -- 5. fault switches ---------------------------------------------------------------------


async def test_injection_scoped_to_a_call_kind(client: Any, stream_double: StreamDouble) -> None:
    channel = await _order_channel(client, "o-1")
    stream_double.inject(503, path="query_channels")
    await channel.update_partial(to_set={"frozen": True})  # other kinds are untouched
    await client.query_users({"id": "b-o-1"})
    error = await _api_error(client.query_channels({"order_id": "o-1"}))
    assert (error.status_code, error.error_code) == (503, -1)
    assert len((await client.query_channels({"order_id": "o-1"}))["channels"]) == 1  # used up


async def test_injection_scoped_to_method_and_path_pattern(
    client: Any, stream_double: StreamDouble
) -> None:
    channel = await _order_channel(client, "o-1")
    stream_double.inject(500, count=2, method="PATCH", path="/channels/*/*")
    await channel.add_members(["b-o-1"])  # POST on the same path: untouched
    await client.update_user_partial({"id": "b-o-1", "set": {"x": 1}})  # PATCH /users: untouched
    for _ in range(2):
        error = await _api_error(channel.update_partial(to_set={"frozen": True}))
        assert error.status_code == 500
    assert stream_double.channels["messaging:order-o-1"].frozen is False
    await channel.update_partial(to_set={"frozen": True})
    assert stream_double.channels["messaging:order-o-1"].frozen is True
    statuses = [c.status for c in stream_double.calls_of("update_channel_partial")]
    assert statuses == [500, 500, 200]


async def test_unscoped_injection_still_hits_the_next_requests_in_order(
    client: Any, stream_double: StreamDouble
) -> None:
    stream_double.inject(502)
    stream_double.inject(400, count=1, path="update_users_partial")
    stream_double.inject(503)
    assert (await _api_error(client.query_users({}))).status_code == 502
    error = await _api_error(client.revoke_user_token("u", None))
    assert (error.status_code, error.error_code) == (400, 4)
    assert (await _api_error(client.query_users({}))).status_code == 503
    await client.query_users({})
    with pytest.raises(ValueError, match="unknown call kind"):
        stream_double.inject(500, path="query_channel_typo")


async def test_delay_for_one_kind(client: Any, stream_double: StreamDouble) -> None:
    await _order_channel(client, "o-1")
    stream_double.delay_for("query_channels", 0.5)
    started = time.monotonic()
    await client.query_users({"id": "system"})
    assert time.monotonic() - started < 0.4
    started = time.monotonic()
    await client.query_channels({"order_id": "o-1"})
    assert time.monotonic() - started >= 0.5
    stream_double.delay_for("query_channels", 0)
    started = time.monotonic()
    await client.query_channels({"order_id": "o-1"})
    assert time.monotonic() - started < 0.4


async def test_rate_limit_for_one_kind(client: Any, stream_double: StreamDouble) -> None:
    await _order_channel(client, "o-1")
    reset = stream_double.rate_limit(30, path="upsert_users")
    error = await _api_error(_users(client, "late"))
    assert (error.status_code, error.error_code) == (429, 9)
    assert "late" not in stream_double.users
    async with aiohttp.ClientSession() as raw:  # the SDK's exception carries no headers
        async with raw.post(
            f"{stream_double.url}/users",
            params={"api_key": STREAM_TEST_KEY},
            headers={"Authorization": client.auth_token, "Stream-Auth-Type": "jwt"},
            json={"users": {"late": {"id": "late"}}},
        ) as limited:
            assert limited.status == 429
            assert limited.headers["X-RateLimit-Remaining"] == "0"
            assert limited.headers["X-RateLimit-Reset"] == str(reset)
    other = await client.query_channels({"order_id": "o-1"})  # another endpoint: fine
    assert other.headers()["X-RateLimit-Remaining"] == "999"
    assert other.headers()["X-RateLimit-Reset"] != str(reset)

    stream_double.clear_faults()
    await _users(client, "late")
    assert "late" in stream_double.users


async def test_outage_then_back_with_state(client: Any, stream_double: StreamDouble) -> None:
    await _order_channel(client, "o-1")
    await stream_double.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.query_channels({"order_id": "o-1"})
    await stream_double.start()
    assert len((await client.query_channels({"order_id": "o-1"}))["channels"]) == 1


async def test_channel_timestamps_follow_the_double_clock(
    client: Any, stream_double: StreamDouble, fixed_clock: list[float]
) -> None:
    channel = await _order_channel(client, "o-1")
    fixed_clock[0] = T0 + 30
    answer = await channel.update_partial(to_set={"frozen": True})
    created = datetime.fromisoformat(answer["channel"]["created_at"])
    updated = datetime.fromisoformat(answer["channel"]["updated_at"])
    assert updated - created == timedelta(seconds=30)
    assert created == datetime.fromtimestamp(T0, UTC)
