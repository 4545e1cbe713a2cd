"""``python -m tests.bench.double``: the Stream double (``tests/stream_double``) as a process
of its own, answering every call after ``--delay`` seconds, with a small stats server.

A separate process keeps its CPU apart from the harness's and the new-order driver's. Its
CPU is reported, and so is its event loop's lag (how late a 5 ms sleep wakes up): the double
is single-threaded Python sharing the machine with the gateway, and a busy double would
answer later than ``--delay`` and slow the gateway down with it. To keep it light it
remembers the server tokens that passed verification (the SDK signs one and reuses it), so
each call skips the JWT decode; anything else is verified as the double always does.

It prints one JSON line, ``{"url": …, "stats": …}``, then serves until SIGTERM (or
``--lifetime`` seconds). Stats
(JSON, GET):

- ``/count``: requests received and answered so far (cheap; for waiting until quiet);
- ``/stats?prefix=P``: calls by method and path pattern and by status, and the channels
  whose id starts with ``P``: how many, how many were created exactly once, the most
  creations of one; the process's CPU seconds; the loop lag (p50/p99/max ms) since the
  last ``/stats?reset_lag=1``; and per call kind the answers so far and the seconds they
  spent in the double (from reading the request to the answer made), to set against the
  latency the gateway sees.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import time
from collections import Counter, deque

import uvloop
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.stream_double import StreamDouble

_CHANNEL = re.compile(r"^/channels/[^/]+/[^/]+")
_TICK_S = 0.005


class BenchDouble(StreamDouble):
    """The Stream double, remembering server tokens that verified (at most 100)."""

    def __init__(self, *, api_key: str, api_secret: str) -> None:
        super().__init__(api_key=api_key, api_secret=api_secret)
        self._verified: set[str] = set()
        self.lag_ms: deque[float] = deque(maxlen=200_000)
        self.answer_s: dict[str, list[float]] = {}
        """Per call kind: [answers, seconds spent in the double]."""

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await super()._middleware(request, handler)
        finally:
            kind = request.match_info.route.name or ""
            spent = self.answer_s.setdefault(kind, [0, 0.0])
            spent[0] += 1
            spent[1] += time.perf_counter() - started

    def _authenticate(self, request: web.Request) -> None:
        token = request.headers.get("Authorization", "")
        if (
            token in self._verified
            and request.query.get("api_key") == self.api_key
            and request.headers.get("Stream-Auth-Type", "").lower() == "jwt"
        ):
            return
        super()._authenticate(request)
        if len(self._verified) < 100:
            self._verified.add(token)

    async def watch_lag(self) -> None:
        """Record how late each 5 ms sleep wakes up (runs until cancelled)."""
        while True:
            started = time.perf_counter()
            await asyncio.sleep(_TICK_S)
            self.lag_ms.append((time.perf_counter() - started - _TICK_S) * 1000)


def _lag(samples: deque[float]) -> dict[str, float]:
    ordered = sorted(samples) or [0.0]

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)}


def summary(double: BenchDouble, prefix: str) -> dict[str, object]:
    """What :mod:`tests.bench.double`'s ``/stats`` answers (see the module docstring)."""
    by_path = Counter(
        f"{c.method} {_CHANNEL.sub('/channels/{type}/{id}', c.path)}" for c in double.calls
    )
    statuses = Counter(str(c.status) for c in double.calls)
    mine = [n for cid, n in double.creations.items() if cid.split(":", 1)[1].startswith(prefix)]
    times = os.times()
    return {
        "requests_seen": double.requests_seen,
        "answered": len(double.calls),
        "by_path": dict(by_path),
        "statuses": dict(statuses),
        "channels": {
            "count": len(mine),
            "created_once": sum(1 for n in mine if n == 1),
            "max_creations": max(mine, default=0),
        },
        "cpu_s": times.user + times.system,
        "loop_lag": _lag(double.lag_ms),
        "answer_s": {kind: list(spent) for kind, spent in double.answer_s.items()},
    }


async def serve(delay_s: float, api_key: str, api_secret: str, lifetime_s: float) -> None:
    """Run the double and the stats server until SIGTERM or SIGINT (at most ``lifetime_s``)."""
    double = BenchDouble(api_key=api_key, api_secret=api_secret)
    double.delay_s = delay_s
    await double.start()
    watcher = asyncio.create_task(double.watch_lag())

    async def count(_: web.Request) -> web.Response:
        return web.json_response({"seen": double.requests_seen, "answered": len(double.calls)})

    async def stats(request: web.Request) -> web.Response:
        answer = summary(double, request.query.get("prefix", ""))
        if request.query.get("reset_lag"):
            double.lag_ms.clear()
        return web.json_response(answer)

    app = web.Application()
    app.router.add_get("/count", count)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stats_port = runner.addresses[0][1]
    sys.stdout.write(json.dumps({"url": double.url, "stats": stats_port}) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=lifetime_s)
    except TimeoutError:
        pass  # an orphan (its bench run died without stopping it) ends by itself
    watcher.cancel()
    await runner.cleanup()
    await double.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.double")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds before each answer")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--api-secret", required=True)
    parser.add_argument("--lifetime", type=float, default=3600, help="exit after this long")
    args = parser.parse_args()
    uvloop.run(serve(args.delay, args.api_key, args.api_secret, args.lifetime))


if __name__ == "__main__":
    main()
