"""N replicas on one PostgreSQL: two ``python -m gateway serve`` processes and the Stream double.

Each replica runs production-style (no ``--dev``): the stream backend with the double's key
and secret, ``STREAM_CHAT_URL`` pointing at the double, one calling service configured by the
SHA-256 of its key, the same fresh PostgreSQL database, and its own free loopback ports
(port 0; the bound gRPC port is read from the replica's log). Requirements checked (issue 6):

- 500 concurrent ``EnsureOrderChannel`` calls over 100 orders, half to each replica: every
  order is ``created=true`` exactly once across all answers, the double ends with exactly
  one channel per order holding exactly its buyer and seller, and exactly one get-or-create
  call per channel (no order was processed by both replicas); ``AuthorizeParticipant``
  answers the same on both replicas for the buyer, the seller and a stranger of every order;
- a replica killed with SIGKILL while its orders are pending (Stream down): the survivor
  syncs all of them once Stream is back, including the orders the dead replica still held
  claims on (taken over when the claim ran out, not before);
- a PostgreSQL crash and restart in the middle of a load on both replicas: no acknowledged
  order is lost, every stored order ends up synced, no channel is created twice.

The double runs in the test's event loop, so nothing here may block the loop (database
queries are async, ``pg_ctl`` runs in a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import grpc
import psycopg
import pytest
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.config import hash_key
from tests.helpers.builders import cid_of, own_parties_request
from tests.helpers.load import OrderLoad
from tests.helpers.pg import PostgresServer
from tests.helpers.polling import eventually
from tests.helpers.processes import GatewayChild, GatewayChildren, gateway_environ
from tests.helpers.rpc import bursting_channel, warmed
from tests.stream_double import StreamDouble
from tests.stream_double.fixtures import STREAM_TEST_KEY, STREAM_TEST_SECRET

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

logger = logging.getLogger(__name__)

ORDER_SERVICE_KEY = "replica-test-order-service-key"  # a production-style (non-dev) key
ORDER_SERVICE = (("authorization", f"Bearer {ORDER_SERVICE_KEY}"),)


# -- replicas as processes -------------------------------------------------------------------


def replica_env(database_url: str, double: StreamDouble, **overrides: str) -> dict[str, str]:
    """Production-style environment of a replica (nothing inherited from CHAT_GATEWAY_*)."""
    return gateway_environ(
        {
            "GETSTREAM_API_KEY": STREAM_TEST_KEY,
            "GETSTREAM_API_SECRET": STREAM_TEST_SECRET,
            "CHAT_GATEWAY_BACKEND": "stream",
            "STREAM_CHAT_URL": double.url,
            "CHAT_GATEWAY_SERVICES": (
                f"order-service:{hash_key(ORDER_SERVICE_KEY)}"
                ":EnsureOrderChannel,AuthorizeParticipant"
            ),
            "CHAT_GATEWAY_DATABASE_URL": database_url,
            "CHAT_GATEWAY_GRPC_ADDR": "127.0.0.1:0",  # a free port, distinct per replica
            "CHAT_GATEWAY_HTTP_ADDR": "127.0.0.1:0",
            "CHAT_GATEWAY_LOG_LEVEL": "INFO",
            **overrides,
        }
    )


async def start_replicas(children: GatewayChildren, env: dict[str, str]) -> list[GatewayChild]:
    """Start two replicas at once (they race on the migrations) and wait until both serve;
    they are stopped after the test."""
    replicas = [await children.spawn(env, dev=False, name=f"replica-{n}") for n in "AB"]
    await asyncio.gather(*(r.wait_serving() for r in replicas))
    return replicas


@contextlib.asynccontextmanager
async def replica_stubs(
    replicas: list[GatewayChild], *, bursts: bool = False
) -> AsyncIterator[list[pb_grpc.ChatGatewayAsyncStub]]:
    """One ChatGateway stub per replica, each on its own warmed-up channel; with ``bursts``
    the channels retry calls refused past the server's stream limit."""
    opened = bursting_channel if bursts else grpc.aio.insecure_channel
    async with contextlib.AsyncExitStack() as stack:
        yield [
            pb_grpc.ChatGatewayStub(
                await warmed(await stack.enter_async_context(opened(r.grpc_addr)))
            )
            for r in replicas
        ]


