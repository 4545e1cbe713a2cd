"""Container health probe: ``python -m gateway.healthcheck [--addr HOST:PORT] [--service NAME]``.

Asks the standard ``grpc.health.v1.Health/Check`` of the gateway and exits 0 only when it
answers ``SERVING``; 1 otherwise (not serving, unreachable, timed out). It reads the listen
address from ``CHAT_GATEWAY_GRPC_ADDR`` on purpose and not through ``load_settings``: the probe
must work with whatever configuration the server was started with (including ``serve --dev``),
and it needs no secret. A wildcard host (``0.0.0.0``, ``[::]``) is probed on loopback.

When the gRPC port speaks TLS (``CHAT_GATEWAY_TLS_CERT_FILE`` set), the probe does too: it
trusts ``CHAT_GATEWAY_HEALTHCHECK_CA_FILE`` (default: the server's own certificate file, which
works for a self-signed certificate) and, under mTLS, presents
``CHAT_GATEWAY_HEALTHCHECK_CERT_FILE``/``_KEY_FILE``. ``CHAT_GATEWAY_HEALTHCHECK_SERVER_NAME``
overrides the name checked against the certificate (default ``localhost``).
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


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as fh:
        return fh.read()


def tls_channel(target: str, env: dict[str, str]) -> grpc.Channel | None:
    """A TLS channel configured as the docstring says, or ``None`` for plaintext."""
    server_cert = env.get("CHAT_GATEWAY_TLS_CERT_FILE")
    if not server_cert:
        return None
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(env.get("CHAT_GATEWAY_HEALTHCHECK_CA_FILE") or server_cert),
        private_key=_read(env.get("CHAT_GATEWAY_HEALTHCHECK_KEY_FILE")),
        certificate_chain=_read(env.get("CHAT_GATEWAY_HEALTHCHECK_CERT_FILE")),
    )
    name = env.get("CHAT_GATEWAY_HEALTHCHECK_SERVER_NAME", "localhost")
    return grpc.secure_channel(
        target, credentials, options=[("grpc.ssl_target_name_override", name)]
    )


def check(
    target: str, *, service: str = "", timeout_s: float = 3.0, env: dict[str, str] | None = None
) -> str:
    """Return the health status name (``SERVING``, ``NOT_SERVING``, ...) or the RPC error code."""
    channel = tls_channel(target, dict(os.environ if env is None else env))
    with channel or grpc.insecure_channel(target) as channel:
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
