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
from tests.helpers.gateways import GatewayFactory
from tests.helpers.pki import Pki
from tests.helpers.rpc import WEB_BACKEND


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


def _credentials(pki: Pki, ca: str = "ca", client: str | None = None) -> grpc.ChannelCredentials:
    """Trust the ``ca`` file; present the ``client`` certificate (``client`` or
    ``other_client``) if given."""
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=pki.read(ca))
    return grpc.ssl_channel_credentials(
        root_certificates=pki.read(ca),
        private_key=pki.read(f"{client}_key"),
        certificate_chain=pki.read(f"{client}_cert"),
    )


async def test_mtls_client_with_a_certificate_from_the_ca_is_served(
    mtls_gateway: Gateway, pki: Pki
) -> None:
    creds = _credentials(pki, client="client")
    async with grpc.aio.secure_channel(f"localhost:{mtls_gateway.grpc_port}", creds) as ch:
        response = await _issue(ch)
    assert response.user_id == "buyer-1" and response.token


async def test_mtls_client_without_a_certificate_is_refused(
    mtls_gateway: Gateway, pki: Pki
) -> None:
    creds = _credentials(pki)
    async with grpc.aio.secure_channel(f"127.0.0.1:{mtls_gateway.grpc_port}", creds) as ch:
        await _refused(ch)


async def test_mtls_client_with_a_certificate_from_another_ca_is_refused(
    mtls_gateway: Gateway, pki: Pki
) -> None:
    creds = _credentials(pki, client="other_client")
    async with grpc.aio.secure_channel(f"127.0.0.1:{mtls_gateway.grpc_port}", creds) as ch:
        await _refused(ch)


async def test_mtls_plaintext_client_is_refused(mtls_gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mtls_gateway.grpc_port}") as ch:
        await _refused(ch)


async def test_client_that_does_not_trust_the_server_ca_gives_up(
    mtls_gateway: Gateway, pki: Pki
) -> None:
    creds = _credentials(pki, ca="other_ca", client="client")
    async with grpc.aio.secure_channel(f"127.0.0.1:{mtls_gateway.grpc_port}", creds) as ch:
        await _refused(ch)


@pytest.fixture
async def tls_gateway(start_gateway: GatewayFactory, pki: Pki) -> Gateway:
    """TLS on the gRPC port, no client CA."""
    return await start_gateway(tls_cert_file=str(pki.server_cert), tls_key_file=str(pki.server_key))


async def test_tls_without_client_ca_serves_clients_without_certificates(
    tls_gateway: Gateway, pki: Pki
) -> None:
    creds = _credentials(pki)
    async with grpc.aio.secure_channel(f"localhost:{tls_gateway.grpc_port}", creds) as ch:
        assert (await _issue(ch)).token


async def test_tls_without_client_ca_refuses_plaintext(tls_gateway: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tls_gateway.grpc_port}") as ch:
        await _refused(ch)


@pytest.fixture
async def https_gateway(start_gateway: GatewayFactory, pki: Pki) -> Gateway:
    """TLS on the HTTP bridge."""
    return await start_gateway(
        http_tls_cert_file=str(pki.server_cert), http_tls_key_file=str(pki.server_key)
    )


async def test_http_bridge_over_tls(https_gateway: Gateway, pki: Pki) -> None:
    trusting = ssl.create_default_context(cafile=str(pki.ca))
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"https://localhost:{https_gateway.http_port}/healthz", ssl=trusting) as response,
    ):
        assert response.status == 200


async def test_plain_http_to_the_tls_bridge_gets_no_answer(https_gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(
                f"http://127.0.0.1:{https_gateway.http_port}/healthz",
                timeout=aiohttp.ClientTimeout(total=5),
            ) as response:
                await response.read()


async def test_http_client_that_does_not_trust_the_bridge_ca_gives_up(
    https_gateway: Gateway, pki: Pki
) -> None:
    strange = ssl.create_default_context(cafile=str(pki.other_ca))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with http.get(
                f"https://localhost:{https_gateway.http_port}/healthz", ssl=strange
            ):
                pass
