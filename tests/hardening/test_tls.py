"""TLS on the gRPC port (optionally mTLS) and on the HTTP bridge, with generated certs."""

from __future__ import annotations

import ssl

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tradetrust.chat.v1 import chat_gateway_pb2 as pb
from tradetrust.chat.v1 import chat_gateway_pb2_grpc as pb_grpc

from gateway.app import Gateway
from tests.conftest import WEB_BACKEND, SettingsFactory
from tests.hardening.pki import Pki


async def _issue(channel: grpc.aio.Channel) -> pb.IssueTokenResponse:
    stub = pb_grpc.ChatGatewayStub(channel)
    response: pb.IssueTokenResponse = await stub.IssueToken(
        pb.IssueTokenRequest(user_id="buyer-1"), metadata=WEB_BACKEND, timeout=5
    )
    return response


async def _refused(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_mtls_client_with_a_certificate_from_the_ca_is_served(
    mtls_gateway: Gateway, pki: Pki
) -> None:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.read("ca"),
        private_key=pki.read("client_key"),
        certificate_chain=pki.read("client_cert"),
    )
    async with grpc.aio.secure_channel(f"localhost:{mtls_gateway.grpc_port}", creds) as ch:
        response = await _issue(ch)
    assert response.user_id == "buyer-1" and response.token


async def test_mtls_client_without_a_certificate_is_refused(
    mtls_gateway: Gateway, pki: Pki
) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=pki.read("ca"))
    async with grpc.aio.secure_channel(f"127.0.0.1:{mtls_gateway.grpc_port}", creds) as ch:
        await _refused(ch)


async def test_mtls_client_with_a_certificate_from_another_ca_is_refused(
    mtls_gateway: Gateway, pki: Pki
) -> None:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.read("ca"),
        private_key=pki.read("other_client_key"),
        certificate_chain=pki.read("other_client_cert"),
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{mtls_gateway.grpc_port}", creds) as ch:
        await _refused(ch)


async def test_mtls_plaintext_client_is_refused(mtls_gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mtls_gateway.grpc_port}") as ch:
        await _refused(ch)


async def test_client_that_does_not_trust_the_server_ca_gives_up(
    mtls_gateway: Gateway, pki: Pki
) -> None:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki.read("other_ca"),
        private_key=pki.read("client_key"),
        certificate_chain=pki.read("client_cert"),
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{mtls_gateway.grpc_port}", creds) as ch:
        await _refused(ch)


async def test_tls_without_client_ca_serves_clients_without_certificates(
    make_settings: SettingsFactory, pki: Pki
) -> None:
    gw = Gateway(
        make_settings(tls_cert_file=str(pki.server_cert), tls_key_file=str(pki.server_key))
    )
    await gw.start()
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=pki.read("ca"))
        async with grpc.aio.secure_channel(f"localhost:{gw.grpc_port}", creds) as ch:
            assert (await _issue(ch)).token
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            await _refused(ch)
    finally:
        await gw.stop(grace_s=1.0)


async def test_http_bridge_over_tls(make_settings: SettingsFactory, pki: Pki) -> None:
    gw = Gateway(
        make_settings(
            http_tls_cert_file=str(pki.server_cert), http_tls_key_file=str(pki.server_key)
        )
    )
    await gw.start()
    try:
        trusting = ssl.create_default_context(cafile=str(pki.ca))
        async with aiohttp.ClientSession() as http:
            async with http.get(
                f"https://localhost:{gw.http_port}/healthz", ssl=trusting
            ) as response:
                assert response.status == 200
            with pytest.raises(aiohttp.ClientError):
                # Plain HTTP to a TLS port gets no HTTP answer.
                async with http.get(
                    f"http://127.0.0.1:{gw.http_port}/healthz",
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as response:
                    await response.read()
            strange = ssl.create_default_context(cafile=str(pki.other_ca))
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with http.get(f"https://localhost:{gw.http_port}/healthz", ssl=strange):
                    pass
    finally:
        await gw.stop(grace_s=1.0)
