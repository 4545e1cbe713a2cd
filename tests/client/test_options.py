"""Channel options: the retry service config, keepalive, and TLS / mTLS against a real
TLS server with throwaway certificates."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
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

from tests.client.fakes import FakeGateway, start_fake


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


def test_keepalive_and_extra_options() -> None:
    keepalive = KeepaliveConfig(time_ms=60_000, timeout_ms=5_000, permit_without_calls=True)
    options = ClientOptions(
        keepalive=keepalive, extra_channel_options=(("grpc.primary_user_agent", "orders/1"),)
    ).channel_options()
    as_dict = dict(options)
    assert as_dict["grpc.keepalive_time_ms"] == 60_000
    assert as_dict["grpc.keepalive_timeout_ms"] == 5_000
    assert as_dict["grpc.keepalive_permit_without_calls"] == 1
    assert options[-1] == ("grpc.primary_user_agent", "orders/1")
    assert "grpc.keepalive_time_ms" not in dict(ClientOptions(keepalive=None).channel_options())


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


@dataclass
class Pki:
    ca: bytes
    server_cert: bytes
    server_key: bytes
    client_cert: bytes
    client_key: bytes
    other_ca: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer if issuer else (name, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca_key, server_key, client_key, other_key = _key(), _key(), _key(), _key()
    ca = _cert("test-ca", ca_key, None, ca=True)
    server = _cert(
        "gateway.test",
        server_key,
        (ca.subject, ca_key),
        sans=[x509.DNSName("gateway.test")],  # not 127.0.0.1: the name override is needed
    )
    client = _cert(
        "order-service", client_key, (ca.subject, ca_key), sans=[x509.DNSName("order-service")]
    )
    other_ca = _cert("other-ca", other_key, None, ca=True)
    return Pki(
        ca=_pem(ca),
        server_cert=_pem(server),
        server_key=_pem_key(server_key),
        client_cert=_pem(client),
        client_key=_pem_key(client_key),
        other_ca=_pem(other_ca),
    )


async def _tls_fake(pki: Pki, require_client_auth: bool) -> tuple[grpc.aio.Server, FakeGateway]:
    credentials = grpc.ssl_server_credentials(
        [(pki.server_key, pki.server_cert)],
        root_certificates=pki.ca if require_client_auth else None,
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


GATEWAY_NAME = "gateway.test"


async def test_tls_verifies_the_gateway(tls_fake: FakeGateway, pki: Pki) -> None:
    tls = TlsConfig(root_certificates=pki.ca, server_name_override=GATEWAY_NAME)
    options = ClientOptions(tls=tls)
    async with AsyncChatGatewayClient(tls_fake.addr, "k", options=options) as client:
        assert (await client.issue_token("u")).user_id == "u"
    assert tls_fake.keys == ["Bearer k"]


async def test_tls_checks_the_gateway_name(tls_fake: FakeGateway, pki: Pki) -> None:
    # Same CA, but 127.0.0.1 is not a name in the certificate: refused without the override.
    tls = TlsConfig(root_certificates=pki.ca)
    options = ClientOptions(tls=tls, wait_for_ready=False, deadline_s=3)
    async with AsyncChatGatewayClient(tls_fake.addr, "k", options=options) as client:
        with pytest.raises(ChatGatewayError) as caught:
            await client.issue_token("u")
    assert caught.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert tls_fake.attempts["IssueToken"] == 0


async def test_tls_refuses_a_gateway_signed_by_another_ca(tls_fake: FakeGateway, pki: Pki) -> None:
    options = ClientOptions(
        tls=TlsConfig(root_certificates=pki.other_ca, server_name_override=GATEWAY_NAME),
        wait_for_ready=False,
        deadline_s=3,
    )
    async with AsyncChatGatewayClient(tls_fake.addr, "k", options=options) as client:
        with pytest.raises(ChatGatewayError) as caught:
            await client.issue_token("u")
    assert caught.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert tls_fake.attempts["IssueToken"] == 0


async def test_mtls_presents_the_client_certificate(
    mtls_fake: FakeGateway, pki: Pki, tmp_path: Path
) -> None:
    for name, data in [("ca.pem", pki.ca), ("c.pem", pki.client_cert), ("c.key", pki.client_key)]:
        (tmp_path / name).write_bytes(data)
    tls = TlsConfig.from_files(
        tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "c.key", GATEWAY_NAME
    )
    assert tls.mutual
    assert "PRIVATE KEY" not in repr(tls)  # key material never shows in logs
    async with AsyncChatGatewayClient(mtls_fake.addr, "k", options=ClientOptions(tls=tls)) as c:
        await c.ensure_order_channel("o-1", "b", "s")
    assert b"order-service" in mtls_fake.peer_identities

    def sync_call() -> str:
        with ChatGatewayClient(mtls_fake.addr, "k", options=ClientOptions(tls=tls)) as client:
            return client.issue_token("u").user_id

    assert await asyncio.to_thread(sync_call) == "u"


async def test_mtls_server_refuses_a_client_without_certificate(
    mtls_fake: FakeGateway, pki: Pki
) -> None:
    options = ClientOptions(
        tls=TlsConfig(root_certificates=pki.ca, server_name_override=GATEWAY_NAME),
        wait_for_ready=False,
        deadline_s=3,
    )
    async with AsyncChatGatewayClient(mtls_fake.addr, "k", options=options) as client:
        with pytest.raises(ChatGatewayError) as caught:
            await client.issue_token("u")
    assert caught.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert mtls_fake.attempts["IssueToken"] == 0
