"""Settings: dev profile, env and TOML sources, fail-fast validation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.config import (
    DEV_ORDER_SERVICE_KEY,
    DEV_STREAM_API_SECRET,
    ConfigError,
    declared,
    hash_key,
    load_settings,
    settings_table,
)

DIGEST = hashlib.sha256(b"order-key").hexdigest()
PROD = {
    "GETSTREAM_API_KEY": "prod-key",
    "GETSTREAM_API_SECRET": "prod-secret",
    "CHAT_GATEWAY_SERVICES": f"order-service:{DIGEST}:EnsureOrderChannel,AuthorizeParticipant",
}


def test_dev_profile_defaults() -> None:
    s = load_settings({}, dev=True)
    assert s.dev_profile and s.stream.backend == "local"
    assert s.stream.stream_api_secret == DEV_STREAM_API_SECRET
    assert s.edge.grpc_addr == "127.0.0.1:50051" and s.edge.http_addr == "127.0.0.1:8080"
    assert s.registry.database_url == "sqlite:///var/chat-gateway.db"
    names = {g.name: g for g in s.edge.services}
    assert (
        names["order-service"].key_sha256 == hashlib.sha256(DEV_ORDER_SERVICE_KEY.encode()).digest()
    )
    assert names["web-backend"].methods == {
        "IssueToken",
        "AuthorizeParticipant",
        "RevokeUserTokens",
    }
    assert names["order-service"].methods == {
        "EnsureOrderChannel",
        "AuthorizeParticipant",
        "GetOrderChannel",
        "CloseOrderChannel",
    }
    assert names["support-tool"].methods == {
        "GetOrderChannel",
        "OpenDispute",
        "CloseOrderChannel",
        "AuthorizeParticipant",
        "RevokeUserTokens",
    }
    assert names["support-tool"].key_sha256 == hashlib.sha256(b"dev-support-tool-key").digest()


def test_dev_profile_with_stream_credentials_uses_stream_backend() -> None:
    s = load_settings(
        {"GETSTREAM_API_KEY": "k", "GETSTREAM_API_SECRET": "s", "STREAM_CHAT_URL": "http://x"},
        dev=True,
    )
    assert s.stream.backend == "stream" and s.stream.stream_api_key == "k"
    assert s.stream.stream_base_url == "http://x"
    services = {g.name for g in s.edge.services}
    assert services == {"order-service", "web-backend", "support-tool"}  # dev keys kept


def test_production_gets_no_dev_value() -> None:
    s = load_settings(PROD)
    assert not s.dev_profile and s.stream.backend == "stream"
    assert s.bridge.session_secret is None
    assert [g.name for g in s.edge.services] == ["order-service"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "GETSTREAM_API_KEY"),
        ({**PROD, "CHAT_GATEWAY_SERVICES": ""}, "CHAT_GATEWAY_SERVICES"),
        ({**PROD, "CHAT_GATEWAY_SERVICES": "svc:abc:IssueToken"}, "key_sha256"),
        ({**PROD, "CHAT_GATEWAY_SERVICES": f"svc:{DIGEST}:DropTables"}, "methods"),
        ({**PROD, "CHAT_GATEWAY_BACKEND": "carrier-pigeon"}, "CHAT_GATEWAY_BACKEND"),
        ({**PROD, "CHAT_GATEWAY_DATABASE_URL": "mysql://x"}, "CHAT_GATEWAY_DATABASE_URL"),
        ({**PROD, "CHAT_GATEWAY_MAX_TOKEN_TTL": "10"}, "CHAT_GATEWAY_MAX_TOKEN_TTL"),
        ({**PROD, "CHAT_GATEWAY_MAX_TOKEN_TTL": "ten"}, "CHAT_GATEWAY_MAX_TOKEN_TTL"),
        ({**PROD, "CHAT_GATEWAY_GRPC_ADDR": "localhost"}, "CHAT_GATEWAY_GRPC_ADDR"),
    ],
)
def test_invalid_configuration_fails_fast(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_toml_file_then_env(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        'stream_api_key = "toml-key"\n'
        'stream_api_secret = "toml-secret"\n'
        'grpc_addr = "0.0.0.0:6000"\n'
        'cors_origins = ["https://app.tradetrust.example"]\n'
        "[services.order-service]\n"
        f'key_sha256 = "{DIGEST}"\n'
        'methods = ["EnsureOrderChannel"]\n'
    )
    s = load_settings(
        {"CHAT_GATEWAY_CONFIG": str(config), "CHAT_GATEWAY_GRPC_ADDR": "0.0.0.0:7000"}
    )
    assert s.stream.stream_api_key == "toml-key" and s.stream.backend == "stream"
    assert s.edge.grpc_addr == "0.0.0.0:7000"  # env wins
    assert s.bridge.cors_origins == ("https://app.tradetrust.example",)
    assert s.edge.services[0].methods == {"EnsureOrderChannel"}


def test_toml_unknown_key_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('grpc_adress = "typo"\n')
    with pytest.raises(ConfigError, match="grpc_adress"):
        load_settings({"CHAT_GATEWAY_CONFIG": str(config)}, dev=True)


def test_secrets_are_not_in_repr() -> None:
    s = load_settings(PROD)
    assert "prod-secret" not in repr(s)


def test_hash_key() -> None:
    assert hash_key("order-key") == DIGEST


def test_readme_settings_table_is_the_declared_one() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    begin = readme.index("<!-- settings-table:begin")
    body = readme[readme.index("\n", begin) + 1 : readme.index("<!-- settings-table:end -->")]
    assert body == settings_table(), (
        "README's settings table is stale: paste the output of `python -m gateway settings`"
    )


def test_every_declared_setting_is_read_from_its_variable() -> None:
    for _, f, spec, _ in declared():
        assert spec.env.isupper() and spec.doc, f.name
    names = [spec.env for _, _, spec, _ in declared()]
    assert len(names) == len(set(names))