# -- helpers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    sync_state: str
    synced_at: datetime | None
    claimed_until: datetime


async def db_rows(url: str) -> dict[str, Row]:
    """The registry's orders, read straight from PostgreSQL (async: the loop runs the double)."""
    async with await psycopg.AsyncConnection.connect(url, connect_timeout=3) as conn:
        cur = await conn.execute(
            "SELECT order_id, sync_state, synced_at, claimed_until FROM orders"
        )
        return {r[0]: Row(r[1], r[2], r[3]) for r in await cur.fetchall()}


def synced(rows: dict[str, Row], order_id: str) -> datetime:
    """When ``order_id`` was marked synced (it must be)."""
    synced_at = rows[order_id].synced_at
    assert synced_at is not None, order_id
    return synced_at


async def wait_all_synced(url: str, order_ids: set[str], timeout_s: float) -> dict[str, Row]:
    """Poll the registry until every order in ``order_ids`` is synced (bounded)."""
    rows: dict[str, Row] = {}

    async def all_synced() -> bool:
        rows.clear()
        rows.update(await db_rows(url))
        return all(o in rows and rows[o].sync_state == "synced" for o in order_ids)

    def pending() -> str:
        left = sorted(o for o in order_ids if o not in rows or rows[o].sync_state != "synced")
        return f"{len(left)} order(s) not synced: {left[:10]}"

    await eventually(all_synced, timeout_s=timeout_s, message=pending)
    return rows


def get_or_create_calls(double: StreamDouble) -> Counter[str]:
    """Successful get-or-create (``query``) calls the double answered, per channel cid."""
    counts: Counter[str] = Counter()
    for call in double.calls:
        parts = call.path.strip("/").split("/")
        if call.method == "POST" and len(parts) == 4 and parts[0] == "channels":
            if parts[3] == "query" and call.status == 200:
                counts[f"{parts[1]}:{parts[2]}"] += 1
    return counts


def assert_double_holds_exactly(double: StreamDouble, order_ids: set[str]) -> None:
    """One channel per order at the double, with exactly its buyer and seller, created once."""
    expected = {cid_of(o): sorted([f"b-{o}", f"s-{o}"]) for o in order_ids}
    assert {cid: sorted(ch.members) for cid, ch in double.channels.items()} == expected
    assert double.creations == dict.fromkeys(expected, 1)


# -- 1. two replicas, 500 concurrent calls ---------------------------------------------------

ORDERS = 100
CALLS = 500


