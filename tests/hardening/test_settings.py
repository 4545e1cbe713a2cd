"""The hardening settings: parsing, defaults and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings
from tests.helpers.pki import make_pki

PROD = {
    "GETSTREAM_API_KEY": "k",
    "GETSTREAM_API_SECRET": "s",
    "CHAT_GATEWAY_SERVICES": "svc:" + "ab" * 32 + ":IssueToken",
}


def test_defaults() -> None:
    s = load_settings(PROD)
    assert (s.observability.log_format, s.observability.access_log, s.edge.shutdown_grace_s) == (
        "json",
        True,
        15.0,
    )
    assert (
        s.edge.max_concurrent_rpcs,
        s.edge.max_message_bytes,
        s.observability.metrics_refresh_s,
    ) == (1000, 65536, 5.0)
    assert s.edge.tls_cert_file is None and s.edge.http_tls_cert_file is None
    assert s.edge.event_loop == "uvloop"
    assert load_settings({}, dev=True).observability.log_format == "text"


def test_environment_values(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    s = load_settings(
        {
            **PROD,
            "CHAT_GATEWAY_LOG_FORMAT": "text",
            "CHAT_GATEWAY_ACCESS_LOG": "off",
            "CHAT_GATEWAY_SHUTDOWN_GRACE": "2.5",
            "CHAT_GATEWAY_MAX_CONCURRENT_RPCS": "64",
            "CHAT_GATEWAY_MAX_MESSAGE_BYTES": "8192",
            "CHAT_GATEWAY_METRICS_REFRESH": "1",
            "CHAT_GATEWAY_TLS_CERT_FILE": str(pki.server_cert),
            "CHAT_GATEWAY_TLS_KEY_FILE": str(pki.server_key),
            "CHAT_GATEWAY_TLS_CLIENT_CA_FILE": str(pki.ca),
            "CHAT_GATEWAY_HTTP_TLS_CERT_FILE": str(pki.server_cert),
            "CHAT_GATEWAY_HTTP_TLS_KEY_FILE": str(pki.server_key),
            "CHAT_GATEWAY_EVENT_LOOP": "asyncio",
        }
    )
    assert (s.observability.log_format, s.observability.access_log, s.edge.shutdown_grace_s) == (
        "text",
        False,
        2.5,
    )
    assert s.edge.event_loop == "asyncio"
    assert (
        s.edge.max_concurrent_rpcs,
        s.edge.max_message_bytes,
        s.observability.metrics_refresh_s,
    ) == (64, 8192, 1.0)
    assert s.edge.tls_client_ca_file == str(pki.ca)
    assert (
        load_settings(
            {**PROD, "CHAT_GATEWAY_LOG_FORMAT": "json"}, dev=True
        ).observability.log_format
        == "json"
    )


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"CHAT_GATEWAY_LOG_FORMAT": "xml"}, "CHAT_GATEWAY_LOG_FORMAT"),
        ({"CHAT_GATEWAY_ACCESS_LOG": "maybe"}, "CHAT_GATEWAY_ACCESS_LOG"),
        ({"CHAT_GATEWAY_EVENT_LOOP": "trio"}, "CHAT_GATEWAY_EVENT_LOOP"),
        ({"CHAT_GATEWAY_SHUTDOWN_GRACE": "-1"}, "CHAT_GATEWAY_SHUTDOWN_GRACE"),
        ({"CHAT_GATEWAY_MAX_CONCURRENT_RPCS": "0"}, "CHAT_GATEWAY_MAX_CONCURRENT_RPCS"),
        ({"CHAT_GATEWAY_MAX_MESSAGE_BYTES": "10"}, "CHAT_GATEWAY_MAX_MESSAGE_BYTES"),
        ({"CHAT_GATEWAY_METRICS_REFRESH": "0"}, "CHAT_GATEWAY_METRICS_REFRESH"),
        ({"CHAT_GATEWAY_TLS_CERT_FILE": "{cert}"}, "CHAT_GATEWAY_TLS_KEY_FILE"),
        ({"CHAT_GATEWAY_HTTP_TLS_KEY_FILE": "{key}"}, "CHAT_GATEWAY_HTTP_TLS_CERT_FILE"),
        ({"CHAT_GATEWAY_TLS_CLIENT_CA_FILE": "{ca}"}, "CHAT_GATEWAY_TLS_CLIENT_CA_FILE"),
        (
            {
                "CHAT_GATEWAY_TLS_CERT_FILE": "/nonexistent.pem",
                "CHAT_GATEWAY_TLS_KEY_FILE": "{key}",
            },
            "cannot read /nonexistent.pem",
        ),
    ],
)
def test_invalid_values_name_the_setting(tmp_path: Path, env: dict[str, str], names: str) -> None:
    pki = make_pki(tmp_path)
    paths = {"cert": str(pki.server_cert), "key": str(pki.server_key), "ca": str(pki.ca)}
    filled = {k: v.format(**paths) for k, v in env.items()}
    with pytest.raises(ConfigError, match=names):
        load_settings({**PROD, **filled})
