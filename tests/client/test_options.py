"""Channel options: the retry service config, keepalive, and TLS / mTLS against a real
TLS server with throwaway certificates."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from tradetrust.chat.client import (
    AsyncChatGatewayClient,
    ChatGatewayClient,
    ChatGatewayError,
    ClientOptions,
    KeepaliveConfig,
    RetryPolicy,
    TlsConfig,
)
from tradetrust.chat.v1 import chat_gateway_pb2 as pb

from tests.helpers.fake_gateway import FakeGateway, start_fake
from tests.helpers.pki import Pki, make_pki


def test_service_config_retries_unavailable_for_the_whole_service() -> None:
    options = dict(ClientOptions().channel_options())
    assert options["grpc.enable_retries"] == 1
    config = json.loads(str(options["grpc.service_config"]))
    (method_config,) = config["methodConfig"]
    assert method_config["name"] == [
        {"service": pb.DESCRIPTOR.services_by_name["ChatGateway"].full_name}
    ]
    policy = method_config["retryPolicy"]
    assert policy == {
        "maxAttempts": 5,
        "initialBackoff": "0.100s",
        "maxBackoff": "2.000s",
        "backoffMultiplier": 2.0,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }


def test_retries_can_be_disabled() -> None:
    options = dict(ClientOptions(retry=None).channel_options())
    assert options["grpc.enable_retries"] == 0
    assert "retryPolicy" not in str(options["grpc.service_config"])


def test_keepalive_options() -> None:
    keepalive = KeepaliveConfig(time_ms=60_000, timeout_ms=5_000, permit_without_calls=True)
    as_dict = dict(ClientOptions(keepalive=keepalive).channel_options())
    assert as_dict["grpc.keepalive_time_ms"] == 60_000
    assert as_dict["grpc.keepalive_timeout_ms"] == 5_000
    assert as_dict["grpc.keepalive_permit_without_calls"] == 1


def test_keepalive_can_be_disabled() -> None:
    assert "grpc.keepalive_time_ms" not in dict(ClientOptions(keepalive=None).channel_options())


def test_extra_channel_options_come_last() -> None:
    keepalive = KeepaliveConfig(time_ms=60_000, timeout_ms=5_000, permit_without_calls=True)
    options = ClientOptions(
        keepalive=keepalive, extra_channel_options=(("grpc.primary_user_agent", "orders/1"),)
    ).channel_options()
    assert options[-1] == ("grpc.primary_user_agent", "orders/1")


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetryPolicy(max_attempts=6),
        lambda: RetryPolicy(max_attempts=1),
        lambda: RetryPolicy(initial_backoff_s=0),
        lambda: ClientOptions(deadline_s=0),
        lambda: TlsConfig(certificate_chain=b"cert only"),
    ],
)
def test_bad_options_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_per_call_timeout_must_be_positive() -> None:
    with ChatGatewayClient("127.0.0.1:1", "k") as client, pytest.raises(ValueError):
        client.issue_token("u", timeout=0)


# --- TLS and mTLS ------------------------------------------------------------------------


GATEWAY_NAME = "gateway.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    # The server certificate names only GATEWAY_NAME, not 127.0.0.1: the name override
    # is needed to reach it.
    return make_pki(tmp_path_factory.mktemp("pki"), server_names=(GATEWAY_NAME,))


async def _tls_fake(pki: Pki, require_client_auth: bool) -> tuple[grpc.aio.Server, FakeGateway]:
    credentials = grpc.ssl_server_credentials(
        [(pki.read("server_key"), pki.read("server_cert"))],
        root_certificates=pki.read("ca") if require_client_auth else None,
        require_client_auth=require_client_auth,
    )
    return await start_fake(credentials)


@pytest.fixture
async def tls_fake(pki: Pki) -> AsyncIterator[FakeGateway]:
    server, fake = await _tls_fake(pki, require_client_auth=False)
    yield fake
    await server.stop(0)


@pytest.fixture
async def mtls_fake(pki: Pki) -> AsyncIterator[FakeGateway]:
    server, fake = await _tls_fake(pki, require_client_auth=True)
    yield fake
    await server.stop(0)


async def assert_handshake_refused(fake: FakeGateway, tls: TlsConfig) -> None:
    """A call over ``tls`` fails fast without ever reaching ``fake``."""
    options = ClientOptions(tls=tls, wait_for_ready=False, deadline_s=3)
    async with AsyncChatGatewayClient(fake.addr, "k", options=options) as client:
        with pytest.raises(ChatGatewayError) as caught:
            await client.issue_token("u")
    assert caught.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert fake.attempts["IssueToken"] == 0


async def test_tls_verifies_the_gateway(tls_fake: FakeGateway, pki: Pki) -> None:
    tls = TlsConfig(root_certificates=pki.read("ca"), server_name_override=GATEWAY_NAME)
    options = ClientOptions(tls=tls)
    async with AsyncChatGatewayClient(tls_fake.addr, "k", options=options) as client:
        assert (await client.issue_token("u")).user_id == "u"
    assert tls_fake.keys == ["Bearer k"]


async def test_tls_checks_the_gateway_name(tls_fake: FakeGateway, pki: Pki) -> None:
    # Same CA, but 127.0.0.1 is not a name in the certificate: refused without the override.
    await assert_handshake_refused(tls_fake, TlsConfig(root_certificates=pki.read("ca")))


async def test_tls_refuses_a_gateway_signed_by_another_ca(tls_fake: FakeGateway, pki: Pki) -> None:
    tls = TlsConfig(root_certificates=pki.read("other_ca"), server_name_override=GATEWAY_NAME)
    await assert_handshake_refused(tls_fake, tls)


def test_mtls_config_from_files_keeps_the_key_out_of_repr(pki: Pki) -> None:
    tls = TlsConfig.from_files(pki.ca, pki.client_cert, pki.client_key, GATEWAY_NAME)
    assert tls.mutual
    assert "PRIVATE KEY" not in repr(tls)  # key material never shows in logs


async def test_mtls_presents_the_client_certificate(mtls_fake: FakeGateway, pki: Pki) -> None:
    tls = TlsConfig.from_files(pki.ca, pki.client_cert, pki.client_key, GATEWAY_NAME)
    async with AsyncChatGatewayClient(mtls_fake.addr, "k", options=ClientOptions(tls=tls)) as c:
        await c.ensure_order_channel("o-1", "b", "s")
    assert b"order-service" in mtls_fake.peer_identities


async def test_mtls_sync_client(mtls_fake: FakeGateway, pki: Pki) -> None:
    tls = TlsConfig.from_files(pki.ca, pki.client_cert, pki.client_key, GATEWAY_NAME)

    def sync_call() -> str:
        with ChatGatewayClient(mtls_fake.addr, "k", options=ClientOptions(tls=tls)) as client:
            return client.issue_token("u").user_id

    assert await asyncio.to_thread(sync_call) == "u"


async def test_mtls_server_refuses_a_client_without_certificate(
    mtls_fake: FakeGateway, pki: Pki
) -> None:
    tls = TlsConfig(root_certificates=pki.read("ca"), server_name_override=GATEWAY_NAME)
    await assert_handshake_refused(mtls_fake, tls)
