"""One typed, frozen :class:`Settings` object, built once in ``main`` and passed down.

Sources, later ones winning: the dev profile (``serve --dev``), an optional TOML file
named by ``CHAT_GATEWAY_CONFIG``, then environment variables. See README "Configuration".
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

Backend = Literal["stream", "local"]
LogFormat = Literal["json", "text"]
EventLoop = Literal["uvloop", "asyncio"]

GATEWAY_METHODS = frozenset({"IssueToken", "EnsureOrderChannel", "AuthorizeParticipant"})
"""Short names of the ChatGateway RPCs a service can be granted."""

DEV_ORDER_SERVICE_KEY = "dev-order-service-key"
DEV_WEB_BACKEND_KEY = "dev-web-backend-key"
DEV_STREAM_API_KEY = "local-dev-key"
DEV_STREAM_API_SECRET = "local-dev-secret-not-for-production"
DEV_SESSION_SECRET = "dev-session-secret-not-for-production"


class ConfigError(ValueError):
    """The configuration is incomplete or invalid; the message says which setting."""


def hash_key(key: str) -> str:
    """The SHA-256 (hex) of a service key, the only form the configuration stores."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ServiceGrant:
    """A calling service: the SHA-256 of its key and the RPCs it may call.

    Attributes:
        name: the service's name, used in logs and metrics (never its key).
        key_sha256: SHA-256 digest of its bearer key (32 bytes).
        methods: short RPC names it is granted, e.g. ``{"IssueToken"}``.
    """

    name: str
    key_sha256: bytes
    methods: frozenset[str]


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway is configured with. Field docs name the env variable."""

    stream_api_key: str
    """``GETSTREAM_API_KEY``: Stream app key; returned to browsers with their tokens."""
    stream_api_secret: str = field(repr=False)
    """``GETSTREAM_API_SECRET``: signs user tokens and server calls. Never logged."""
    backend: Backend = "local"
    """``CHAT_GATEWAY_BACKEND``: ``stream`` or ``local``."""
    stream_base_url: str | None = None
    """``STREAM_CHAT_URL``: Stream API base URL; ``None`` means the SDK's default."""
    stream_timeout_s: float = 6.0
    """``CHAT_GATEWAY_STREAM_TIMEOUT``: seconds for one Stream HTTP call."""
    stream_system_user_id: str = "tradetrust-system"
    """``CHAT_GATEWAY_STREAM_SYSTEM_USER``: Stream user that creates order channels."""
    channel_type: str = "messaging"
    """``CHAT_GATEWAY_CHANNEL_TYPE``: Stream channel type of order channels."""
    database_url: str = "sqlite:///var/chat-gateway.db"
    """``CHAT_GATEWAY_DATABASE_URL``: ``sqlite:///path`` or ``postgresql://…``."""
    database_pool_size: int = 10
    """``CHAT_GATEWAY_DATABASE_POOL_SIZE``: most PostgreSQL connections per process."""
    database_timeout_s: float = 2.0
    """``CHAT_GATEWAY_DATABASE_TIMEOUT``: seconds one PostgreSQL registry call may take,
    waiting for a pooled connection included; past it the call fails with UNAVAILABLE."""
    grpc_addr: str = "127.0.0.1:50051"
    """``CHAT_GATEWAY_GRPC_ADDR``: gRPC listen address."""
    http_addr: str = "127.0.0.1:8080"
    """``CHAT_GATEWAY_HTTP_ADDR``: HTTP bridge listen address."""
    services: tuple[ServiceGrant, ...] = ()
    """``CHAT_GATEWAY_SERVICES``: ``name:sha256hex:Method,Method;…`` (or TOML tables)."""
    session_secret: str | None = field(default=None, repr=False)
    """``CHAT_GATEWAY_SESSION_SECRET``: HS256 secret of browser session JWTs."""
    session_public_key_file: str | None = None
    """``CHAT_GATEWAY_SESSION_PUBLIC_KEY_FILE``: PEM public key (RS256/ES256) of sessions."""
    session_cookie: str = "tt_session"
    """``CHAT_GATEWAY_SESSION_COOKIE``: cookie that may carry the session JWT."""
    session_issuer: str | None = None
    """``CHAT_GATEWAY_SESSION_ISSUER``: required ``iss`` of session JWTs, if set."""
    session_audience: str | None = None
    """``CHAT_GATEWAY_SESSION_AUDIENCE``: required ``aud`` of session JWTs, if set."""
    cors_origins: tuple[str, ...] = ()
    """``CHAT_GATEWAY_CORS_ORIGINS``: comma-separated browser origins allowed by CORS."""
    token_rate_limit_per_min: float = 30.0
    """``CHAT_GATEWAY_TOKEN_RATE_LIMIT``: HTTP bridge token requests per user per minute."""
    token_rate_limit_burst: int = 10
    """``CHAT_GATEWAY_TOKEN_RATE_BURST``: token requests a user may make at once (bucket size)."""
    default_token_ttl_s: int = 86_400
    """``CHAT_GATEWAY_DEFAULT_TOKEN_TTL``: seconds a token lives when no ttl is asked."""
    max_token_ttl_s: int = 86_400
    """``CHAT_GATEWAY_MAX_TOKEN_TTL``: longest token lifetime a caller may ask for."""
    inline_sync_budget_s: float = 2.0
    """``CHAT_GATEWAY_INLINE_SYNC_BUDGET``: seconds EnsureOrderChannel waits for Stream."""
    sync_poll_interval_s: float = 1.0
    """``CHAT_GATEWAY_SYNC_POLL_INTERVAL``: seconds the idle sync worker waits between polls."""
    sync_lease_s: float = 30.0
    """``CHAT_GATEWAY_SYNC_LEASE``: seconds a worker's claim on a pending order lasts; a
    crashed gateway's claims are taken over after this."""
    sync_backoff_cap_s: float = 300.0
    """``CHAT_GATEWAY_SYNC_BACKOFF_CAP``: longest delay between sync retries of one order."""
    registry_cache_entries: int = 50_000
    """``CHAT_GATEWAY_REGISTRY_CACHE_ENTRIES``: synced orders kept in memory (0: none)."""
    log_level: str = "INFO"
    """``CHAT_GATEWAY_LOG_LEVEL``: ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``."""
    log_format: LogFormat = "json"
    """``CHAT_GATEWAY_LOG_FORMAT``: ``json`` (one object per line) or ``text``; the dev
    profile defaults to ``text``."""
    access_log: bool = True
    """``CHAT_GATEWAY_ACCESS_LOG``: one INFO line per RPC and HTTP request (``true``/``false``)."""
    event_loop: EventLoop = "uvloop"
    """``CHAT_GATEWAY_EVENT_LOOP``: ``uvloop`` (faster; the default) or the standard
    library's ``asyncio`` loop (for debugging)."""
    reuse_port: bool = False
    """``CHAT_GATEWAY_REUSE_PORT``: bind with SO_REUSEPORT so several processes share the
    ports; set by ``serve --workers N`` for its workers."""
    tls_cert_file: str | None = None
    """``CHAT_GATEWAY_TLS_CERT_FILE``: PEM certificate chain of the gRPC server (TLS on)."""
    tls_key_file: str | None = None
    """``CHAT_GATEWAY_TLS_KEY_FILE``: PEM private key of that certificate."""
    tls_client_ca_file: str | None = None
    """``CHAT_GATEWAY_TLS_CLIENT_CA_FILE``: PEM CA bundle; when set, gRPC clients must present
    a certificate it signed (mTLS)."""
    http_tls_cert_file: str | None = None
    """``CHAT_GATEWAY_HTTP_TLS_CERT_FILE``: PEM certificate chain of the HTTP bridge (HTTPS)."""
    http_tls_key_file: str | None = None
    """``CHAT_GATEWAY_HTTP_TLS_KEY_FILE``: PEM private key of that certificate."""
    shutdown_grace_s: float = 15.0
    """``CHAT_GATEWAY_SHUTDOWN_GRACE``: seconds in-flight RPCs and requests get to finish
    after SIGTERM/SIGINT."""
    max_concurrent_rpcs: int = 1000
    """``CHAT_GATEWAY_MAX_CONCURRENT_RPCS``: ChatGateway RPCs handled at once; more are
    refused with RESOURCE_EXHAUSTED (health and reflection are exempt)."""
    max_message_bytes: int = 64 * 1024
    """``CHAT_GATEWAY_MAX_MESSAGE_BYTES``: largest gRPC request or response message."""
    metrics_refresh_s: float = 5.0
    """``CHAT_GATEWAY_METRICS_REFRESH``: seconds between refreshes of the sync-backlog gauges."""
    dev_profile: bool = False
    """True when built by ``serve --dev``: dev keys and secrets are in use."""

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return _validated(replace(self, **changes))


