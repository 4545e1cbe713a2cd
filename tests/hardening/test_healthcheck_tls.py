"""The container health probe speaks TLS and mTLS when the gRPC port does."""

from __future__ import annotations

import asyncio

from gateway.app import Gateway
from gateway.healthcheck import check
from tests.helpers.pki import Pki


async def probe(gateway: Gateway, env: dict[str, str]) -> str:
    target = f"127.0.0.1:{gateway.grpc_port}"
    return await asyncio.to_thread(check, target, timeout_s=3.0, env=env)


async def test_probe_with_client_certificate_sees_serving(mtls_gateway: Gateway, pki: Pki) -> None:
    env = {
        "CHAT_GATEWAY_TLS_CERT_FILE": str(pki.server_cert),
        "CHAT_GATEWAY_HEALTHCHECK_CA_FILE": str(pki.ca),
        "CHAT_GATEWAY_HEALTHCHECK_CERT_FILE": str(pki.client_cert),
        "CHAT_GATEWAY_HEALTHCHECK_KEY_FILE": str(pki.client_key),
    }
    assert await probe(mtls_gateway, env) == "SERVING"


async def test_plaintext_probe_is_not_healthy(mtls_gateway: Gateway) -> None:
    assert await probe(mtls_gateway, {}) != "SERVING"


async def test_certless_probe_is_not_healthy(mtls_gateway: Gateway, pki: Pki) -> None:
    certless = {
        "CHAT_GATEWAY_TLS_CERT_FILE": str(pki.server_cert),
        "CHAT_GATEWAY_HEALTHCHECK_CA_FILE": str(pki.ca),
    }
    assert await probe(mtls_gateway, certless) != "SERVING"
