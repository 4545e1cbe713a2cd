"""Fixtures shared by the hardening tests: a throwaway PKI and a gateway requiring mTLS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.app import Gateway
from tests.conftest import SettingsFactory
from tests.hardening.pki import Pki, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    certs = tmp_path / "certs"
    certs.mkdir()
    return make_pki(certs)


@pytest.fixture
async def mtls_gateway(make_settings: SettingsFactory, pki: Pki) -> AsyncIterator[Gateway]:
    settings = make_settings(
        tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key),
        tls_client_ca_file=str(pki.ca),
    )
    gw = Gateway(settings)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop(grace_s=1.0)