async def test_two_replicas_500_concurrent_calls_create_each_channel_exactly_once(
    pg_url: str, stream_double: StreamDouble, gateway_children: GatewayChildren
) -> None:
    # Generous Stream bounds: an inline attempt never times out here, so a second
    # get-or-create call for an order could only come from double processing.
    env = replica_env(
        pg_url,
        stream_double,
        CHAT_GATEWAY_STREAM_TIMEOUT="8",
        CHAT_GATEWAY_INLINE_SYNC_BUDGET="8",
        CHAT_GATEWAY_SYNC_POLL_INTERVAL="0.1",
        CHAT_GATEWAY_SYNC_LEASE="10",
        CHAT_GATEWAY_SYNC_BACKOFF_CAP="0.5",
        CHAT_GATEWAY_DATABASE_TIMEOUT="5",  # the test is about exactly-once, not timeouts
    )
    order_ids = [f"rep-{i:03d}" for i in range(ORDERS)]
    # Call j is for order j % 100; an order's 5 calls alternate between the replicas
    # (250 calls each), and the whole batch is shuffled so every order is raced on both.
    plan = [(order_ids[j % ORDERS], (j + j // ORDERS) % 2) for j in range(CALLS)]
    random.Random(6).shuffle(plan)

    replicas = await start_replicas(gateway_children, env)
    async with replica_stubs(replicas, bursts=True) as stubs:
        answers: dict[str, list[tuple[int, pb.EnsureOrderChannelResponse]]] = defaultdict(list)
        errors: list[tuple[str, int, grpc.StatusCode]] = []

        async def ensure(order_id: str, which: int) -> None:
            try:
                reply = await stubs[which].EnsureOrderChannel(
                    own_parties_request(order_id), metadata=ORDER_SERVICE, timeout=30
                )
            except grpc.aio.AioRpcError as exc:
                errors.append((order_id, which, exc.code()))
                return
            answers[order_id].append((which, reply))

        started = time.monotonic()
        async with asyncio.timeout(45):
            await asyncio.gather(*(ensure(o, w) for o, w in plan))
        load_s = time.monotonic() - started

        logs = "\n".join(r.log_tail() for r in replicas)
        assert not errors, f"{len(errors)} failed call(s), e.g. {errors[:5]}\n{logs}"
        assert sum(len(v) for v in answers.values()) == CALLS
        created_by = Counter[int]()
        for order_id in order_ids:
            replies = answers[order_id]
            assert len(replies) == CALLS // ORDERS
            assert Counter(w for w, _ in replies) in (
                Counter({0: 3, 1: 2}),
                Counter({0: 2, 1: 3}),
            )
            creators = [w for w, reply in replies if reply.created]
            assert len(creators) == 1, f"{order_id}: created=true {len(creators)} times"
            created_by[creators[0]] += 1
            for _, reply in replies:
                assert reply.channel.cid == cid_of(order_id)
                assert reply.channel.buyer_user_id == f"b-{order_id}"
                assert reply.channel.seller_user_id == f"s-{order_id}"
        # Both replicas won creation races (the load really was spread).
        assert created_by[0] > 0 and created_by[1] > 0

        await wait_all_synced(pg_url, set(order_ids), timeout_s=15)
        assert_double_holds_exactly(stream_double, set(order_ids))
        queries = get_or_create_calls(stream_double)
        assert queries == Counter({cid_of(o): 1 for o in order_ids}), {
            cid: n for cid, n in queries.items() if n != 1
        }

        # AuthorizeParticipant agrees on both replicas, and is right.
        async def authorize(which: int, order_id: str, user_id: str) -> tuple[bool, int, str]:
            reply = await stubs[which].AuthorizeParticipant(
                pb.AuthorizeParticipantRequest(order_id=order_id, user_id=user_id),
                metadata=ORDER_SERVICE,
                timeout=15,
            )
            return reply.allowed, int(reply.role), reply.channel.cid

        questions = [(o, u) for o in order_ids for u in (f"b-{o}", f"s-{o}", f"stranger-{o}")]
        async with asyncio.timeout(30):
            per_replica = [
                await asyncio.gather(*(authorize(w, o, u) for o, u in questions)) for w in (0, 1)
            ]
        assert per_replica[0] == per_replica[1]
        expected = [
            (True, pb.PARTICIPANT_ROLE_BUYER, cid_of(o))
            if u.startswith("b-")
            else (True, pb.PARTICIPANT_ROLE_SELLER, cid_of(o))
            if u.startswith("s-")
            else (False, pb.PARTICIPANT_ROLE_UNSPECIFIED, "")
            for o, u in questions
        ]
        assert per_replica[0] == expected
        assert all(r.proc.returncode is None for r in replicas)
    logger.info(
        "replicas: %d calls over %d orders in %.2fs; created on A=%d B=%d; "
        "get-or-create calls at the double=%d",
        CALLS,
        ORDERS,
        load_s,
        created_by[0],
        created_by[1],
        sum(queries.values()),
    )


# -- 2. SIGKILL of a replica with pending orders --------------------------------------------

ACKED = 10  # acknowledged PENDING by the doomed replica, its claim released
IN_FLIGHT = 10  # still in the doomed replica's inline attempt (claimed) when it dies
INLINE_BUDGET_S = 2.5
CLAIM_SLACK_S = 5.0  # ChatService claims a new order for its inline budget + 5 s


async def test_sigkill_of_a_replica_with_pending_orders_the_other_finishes_them(
    pg_url: str, stream_double: StreamDouble, gateway_children: GatewayChildren
) -> None:
    env = replica_env(
        pg_url,
        stream_double,
        CHAT_GATEWAY_STREAM_TIMEOUT="1",
        CHAT_GATEWAY_INLINE_SYNC_BUDGET=str(INLINE_BUDGET_S),
        CHAT_GATEWAY_SYNC_POLL_INTERVAL="0.05",
        CHAT_GATEWAY_SYNC_LEASE="1",
        CHAT_GATEWAY_SYNC_BACKOFF_CAP="0.3",
    )
    acked = [f"kill-acked-{i}" for i in range(ACKED)]
    in_flight = [f"kill-inflight-{i}" for i in range(IN_FLIGHT)]
    doomed, survivor = await start_replicas(gateway_children, env)
    await stream_double.stop()  # Stream outage: connection refused
    async with grpc.aio.insecure_channel(doomed.grpc_addr) as channel:
        stub = pb_grpc.ChatGatewayStub(channel)
        # A short deadline shrinks the inline attempt (80 % of it): these come back
        # PENDING, with the failure recorded and the order left to the sync workers.
        replies = await asyncio.gather(
            *(
                stub.EnsureOrderChannel(own_parties_request(o), metadata=ORDER_SERVICE, timeout=1.0)
                for o in acked
            )
        )
        assert all(r.created and r.channel.sync_state == pb.SYNC_STATE_PENDING for r in replies)
        # These get the full inline budget; the replica dies while retrying them.
        calls = [
            asyncio.ensure_future(
                stub.EnsureOrderChannel(own_parties_request(o), metadata=ORDER_SERVICE, timeout=20)
            )
            for o in in_flight
        ]
        try:

            async def committed() -> bool:  # the doomed replica has committed them
                rows = await db_rows(pg_url)
                return all(o in rows for o in in_flight)

            await eventually(committed, timeout_s=5, message=doomed.log_tail)
            assert await doomed.kill() == -signal.SIGKILL
            killed_at = time.monotonic()
        finally:
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
    # Nobody was told these orders exist: the calls died with the replica.
    assert all(isinstance(o, grpc.aio.AioRpcError) for o in outcomes), outcomes

    at_kill = await db_rows(pg_url)
    assert {o: at_kill[o].sync_state for o in acked + in_flight} == dict.fromkeys(
        acked + in_flight, "pending"
    )
    # The dead replica still holds its inline claims on the in-flight orders.
    now = datetime.now(at_kill[in_flight[0]].claimed_until.tzinfo)
    held = {o: at_kill[o].claimed_until for o in in_flight}
    assert all(until > now for until in held.values()), (now, held)

    await stream_double.start()  # Stream is back (same port)
    back_at = time.monotonic()
    back_wall = datetime.now(now.tzinfo)
    rows = await wait_all_synced(pg_url, set(acked + in_flight), timeout_s=20)
    done_at = time.monotonic()

    # The survivor respected the dead replica's claims: nothing synced before they ran out.
    for order_id in in_flight:
        assert synced(rows, order_id) >= held[order_id], order_id
    takeover_lag_s = max((synced(rows, o) - held[o]).total_seconds() for o in in_flight)
    acked_sync_s = max((synced(rows, o) - back_wall).total_seconds() for o in acked)
    assert takeover_lag_s < 3.0, takeover_lag_s
    assert acked_sync_s < 3.0, acked_sync_s

    everything = set(acked + in_flight)
    assert_double_holds_exactly(stream_double, everything)
    # Only the survivor reached Stream after the outage, once per order.
    assert get_or_create_calls(stream_double) == Counter({cid_of(o): 1 for o in everything})

    async with grpc.aio.insecure_channel(survivor.grpc_addr) as channel:
        stub = pb_grpc.ChatGatewayStub(channel)
        for order_id in sorted(everything):
            answer = await stub.AuthorizeParticipant(
                pb.AuthorizeParticipantRequest(order_id=order_id, user_id=f"s-{order_id}"),
                metadata=ORDER_SERVICE,
                timeout=5,
            )
            assert answer.allowed and answer.role == pb.PARTICIPANT_ROLE_SELLER
            assert answer.channel.sync_state == pb.SYNC_STATE_SYNCED
    assert survivor.proc.returncode is None
    logger.info(
        "sigkill: all %d orders synced %.2fs after the kill, %.2fs after Stream was back; "
        "acked orders synced within %.2fs of Stream's return; in-flight orders taken over "
        "%.2fs (max) after the dead replica's claim ran out (claims held %.2fs past the kill)",
        len(everything),
        done_at - killed_at,
        done_at - back_at,
        acked_sync_s,
        takeover_lag_s,
        max((until - now).total_seconds() for until in held.values()),
    )


# -- 3. database crash and restart under load on both replicas ------------------------------

CLIENTS = 6
DB_TIMEOUT_S = 1.0
DOWN_S = 3.0


async def test_database_restart_under_load_on_replicas_loses_and_duplicates_nothing(
    pg_private: PostgresServer,
    stream_double: StreamDouble,
    gateway_children: GatewayChildren,
) -> None:
    url = pg_private.create_database()
    env = replica_env(
        url,
        stream_double,
        CHAT_GATEWAY_DATABASE_TIMEOUT=str(DB_TIMEOUT_S),
        CHAT_GATEWAY_STREAM_TIMEOUT="2",
        CHAT_GATEWAY_INLINE_SYNC_BUDGET="1",
        CHAT_GATEWAY_SYNC_POLL_INTERVAL="0.05",
        CHAT_GATEWAY_SYNC_LEASE="2",
        CHAT_GATEWAY_SYNC_BACKOFF_CAP="0.4",
    )
    replicas = await start_replicas(gateway_children, env)
    async with replica_stubs(replicas) as stubs:
        load = OrderLoad(
            stubs, clients=CLIENTS, prefix="pg-", call_timeout_s=10, metadata=ORDER_SERVICE
        )
        async with load:
            await asyncio.sleep(1.5)
            acked_before = len(load.created_flags)
            # pg_ctl blocks; the double lives in this loop, so run it in a thread.
            await asyncio.to_thread(pg_private.stop, "immediate")
            down_at = time.monotonic()
            await asyncio.sleep(DOWN_S)
            await asyncio.to_thread(pg_private.start)
            up_at = time.monotonic()
            recovery_s = await load.recovery_after(up_at)
            await asyncio.sleep(1.5)
        created_flags, failures = load.created_flags, load.failures

        # Every acknowledged order, asked again on either replica, is known.
        for n, order_id in enumerate(sorted(created_flags)):
            again = await stubs[n % 2].EnsureOrderChannel(
                own_parties_request(order_id), metadata=ORDER_SERVICE, timeout=10
            )
            assert not again.created and again.channel.cid == cid_of(order_id)

        stored = set(await db_rows(url))
        rows = await wait_all_synced(url, stored, timeout_s=20)
        assert all(r.proc.returncode is None for r in replicas), "a replica died"
    latencies = [latency for latency, _ in failures]
    logger.info(
        "replicas through a database restart: acked=%d (before crash %d) attempted=%d "
        "stored=%d failures=%d (max latency %.2fs) down=%.1fs first success %.2fs after "
        "restart; get-or-create calls=%d for %d channels",
        len(created_flags),
        acked_before,
        len(load.attempted),
        len(rows),
        len(failures),
        max(latencies, default=0.0),
        up_at - down_at,
        recovery_s,
        sum(get_or_create_calls(stream_double).values()),
        len(stream_double.channels),
    )

    assert acked_before > 0 and len(created_flags) > acked_before  # load before and after
    assert failures, "the outage was not observed"
    assert {code for _, code in failures} == {grpc.StatusCode.UNAVAILABLE}
    assert max(latencies) < DB_TIMEOUT_S + 2.0  # fail fast, never hang
    assert recovery_s < 10.0
    # No lost order: everything acknowledged is stored; nothing unknown was stored.
    assert set(created_flags) <= stored <= load.attempted
    # Reported created at most once, and never again after a first answer.
    assert all(flags.count(True) <= 1 for flags in created_flags.values())
    assert all(not any(flags[1:]) for flags in created_flags.values())
    # Every stored order is at the double, once, with exactly its two members.
    assert_double_holds_exactly(stream_double, stored)