def dev_services() -> tuple[ServiceGrant, ...]:
    """The dev profile's two services and their documented keys."""
    return (
        ServiceGrant(
            "order-service",
            hashlib.sha256(DEV_ORDER_SERVICE_KEY.encode()).digest(),
            frozenset({"EnsureOrderChannel", "AuthorizeParticipant"}),
        ),
        ServiceGrant(
            "web-backend",
            hashlib.sha256(DEV_WEB_BACKEND_KEY.encode()).digest(),
            frozenset({"IssueToken", "AuthorizeParticipant"}),
        ),
    )


def load_settings(environ: Mapping[str, str] | None = None, *, dev: bool = False) -> Settings:
    """Build the settings from the dev profile (if ``dev``), the TOML file and the env.

    Raises:
        ConfigError: a value is missing or invalid; the message names the setting.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if dev:
        values.update(
            stream_api_key=DEV_STREAM_API_KEY,
            stream_api_secret=DEV_STREAM_API_SECRET,
            services=dev_services(),
            session_secret=DEV_SESSION_SECRET,
            log_format="text",
            dev_profile=True,
        )
    config_file = env.get("CHAT_GATEWAY_CONFIG")
    if config_file:
        values.update(_from_toml(config_file))
    values.update(_from_env(env))
    if "backend" not in values:
        has_stream_key = bool(env.get("GETSTREAM_API_KEY")) or (
            not dev and bool(values.get("stream_api_key"))
        )
        values["backend"] = "stream" if has_stream_key else "local"
    if "stream_api_key" not in values or "stream_api_secret" not in values:
        raise ConfigError(
            "GETSTREAM_API_KEY and GETSTREAM_API_SECRET are required (they sign user tokens); "
            "for local development run `make run` (serve --dev)"
        )
    try:
        settings = Settings(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc
    return _validated(settings)


_ENV_STRINGS = {
    "GETSTREAM_API_KEY": "stream_api_key",
    "GETSTREAM_API_SECRET": "stream_api_secret",
    "STREAM_CHAT_URL": "stream_base_url",
    "CHAT_GATEWAY_BACKEND": "backend",
    "CHAT_GATEWAY_STREAM_SYSTEM_USER": "stream_system_user_id",
    "CHAT_GATEWAY_CHANNEL_TYPE": "channel_type",
    "CHAT_GATEWAY_DATABASE_URL": "database_url",
    "CHAT_GATEWAY_GRPC_ADDR": "grpc_addr",
    "CHAT_GATEWAY_HTTP_ADDR": "http_addr",
    "CHAT_GATEWAY_SESSION_SECRET": "session_secret",
    "CHAT_GATEWAY_SESSION_PUBLIC_KEY_FILE": "session_public_key_file",
    "CHAT_GATEWAY_SESSION_COOKIE": "session_cookie",
    "CHAT_GATEWAY_SESSION_ISSUER": "session_issuer",
    "CHAT_GATEWAY_SESSION_AUDIENCE": "session_audience",
    "CHAT_GATEWAY_LOG_LEVEL": "log_level",
    "CHAT_GATEWAY_LOG_FORMAT": "log_format",
    "CHAT_GATEWAY_EVENT_LOOP": "event_loop",
    "CHAT_GATEWAY_TLS_CERT_FILE": "tls_cert_file",
    "CHAT_GATEWAY_TLS_KEY_FILE": "tls_key_file",
    "CHAT_GATEWAY_TLS_CLIENT_CA_FILE": "tls_client_ca_file",
    "CHAT_GATEWAY_HTTP_TLS_CERT_FILE": "http_tls_cert_file",
    "CHAT_GATEWAY_HTTP_TLS_KEY_FILE": "http_tls_key_file",
}
_ENV_INTS = {
    "CHAT_GATEWAY_REGISTRY_CACHE_ENTRIES": "registry_cache_entries",
    "CHAT_GATEWAY_DEFAULT_TOKEN_TTL": "default_token_ttl_s",
    "CHAT_GATEWAY_MAX_TOKEN_TTL": "max_token_ttl_s",
    "CHAT_GATEWAY_TOKEN_RATE_BURST": "token_rate_limit_burst",
    "CHAT_GATEWAY_DATABASE_POOL_SIZE": "database_pool_size",
    "CHAT_GATEWAY_MAX_CONCURRENT_RPCS": "max_concurrent_rpcs",
    "CHAT_GATEWAY_MAX_MESSAGE_BYTES": "max_message_bytes",
}
_ENV_FLOATS = {
    "CHAT_GATEWAY_STREAM_TIMEOUT": "stream_timeout_s",
    "CHAT_GATEWAY_INLINE_SYNC_BUDGET": "inline_sync_budget_s",
    "CHAT_GATEWAY_SYNC_POLL_INTERVAL": "sync_poll_interval_s",
    "CHAT_GATEWAY_SYNC_LEASE": "sync_lease_s",
    "CHAT_GATEWAY_SYNC_BACKOFF_CAP": "sync_backoff_cap_s",
    "CHAT_GATEWAY_TOKEN_RATE_LIMIT": "token_rate_limit_per_min",
    "CHAT_GATEWAY_DATABASE_TIMEOUT": "database_timeout_s",
    "CHAT_GATEWAY_SHUTDOWN_GRACE": "shutdown_grace_s",
    "CHAT_GATEWAY_METRICS_REFRESH": "metrics_refresh_s",
}
_ENV_BOOLS = {
    "CHAT_GATEWAY_ACCESS_LOG": "access_log",
    "CHAT_GATEWAY_REUSE_PORT": "reuse_port",
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, key in _ENV_STRINGS.items():
        if env.get(name):
            out[key] = env[name]
    for name, key in _ENV_INTS.items():
        if env.get(name):
            out[key] = _number(name, env[name], int)
    for name, key in _ENV_FLOATS.items():
        if env.get(name):
            out[key] = _number(name, env[name], float)
    for name, key in _ENV_BOOLS.items():
        if env.get(name):
            out[key] = _boolean(name, env[name])
    if env.get("CHAT_GATEWAY_CORS_ORIGINS"):
        out["cors_origins"] = _split_origins(env["CHAT_GATEWAY_CORS_ORIGINS"])
    if env.get("CHAT_GATEWAY_SERVICES"):
        out["services"] = _parse_services_env(env["CHAT_GATEWAY_SERVICES"])
    return out


def _from_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"CHAT_GATEWAY_CONFIG: cannot read {path}: {exc}") from exc
    out: dict[str, Any] = {}
    known = set(Settings.__dataclass_fields__) - {"services", "dev_profile"}
    for key, value in data.items():
        if key == "services":
            out["services"] = _parse_services_toml(value)
        elif key == "cors_origins":
            out[key] = tuple(value) if isinstance(value, list) else _split_origins(str(value))
        elif key in known:
            out[key] = value
        else:
            raise ConfigError(f"{path}: unknown setting {key!r}")
    return out


def _number(name: str, raw: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {raw!r} is not a number") from exc


def _boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}: {raw!r} is not true or false")


def _split_origins(raw: str) -> tuple[str, ...]:
    return tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())


def _grant(name: str, digest_hex: str, methods: list[str] | tuple[str, ...]) -> ServiceGrant:
    try:
        digest = bytes.fromhex(digest_hex)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise ConfigError(f"service {name!r}: key_sha256 must be 64 hex digits (a SHA-256)")
    unknown = set(methods) - GATEWAY_METHODS
    if unknown or not methods:
        raise ConfigError(
            f"service {name!r}: methods must be some of {sorted(GATEWAY_METHODS)}, "
            f"got {sorted(methods)}"
        )
    return ServiceGrant(name, digest, frozenset(methods))


def _parse_services_env(raw: str) -> tuple[ServiceGrant, ...]:
    grants = []
    for entry in filter(None, (e.strip() for e in raw.split(";"))):
        parts = entry.split(":")
        if len(parts) != 3:
            raise ConfigError("CHAT_GATEWAY_SERVICES: each entry is name:sha256hex:Method,Method")
        name, digest, methods = parts
        grants.append(_grant(name.strip(), digest.strip(), [m.strip() for m in methods.split(",")]))
    return tuple(grants)


def _parse_services_toml(raw: Any) -> tuple[ServiceGrant, ...]:
    if not isinstance(raw, dict):
        raise ConfigError("services: expected tables [services.<name>]")
    return tuple(
        _grant(name, str(spec.get("key_sha256", "")), list(spec.get("methods", [])))
        for name, spec in raw.items()
    )


def _validated(s: Settings) -> Settings:
    _require_choice("CHAT_GATEWAY_BACKEND", s.backend, Backend)
    if not s.stream_api_key or not s.stream_api_secret:
        raise ConfigError("GETSTREAM_API_KEY and GETSTREAM_API_SECRET must not be empty")
    if not (
        s.database_url.startswith("sqlite:///")
        or s.database_url.startswith(("postgresql://", "postgres://"))
    ):
        raise ConfigError("CHAT_GATEWAY_DATABASE_URL: use sqlite:///path or postgresql://…")
    if s.database_pool_size < 1:
        raise ConfigError("CHAT_GATEWAY_DATABASE_POOL_SIZE: must be at least 1")
    if not 0 < s.database_timeout_s <= 60:
        raise ConfigError("CHAT_GATEWAY_DATABASE_TIMEOUT: must be > 0 and <= 60 seconds")
    if not 60 <= s.max_token_ttl_s <= 30 * 86_400:
        raise ConfigError("CHAT_GATEWAY_MAX_TOKEN_TTL: must be between 60 and 2592000 seconds")
    if not 60 <= s.default_token_ttl_s <= s.max_token_ttl_s:
        raise ConfigError(
            "CHAT_GATEWAY_DEFAULT_TOKEN_TTL: must be between 60 and CHAT_GATEWAY_MAX_TOKEN_TTL"
        )
    if s.registry_cache_entries < 0:
        raise ConfigError("CHAT_GATEWAY_REGISTRY_CACHE_ENTRIES: must be >= 0")
    if s.stream_timeout_s <= 0 or s.inline_sync_budget_s < 0:
        raise ConfigError("stream timeout must be > 0 and inline sync budget >= 0 seconds")
    if min(s.sync_poll_interval_s, s.sync_lease_s, s.sync_backoff_cap_s) <= 0:
        raise ConfigError(
            "CHAT_GATEWAY_SYNC_POLL_INTERVAL, CHAT_GATEWAY_SYNC_LEASE and "
            "CHAT_GATEWAY_SYNC_BACKOFF_CAP must be > 0 seconds"
        )
    if s.token_rate_limit_per_min <= 0 or s.token_rate_limit_burst < 1:
        raise ConfigError(
            "CHAT_GATEWAY_TOKEN_RATE_LIMIT must be > 0 and CHAT_GATEWAY_TOKEN_RATE_BURST >= 1"
        )
    _validate_hardening(s)
    names = [g.name for g in s.services]
    if len(set(names)) != len(names):
        raise ConfigError("CHAT_GATEWAY_SERVICES: service names must be unique")
    if not s.services:
        raise ConfigError(
            "CHAT_GATEWAY_SERVICES: configure at least one calling service "
            "(name:sha256hex:Methods); `python -m gateway hash-key` prints a key's hash"
        )
    for addr_name, addr in (
        ("CHAT_GATEWAY_GRPC_ADDR", s.grpc_addr),
        ("CHAT_GATEWAY_HTTP_ADDR", s.http_addr),
    ):
        host, sep, port = addr.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ConfigError(f"{addr_name}: expected host:port, got {addr!r}")
    return s


def _require_choice(setting: str, value: object, choices: Any) -> None:
    """``value`` must be one of the ``Literal`` type ``choices``' values."""
    allowed = get_args(choices)
    if value not in allowed:
        options = ", ".join(map(repr, allowed[:-1])) + f" or {allowed[-1]!r}"
        raise ConfigError(f"{setting}: must be {options}, not {value!r}")


