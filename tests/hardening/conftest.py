"""Fixtures shared by the hardening tests: a throwaway PKI and a gateway requiring mTLS."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import Gateway
from tests.helpers.gateways import GatewayFactory
from tests.helpers.pki import Pki, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    certs = tmp_path / "certs"
    certs.mkdir()
    return make_pki(certs)


@pytest.fixture
async def mtls_gateway(start_gateway: GatewayFactory, pki: Pki) -> Gateway:
    return await start_gateway(
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        tls_client_ca_file=str(pki.ca),
    )
