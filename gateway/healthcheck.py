"""Container health probe: ``python -m gateway.healthcheck [--addr HOST:PORT] [--service NAME]``.

Asks the standard ``grpc.health.v1.Health/Check`` of the gateway and exits 0 only when it
answers ``SERVING``; 1 otherwise (not serving, unreachable, timed out). It reads the listen
address from ``CHAT_GATEWAY_GRPC_ADDR`` on purpose and not through ``load_settings``: the probe
must work with whatever configuration the server was started with (including ``serve --dev``),
and it needs no secret. A wildcard host (``0.0.0.0``, ``[::]``) is probed on loopback.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_ADDR = "127.0.0.1:50051"
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "::": "[::1]", "": "127.0.0.1"}


def probe_target(listen_addr: str) -> str:
    """The address to dial for a server listening on ``listen_addr``."""
    host, _, port = listen_addr.rpartition(":")
    return f"{_WILDCARDS.get(host, host)}:{port}"


def check(target: str, *, service: str = "", timeout_s: float = 3.0) -> str:
    """Return the health status name (``SERVING``, ``NOT_SERVING``, ...) or the RPC error code."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            return code.name if code is not None else "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def main(argv: list[str] | None = None) -> int:
    """Probe once; exit code 0 when SERVING, else 1."""
    parser = argparse.ArgumentParser(prog="python -m gateway.healthcheck", description=__doc__)
    parser.add_argument(
        "--addr",
        default=os.environ.get("CHAT_GATEWAY_GRPC_ADDR", DEFAULT_ADDR),
        help="gRPC listen address of the gateway (default: $CHAT_GATEWAY_GRPC_ADDR)",
    )
    parser.add_argument("--service", default="", help="service name to check (default: overall)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default: 3)")
    args = parser.parse_args(argv)
    target = probe_target(args.addr)
    status = check(target, service=args.service, timeout_s=args.timeout)
    sys.stdout.write(f"{target} {status}\n")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
