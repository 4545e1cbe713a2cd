"""``python -m tests.bench.orders``: drive ``EnsureOrderChannel`` for orders never seen
before, ``--concurrency`` calls at a time (grpc.aio, one channel), and print one JSON line.

Every call is a new order ``<prefix><i>``. Its buyer and seller are either new users on
every order (``--buyers 0 --sellers 0``: ``<prefix>b<i>``, ``<prefix>s<i>``) or drawn from
fixed pools of returning users (``ret-b<k>``, ``ret-s<k>``): at random, or with ``--cover``
each pool user in turn, so a warm-up run can introduce every pool user once.

Calls stop starting after ``--duration`` seconds or ``--count`` orders, whichever comes
first; the calls in flight then finish. Each answer is checked: ``created`` and a
``SYNCED`` channel count as done, ``PENDING`` (Stream did not finish within the inline
budget) and errors are counted apart. The JSON has orders/s over the phase, p50/p90/p99 ms
and the driver's own CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
from tradetrust.chat.v1 import chat_gateway_pb2 as pb

from tests.bench.loadgen import pct

METHOD = "/tradetrust.chat.v1.ChatGateway/EnsureOrderChannel"


@dataclass
class Tally:
    """What the calls of one phase came back with."""

    latencies_us: list[int] = field(default_factory=list)
    synced: int = 0
    pending: int = 0
    not_created: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def participants(args: argparse.Namespace, i: int, rng: random.Random) -> tuple[str, str]:
    """The buyer and seller of the ``i``-th order of the run."""
    if not args.buyers:
        return f"{args.prefix}b{i}", f"{args.prefix}s{i}"
    if args.cover:
        return f"ret-b{i % args.buyers}", f"ret-s{i % args.sellers}"
    return f"ret-b{rng.randrange(args.buyers)}", f"ret-s{rng.randrange(args.sellers)}"


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    """Run the phase; the JSON summary."""
    tally, counter, rng = Tally(), itertools.count(), random.Random(args.seed)
    metadata = (("authorization", f"Bearer {args.key}"),)
    started = time.monotonic()
    deadline = started + args.duration
    cpu_before = sum(os.times()[:2])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{args.port}") as channel:
        call: Any = channel.unary_unary(METHOD)

        async def worker() -> None:
            for i in counter:  # bounded: --count orders, --duration seconds
                if i >= args.count or time.monotonic() >= deadline:
                    return
                buyer, seller = participants(args, i, rng)
                request = pb.EnsureOrderChannelRequest(
                    order_id=f"{args.prefix}{i}",
                    buyer=pb.Participant(user_id=buyer, display_name=f"Buyer {buyer}"),
                    seller=pb.Participant(user_id=seller, display_name=f"Seller {seller}"),
                ).SerializeToString()
                sent = time.perf_counter_ns()
                try:
                    raw = await call(request, metadata=metadata, timeout=args.timeout)
                except grpc.aio.AioRpcError as exc:
                    tally.errors[exc.code().name] += 1
                    continue
                tally.latencies_us.append((time.perf_counter_ns() - sent) // 1000)
                reply = pb.EnsureOrderChannelResponse.FromString(raw)
                if not reply.created:
                    tally.not_created += 1
                if reply.channel.sync_state == pb.SYNC_STATE_SYNCED:
                    tally.synced += 1
                else:
                    tally.pending += 1

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.monotonic() - started
    lat = sorted(tally.latencies_us)
    answered = len(lat)
    return {
        "orders": answered,
        "synced": tally.synced,
        "pending": tally.pending,
        "not_created": tally.not_created,
        "errors": sum(tally.errors.values()),
        "error_codes": dict(tally.errors),
        "elapsed_s": round(elapsed, 3),
        "orders_per_s": round(answered / elapsed, 1) if elapsed else 0.0,
        "p50_ms": pct(lat, 50) / 1000,
        "p90_ms": pct(lat, 90) / 1000,
        "p99_ms": pct(lat, 99) / 1000,
        "cpu_s": round(sum(os.times()[:2]) - cpu_before, 3),
        "concurrency": args.concurrency,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.orders")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--prefix", required=True, help="order id prefix, unique per phase")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=1_000_000, help="most orders")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--buyers", type=int, default=0, help="returning buyers (0: new)")
    parser.add_argument("--sellers", type=int, default=0, help="returning sellers (0: new)")
    parser.add_argument("--cover", action="store_true", help="pool users in turn")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline of each call")
    args = parser.parse_args()
    if bool(args.buyers) != bool(args.sellers):
        parser.error("--buyers and --sellers: both pools or neither")
    sys.stdout.write(json.dumps(asyncio.run(drive(args))) + "\n")


if __name__ == "__main__":
    main()
