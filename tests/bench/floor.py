"""``python -m tests.bench.floor``: the new-orders phase's floor, grpc.aio with nothing else.

A bare ``grpc.aio`` server (no interceptor, registry or Stream client) whose
``EnsureOrderChannel`` waits ``--delay`` seconds, the time of an order's Stream calls
(users upsert, then channel query, 50 ms each), and answers a created, SYNCED channel. Driven
by :mod:`tests.bench.orders` like the gateway, in the same run, it measures what this machine
and the framework allow at 64 calls in flight: the orders/s no gateway could pass here.
Prints ``{"port": ...}`` once serving; serves until terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import grpc
from tradetrust.chat.v1 import chat_gateway_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["ChatGateway"].full_name


async def serve(delay_s: float) -> None:
    """Serve until terminated."""

    async def ensure(
        request: pb.EnsureOrderChannelRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.EnsureOrderChannelResponse:
        await asyncio.sleep(delay_s)
        return pb.EnsureOrderChannelResponse(
            created=True,
            channel=pb.OrderChannel(order_id=request.order_id, sync_state=pb.SYNC_STATE_SYNCED),
        )

    handler = grpc.unary_unary_rpc_method_handler(
        ensure,
        request_deserializer=pb.EnsureOrderChannelRequest.FromString,
        response_serializer=pb.EnsureOrderChannelResponse.SerializeToString,
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"EnsureOrderChannel": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    sys.stdout.write(json.dumps({"port": port}) + "\n")
    sys.stdout.flush()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.floor")
    parser.add_argument("--delay", type=float, default=0.1, help="seconds before each answer")
    asyncio.run(serve(parser.parse_args().delay))


if __name__ == "__main__":
    main()
