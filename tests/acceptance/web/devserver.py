"""The order chat on your machine, without Stream credentials: the Stream double (server
and client side), the gateway (dev profile, stream mode on the double) and the page.

    .venv/bin/python -m tests.acceptance.web.devserver [--order ORDER] [--port PORT]

It builds the page from clients/web (Node + npm), places an order for ``buyer-dev`` and
``seller-dev``, and prints one sign-in link per participant (open them in two browser
profiles, or one in a private window). Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from pathlib import Path

import jwt

from gateway.config import DEV_SESSION_SECRET, load_settings
from gateway.domain import Participant
from gateway.main import build_gateway
from tests.acceptance.web import bundle, site
from tests.stream_double import StreamDouble
from tests.stream_double.fixtures import STREAM_TEST_KEY, STREAM_TEST_SECRET
from tests.stream_double.realtime import state_of

SESSION_TTL_S = 8 * 3600
PEOPLE = ("buyer-dev", "seller-dev")


def dev_session(user_id: str) -> str:
    """A TradeTrust session for ``user_id``, signed with the dev profile's secret."""
    claims = {"sub": user_id, "exp": int(time.time()) + SESSION_TTL_S}
    return jwt.encode(claims, DEV_SESSION_SECRET, algorithm="HS256")


async def serve(order_id: str, port: int, workdir: Path) -> None:
    bundles = bundle.build()
    double = StreamDouble(api_key=STREAM_TEST_KEY, api_secret=STREAM_TEST_SECRET)
    await double.start()
    try:
        async with site.serve(bundles, port=port, session_for=dev_session) as web:
            state_of(double).cors_origins.add(web.origin)
            settings = load_settings(
                {
                    "GETSTREAM_API_KEY": STREAM_TEST_KEY,
                    "GETSTREAM_API_SECRET": STREAM_TEST_SECRET,
                    "STREAM_CHAT_URL": double.url,
                    "CHAT_GATEWAY_DATABASE_URL": f"sqlite:///{workdir / 'registry.db'}",
                    "CHAT_GATEWAY_GRPC_ADDR": "127.0.0.1:0",
                    "CHAT_GATEWAY_HTTP_ADDR": "127.0.0.1:0",
                    "CHAT_GATEWAY_CORS_ORIGINS": web.origin,
                },
                dev=True,
            )
            gateway = await build_gateway(settings)
            await gateway.start()
            try:
                web.config.bridge_url = f"http://127.0.0.1:{gateway.http_port}"
                web.config.stream_url = double.url
                buyer, seller = PEOPLE
                await gateway.service.ensure_order_channel(
                    order_id, Participant(buyer, "Bea Buyer"), Participant(seller, "Sam Seller")
                )
                page = f"/chat/stream/{order_id}"
                sys.stdout.write(
                    f"bridge {web.config.bridge_url}, Stream double {double.url}\n"
                    + "".join(
                        f"  {who}: {web.origin}/dev/login/{who}?next={page}\n" for who in PEOPLE
                    )
                )
                sys.stdout.flush()
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                await stop.wait()
            finally:
                await gateway.stop(grace_s=1.0)
    finally:
        await double.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--order", default="ord-dev-1")
    parser.add_argument("--port", type=int, default=8090, help="the page's port (0: any)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.order, args.port, Path(workdir)))


if __name__ == "__main__":
    main()