def _validate_hardening(s: Settings) -> None:
    """TLS files, shutdown grace, overload limits and log settings."""
    _require_choice("CHAT_GATEWAY_LOG_FORMAT", s.log_format, LogFormat)
    _require_choice("CHAT_GATEWAY_EVENT_LOOP", s.event_loop, EventLoop)
    if not isinstance(s.access_log, bool):
        raise ConfigError("CHAT_GATEWAY_ACCESS_LOG: must be true or false")
    if not 0 <= s.shutdown_grace_s <= 3600:
        raise ConfigError("CHAT_GATEWAY_SHUTDOWN_GRACE: must be between 0 and 3600 seconds")
    if s.max_concurrent_rpcs < 1:
        raise ConfigError("CHAT_GATEWAY_MAX_CONCURRENT_RPCS: must be at least 1")
    if not 1024 <= s.max_message_bytes <= 16 * 1024 * 1024:
        raise ConfigError("CHAT_GATEWAY_MAX_MESSAGE_BYTES: must be between 1024 and 16777216")
    if not 0 < s.metrics_refresh_s <= 3600:
        raise ConfigError("CHAT_GATEWAY_METRICS_REFRESH: must be > 0 and <= 3600 seconds")
    for prefix, cert, key in (
        ("CHAT_GATEWAY_TLS", s.tls_cert_file, s.tls_key_file),
        ("CHAT_GATEWAY_HTTP_TLS", s.http_tls_cert_file, s.http_tls_key_file),
    ):
        if bool(cert) != bool(key):
            raise ConfigError(f"{prefix}_CERT_FILE and {prefix}_KEY_FILE must be set together")
    if s.tls_client_ca_file and not s.tls_cert_file:
        raise ConfigError(
            "CHAT_GATEWAY_TLS_CLIENT_CA_FILE needs CHAT_GATEWAY_TLS_CERT_FILE and _KEY_FILE (mTLS "
            "is TLS with client certificates)"
        )
    for name, path in (
        ("CHAT_GATEWAY_TLS_CERT_FILE", s.tls_cert_file),
        ("CHAT_GATEWAY_TLS_KEY_FILE", s.tls_key_file),
        ("CHAT_GATEWAY_TLS_CLIENT_CA_FILE", s.tls_client_ca_file),
        ("CHAT_GATEWAY_HTTP_TLS_CERT_FILE", s.http_tls_cert_file),
        ("CHAT_GATEWAY_HTTP_TLS_KEY_FILE", s.http_tls_key_file),
    ):
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"{name}: cannot read {path}")
