"""The order chat on your machine, without Stream credentials: the Stream double (server
and client side) and the gateway in the dev profile, in stream mode on the double, serving
the page itself (``CHAT_GATEWAY_DEV_PAGES``).

    .venv/bin/python -m tests.acceptance.web.devserver [--order ORDER] [--port PORT]

It places an order for ``buyer-dev`` and ``seller-dev`` and prints one sign-in link per
participant (the bridge's dev sign-in; open them in two browser profiles, or one in a
private window). Ctrl-C stops everything. With a real Stream app, ``make run`` with
``GETSTREAM_*`` set does the same without the double.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
from pathlib import Path

from gateway.app import Gateway
from gateway.config import load_settings
from gateway.domain import Participant
from tests.stream_double import StreamDouble
from tests.stream_double.fixtures import STREAM_TEST_KEY, STREAM_TEST_SECRET
from tests.stream_double.realtime import state_of

PEOPLE = ("buyer-dev", "seller-dev")


async def serve(order_id: str, port: int, workdir: Path) -> None:
    double = StreamDouble(api_key=STREAM_TEST_KEY, api_secret=STREAM_TEST_SECRET)
    await double.start()
    try:
        settings = load_settings(
            {
                "GETSTREAM_API_KEY": STREAM_TEST_KEY,
                "GETSTREAM_API_SECRET": STREAM_TEST_SECRET,
                "STREAM_CHAT_URL": double.url,
                "CHAT_GATEWAY_DATABASE_URL": f"sqlite:///{workdir / 'registry.db'}",
                "CHAT_GATEWAY_GRPC_ADDR": "127.0.0.1:0",
                "CHAT_GATEWAY_HTTP_ADDR": f"127.0.0.1:{port}",
            },
            dev=True,
        )
        async with Gateway(settings) as gateway:
            bridge = f"http://127.0.0.1:{gateway.http_port}"
            state_of(double).cors_origins.add(bridge)  # the page talks to Stream directly
            buyer, seller = PEOPLE
            await gateway.service.ensure_order_channel(
                order_id, Participant(buyer, "Bea Buyer"), Participant(seller, "Sam Seller")
            )
            page = f"/chat/stream/{order_id}"
            sys.stdout.write(
                f"bridge {bridge}, Stream double {double.url}\n"
                + "".join(f"  {who}: {bridge}/chat/dev/login/{who}?next={page}\n" for who in PEOPLE)
            )
            sys.stdout.flush()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
    finally:
        await double.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--order", default="ord-dev-1")
    parser.add_argument("--port", type=int, default=8090, help="the bridge's port (0: any)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.order, args.port, Path(workdir)))


if __name__ == "__main__":
    main()
