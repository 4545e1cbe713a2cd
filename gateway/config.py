"""One typed, frozen :class:`Settings` object, built once in ``main`` and passed down.

Every setting is declared once, as a field of one section dataclass, with
:func:`setting`: its environment variable, one-line doc, default, dev-profile value and
bounds. The loader, the validation messages and the README's settings table
(``python -m gateway settings``) are all derived from those declarations, so a new setting
is one line here (plus, if it needs one, a cross-field rule in its section's ``check``).

Sources, later ones winning: the defaults, the dev profile (``serve --dev``), an optional
TOML file named by ``CHAT_GATEWAY_CONFIG`` (keys are the field names, e.g.
``database_url``; services as ``[services.<name>]`` tables), then environment variables.
Each adapter is handed only its section (``settings.registry``, ``settings.stream``, ...).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Backend = Literal["stream", "local"]
LogFormat = Literal["json", "text"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
EventLoop = Literal["uvloop", "asyncio"]

GATEWAY_METHODS = frozenset(
    {
        "IssueToken",
        "EnsureOrderChannel",
        "AuthorizeParticipant",
        "GetOrderChannel",
        "CloseOrderChannel",
        "OpenDispute",
        "RevokeUserTokens",
    }
)
"""Short names of the ChatGateway RPCs a service can be granted."""

DEV_ORDER_SERVICE_KEY = "dev-order-service-key"
DEV_WEB_BACKEND_KEY = "dev-web-backend-key"
DEV_SUPPORT_TOOL_KEY = "dev-support-tool-key"
DEV_STREAM_API_KEY = "local-dev-key"
DEV_STREAM_API_SECRET = "local-dev-secret-not-for-production"
DEV_SESSION_SECRET = "dev-session-secret-not-for-production"


class ConfigError(ValueError):
    """The configuration is incomplete or invalid; the message names the setting."""


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


# -- the declaration helper ---------------------------------------------------------------

_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class Spec:
    """How one setting is read, checked and documented (a field's ``metadata["setting"]``)."""

    env: str
    doc: str
    dev: Any = _UNSET
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    """Exclusive lower bound (``> above``)."""
    parse: Callable[[str, Any], Any] | None = None
    """``parse(env_name, raw)`` for types the generic reader does not know."""
    shown_default: str | None = None
    """The default as the README shows it, when the value itself says too little."""


def setting(
    env: str,
    doc: str,
    default: Any = _UNSET,
    *,
    dev: Any = _UNSET,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    parse: Callable[[str, Any], Any] | None = None,
    secret: bool = False,
    shown_default: str | None = None,
) -> Any:
    """Declare a setting: a dataclass field carrying its :class:`Spec`.

    Args:
        env: its environment variable.
        doc: one line for the README table.
        default: the value when no source sets it (none: required).
        dev: the dev profile's value, if it differs from the default.
        minimum, maximum: inclusive numeric bounds; ``above``: exclusive lower bound.
        parse: reader for values of a type the generic reader does not know.
        secret: kept out of ``repr`` (and so out of logs).
        shown_default: how the README shows the default.
    """
    spec = Spec(env, doc, dev, minimum, maximum, above, parse, shown_default)
    kwargs: dict[str, Any] = {"repr": not secret, "metadata": {"setting": spec}}
    if default is not _UNSET:
        kwargs["default"] = default
    return field(**kwargs)


def _split_origins(name: str, raw: Any) -> tuple[str, ...]:
    if isinstance(raw, list | tuple):
        raw = ",".join(str(item) for item in raw)
    if not isinstance(raw, str):
        raise ConfigError(f"{name}: expected a comma-separated list of origins")
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


def _parse_services(name: str, raw: Any) -> tuple[ServiceGrant, ...]:
    """``name:sha256hex:Method,Method;…`` (environment) or ``[services.<name>]`` (TOML)."""
    if isinstance(raw, tuple):  # already parsed (dev profile, overrides)
        return raw
    if isinstance(raw, dict):
        return tuple(
            _grant(service, str(spec.get("key_sha256", "")), list(spec.get("methods", [])))
            for service, spec in raw.items()
            if isinstance(spec, dict)
        )
    if not isinstance(raw, str):
        raise ConfigError(f"{name}: expected name:sha256hex:Method,Method;… or TOML tables")
    grants = []
    for entry in filter(None, (e.strip() for e in raw.split(";"))):
        parts = entry.split(":")
        if len(parts) != 3:
            raise ConfigError(f"{name}: each entry is name:sha256hex:Method,Method")
        service, digest, methods = parts
        grants.append(
            _grant(service.strip(), digest.strip(), [m.strip() for m in methods.split(",")])
        )
    return tuple(grants)


def dev_services() -> tuple[ServiceGrant, ...]:
    """The dev profile's services and their documented keys."""
    return (
        ServiceGrant(
            "order-service",
            hashlib.sha256(DEV_ORDER_SERVICE_KEY.encode()).digest(),
            frozenset(
                {
                    "EnsureOrderChannel",
                    "AuthorizeParticipant",
                    "GetOrderChannel",
                    "CloseOrderChannel",
                }
            ),
        ),
        ServiceGrant(
            "web-backend",
            hashlib.sha256(DEV_WEB_BACKEND_KEY.encode()).digest(),
            frozenset({"IssueToken", "AuthorizeParticipant", "RevokeUserTokens"}),
        ),
        ServiceGrant(
            "support-tool",
            hashlib.sha256(DEV_SUPPORT_TOOL_KEY.encode()).digest(),
            frozenset(
                {
                    "GetOrderChannel",
                    "OpenDispute",
                    "CloseOrderChannel",
                    "AuthorizeParticipant",
                    "RevokeUserTokens",
                }
            ),
        ),
    )


def _addr(name: str, addr: str) -> None:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{name}: expected host:port, got {addr!r}")


def _readable(name: str, path: str | None) -> None:
    if path and not os.access(path, os.R_OK):
        raise ConfigError(f"{name}: cannot read {path}")


# -- the sections -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """GetStream.io: credentials, where to reach it, how order channels look there."""

    stream_api_key: str = setting(
        "GETSTREAM_API_KEY",
        "Stream app key; returned to browsers with their tokens",
        "",
        dev=DEV_STREAM_API_KEY,
        shown_default="required",
    )
    stream_api_secret: str = setting(
        "GETSTREAM_API_SECRET",
        "Stream app secret: signs user tokens and server calls",
        "",
        dev=DEV_STREAM_API_SECRET,
        secret=True,
        shown_default="required",
    )
    backend: Backend = setting(
        "CHAT_GATEWAY_BACKEND",
        "`stream` or `local` (in-memory stand-in, dev only)",
        "local",
        shown_default="`stream` when `GETSTREAM_API_KEY` is set, else `local`",
    )
    stream_base_url: str | None = setting(
        "STREAM_CHAT_URL",
        "Stream API base URL (the SDK's own variable)",
        None,
        shown_default="Stream's",
    )
    stream_timeout_s: float = setting(
        "CHAT_GATEWAY_STREAM_TIMEOUT", "seconds for one Stream call", 6.0, above=0, maximum=120
    )
    stream_system_user_id: str = setting(
        "CHAT_GATEWAY_STREAM_SYSTEM_USER",
        "Stream user that creates order channels",
        "tradetrust-system",
    )
    channel_type: str = setting(
        "CHAT_GATEWAY_CHANNEL_TYPE", "Stream channel type of order channels", "messaging"
    )

    def check(self) -> None:
        if not self.stream_api_key or not self.stream_api_secret:
            raise ConfigError(
                "GETSTREAM_API_KEY and GETSTREAM_API_SECRET are required (they sign user "
                "tokens); for local development run `make run` (serve --dev)"
            )


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """Lifetimes of the Stream user tokens the gateway signs."""

    default_token_ttl_s: int = setting(
        "CHAT_GATEWAY_DEFAULT_TOKEN_TTL",
        "token lifetime when none is asked for, seconds",
        86_400,
        minimum=60,
        maximum=30 * 86_400,
    )
    max_token_ttl_s: int = setting(
        "CHAT_GATEWAY_MAX_TOKEN_TTL",
        "longest token lifetime a caller may ask for, seconds",
        86_400,
        minimum=60,
        maximum=30 * 86_400,
    )

    token_iat_skew_s: int = setting(
        "CHAT_GATEWAY_TOKEN_IAT_SKEW",
        "seconds a token's `iat` lies in the past (Stream refuses tokens issued ahead of "
        "its clock)",
        5,
        minimum=0,
        maximum=300,
    )

    def check(self) -> None:
        if self.default_token_ttl_s > self.max_token_ttl_s:
            raise ConfigError(
                "CHAT_GATEWAY_DEFAULT_TOKEN_TTL: must be between 60 and CHAT_GATEWAY_MAX_TOKEN_TTL"
            )


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    """The gateway's own durable record of order channels."""

    database_url: str = setting(
        "CHAT_GATEWAY_DATABASE_URL",
        "`sqlite:///path` or `postgresql://…`",
        "sqlite:///var/chat-gateway.db",
    )
    database_pool_size: int = setting(
        "CHAT_GATEWAY_DATABASE_POOL_SIZE",
        "most PostgreSQL connections per process",
        10,
        minimum=1,
        maximum=1000,
    )
    database_timeout_s: float = setting(
        "CHAT_GATEWAY_DATABASE_TIMEOUT",
        "seconds one registry call may take (pool wait included) before `UNAVAILABLE`",
        2.0,
        above=0,
        maximum=60,
    )

    def check(self) -> None:
        if not self.database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ConfigError("CHAT_GATEWAY_DATABASE_URL: use sqlite:///path or postgresql://…")


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """The listeners: addresses, TLS, calling services, limits, shutdown."""

    grpc_addr: str = setting("CHAT_GATEWAY_GRPC_ADDR", "gRPC listen address", "127.0.0.1:50051")
    http_addr: str = setting(
        "CHAT_GATEWAY_HTTP_ADDR", "HTTP bridge listen address", "127.0.0.1:8080"
    )
    services: tuple[ServiceGrant, ...] = setting(
        "CHAT_GATEWAY_SERVICES",
        "calling services: `name:sha256hex:Method,Method;…` (or TOML `[services.<name>]`)",
        (),
        dev=dev_services(),
        parse=_parse_services,
        shown_default="required (dev: `order-service`, `web-backend`, `support-tool`)",
    )
    tls_cert_file: str | None = setting(
        "CHAT_GATEWAY_TLS_CERT_FILE",
        "PEM certificate chain: the gRPC port speaks TLS",
        None,
        shown_default="plaintext",
    )
    tls_key_file: str | None = setting(
        "CHAT_GATEWAY_TLS_KEY_FILE", "PEM private key of that certificate", None
    )
    tls_client_ca_file: str | None = setting(
        "CHAT_GATEWAY_TLS_CLIENT_CA_FILE",
        "PEM CA bundle: gRPC clients must present a certificate it signed (mTLS)",
        None,
        shown_default="no client certificates",
    )
    http_tls_cert_file: str | None = setting(
        "CHAT_GATEWAY_HTTP_TLS_CERT_FILE",
        "PEM certificate chain: the HTTP bridge speaks HTTPS",
        None,
        shown_default="plain HTTP",
    )
    http_tls_key_file: str | None = setting(
        "CHAT_GATEWAY_HTTP_TLS_KEY_FILE", "PEM private key of that certificate", None
    )
    reuse_port: bool = setting(
        "CHAT_GATEWAY_REUSE_PORT",
        "bind with SO_REUSEPORT; set for its workers by `serve --workers N`",
        False,
    )
    event_loop: EventLoop = setting(
        "CHAT_GATEWAY_EVENT_LOOP",
        "`uvloop` (faster) or the standard library's `asyncio` (for debugging)",
        "uvloop",
    )
    max_concurrent_rpcs: int = setting(
        "CHAT_GATEWAY_MAX_CONCURRENT_RPCS",
        "ChatGateway RPCs in flight at once; more get `RESOURCE_EXHAUSTED`",
        1000,
        minimum=1,
        maximum=1_000_000_000,
    )
    max_message_bytes: int = setting(
        "CHAT_GATEWAY_MAX_MESSAGE_BYTES",
        "largest gRPC request or response message",
        64 * 1024,
        minimum=1024,
        maximum=16 * 1024 * 1024,
    )
    http_max_connections: int = setting(
        "CHAT_GATEWAY_HTTP_MAX_CONNECTIONS",
        "HTTP bridge connections open at once (never more than half the process's file "
        "descriptor limit); past it the longest-idle one is closed",
        4096,
        minimum=16,
        maximum=1_000_000_000,
    )
    http_header_timeout_s: float = setting(
        "CHAT_GATEWAY_HTTP_HEADER_TIMEOUT",
        "seconds a connection has to send a complete request head",
        10.0,
        above=0,
        maximum=300,
    )
    http_body_timeout_s: float = setting(
        "CHAT_GATEWAY_HTTP_BODY_TIMEOUT",
        "seconds a request has to send its body",
        10.0,
        above=0,
        maximum=300,
    )
    http_keepalive_s: float = setting(
        "CHAT_GATEWAY_HTTP_KEEPALIVE",
        "seconds an idle HTTP keep-alive connection stays open",
        75.0,
        above=0,
        maximum=3600,
    )
    http_fast_lane: bool = setting(
        "CHAT_GATEWAY_HTTP_FAST_LANE",
        "answer the plain token request (`GET`, `Authorization: Bearer`) as it arrives, "
        "past aiohttp's request handling; anything else is routed as usual",
        True,
    )
    grpc_max_concurrent_streams: int = setting(
        "CHAT_GATEWAY_GRPC_MAX_CONCURRENT_STREAMS",
        "gRPC calls one connection may have open at once (HTTP/2 streams)",
        256,
        minimum=1,
        maximum=10_000,
    )
    grpc_max_connection_idle_s: float = setting(
        "CHAT_GATEWAY_GRPC_MAX_CONNECTION_IDLE",
        "seconds an idle gRPC connection is kept before the server closes it",
        300.0,
        above=0,
        maximum=86_400,
    )
    grpc_max_connection_age_s: float = setting(
        "CHAT_GATEWAY_GRPC_MAX_CONNECTION_AGE",
        "seconds before a gRPC connection is asked to reconnect (spreads clients over "
        "replicas; calls in flight get the shutdown grace)",
        1800.0,
        above=0,
        maximum=86_400,
    )
    shutdown_grace_s: float = setting(
        "CHAT_GATEWAY_SHUTDOWN_GRACE",
        "seconds in-flight RPCs and requests get after SIGTERM/SIGINT",
        15.0,
        minimum=0,
        maximum=3600,
    )

    def check(self) -> None:
        _addr("CHAT_GATEWAY_GRPC_ADDR", self.grpc_addr)
        _addr("CHAT_GATEWAY_HTTP_ADDR", self.http_addr)
        names = [g.name for g in self.services]
        if not names:
            raise ConfigError(
                "CHAT_GATEWAY_SERVICES: configure at least one calling service "
                "(name:sha256hex:Methods); `python -m gateway hash-key` prints a key's hash"
            )
        if len(set(names)) != len(names):
            raise ConfigError("CHAT_GATEWAY_SERVICES: service names must be unique")
        for prefix, cert, key in (
            ("CHAT_GATEWAY_TLS", self.tls_cert_file, self.tls_key_file),
            ("CHAT_GATEWAY_HTTP_TLS", self.http_tls_cert_file, self.http_tls_key_file),
        ):
            if bool(cert) != bool(key):
                raise ConfigError(f"{prefix}_CERT_FILE and {prefix}_KEY_FILE must be set together")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ConfigError(
                "CHAT_GATEWAY_TLS_CLIENT_CA_FILE needs CHAT_GATEWAY_TLS_CERT_FILE and _KEY_FILE "
                "(mTLS is TLS with client certificates)"
            )
        for spec, value in _specs_and_values(self):
            if spec.env.endswith("_FILE"):
                _readable(spec.env, value)


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    """The HTTP bridge for browsers: sessions, CORS, rate limits."""

    session_secret: str | None = setting(
        "CHAT_GATEWAY_SESSION_SECRET",
        "HS256 secret of browser session JWTs",
        None,
        dev=DEV_SESSION_SECRET,
        secret=True,
        shown_default="unset: every session is refused",
    )
    session_public_key_file: str | None = setting(
        "CHAT_GATEWAY_SESSION_PUBLIC_KEY_FILE",
        "PEM public key (RS256 or ES256 P-256) of session JWTs; wins over the secret",
        None,
    )
    session_cookie: str = setting(
        "CHAT_GATEWAY_SESSION_COOKIE", "cookie that may carry the session JWT", "tt_session"
    )
    session_issuer: str | None = setting(
        "CHAT_GATEWAY_SESSION_ISSUER",
        "required `iss` of session JWTs",
        None,
        shown_default="unchecked",
    )
    session_audience: str | None = setting(
        "CHAT_GATEWAY_SESSION_AUDIENCE",
        "required `aud` of session JWTs",
        None,
        shown_default="unchecked",
    )
    cors_origins: tuple[str, ...] = setting(
        "CHAT_GATEWAY_CORS_ORIGINS",
        "comma-separated browser origins allowed by CORS",
        (),
        parse=_split_origins,
    )
    token_rate_limit_per_min: float = setting(
        "CHAT_GATEWAY_TOKEN_RATE_LIMIT",
        "token requests per user per minute (token bucket refill)",
        30.0,
        above=0,
        maximum=1_000_000_000,
    )
    token_rate_limit_burst: int = setting(
        "CHAT_GATEWAY_TOKEN_RATE_BURST",
        "token requests a user may make at once (bucket size); a request answered with the "
        "token already issued to the user in the same second costs nothing",
        50,
        minimum=1,
        maximum=1_000_000_000,
    )

    channel_rate_limit_per_min: float = setting(
        "CHAT_GATEWAY_CHANNEL_RATE_LIMIT",
        "channel requests per user per minute (token bucket refill)",
        60.0,
        above=0,
        maximum=1_000_000_000,
    )
    channel_rate_limit_burst: int = setting(
        "CHAT_GATEWAY_CHANNEL_RATE_BURST",
        "channel requests a user may make at once (bucket size)",
        20,
        minimum=1,
        maximum=1_000_000_000,
    )

    dev_pages: bool = setting(
        "CHAT_GATEWAY_DEV_PAGES",
        "serve the order chat page at `/chat/stream/{orderId}` (development; with the dev "
        "profile also a sign-in at `/chat/dev/login/{userId}`)",
        False,
        dev=True,
    )
    dev_pages_dir: str | None = setting(
        "CHAT_GATEWAY_DEV_PAGES_DIR",
        "the built page (`make web`)",
        None,
        shown_default="`clients/web/dist` of the checkout",
    )

    def check(self) -> None:
        _readable("CHAT_GATEWAY_SESSION_PUBLIC_KEY_FILE", self.session_public_key_file)


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """Bringing Stream in line with the registry: inline first try, then the worker."""

    inline_sync_budget_s: float = setting(
        "CHAT_GATEWAY_INLINE_SYNC_BUDGET",
        "seconds an RPC waits for Stream before answering `PENDING`",
        2.0,
        minimum=0,
        maximum=60,
    )
    sync_poll_interval_s: float = setting(
        "CHAT_GATEWAY_SYNC_POLL_INTERVAL",
        "seconds the idle sync worker waits between polls",
        1.0,
        above=0,
        maximum=3600,
    )
    sync_lease_s: float = setting(
        "CHAT_GATEWAY_SYNC_LEASE",
        "seconds a worker's claim lasts; a crashed gateway's orders are taken over after it",
        30.0,
        above=0,
        maximum=3600,
    )
    sync_backoff_cap_s: float = setting(
        "CHAT_GATEWAY_SYNC_BACKOFF_CAP",
        "longest delay between sync retries of one order, seconds",
        300.0,
        above=0,
        maximum=86_400,
    )

    def check(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    """Logs and metrics."""

    log_level: LogLevel = setting("CHAT_GATEWAY_LOG_LEVEL", "log level", "INFO")
    log_format: LogFormat = setting(
        "CHAT_GATEWAY_LOG_FORMAT",
        "`json` (one object per line) or `text`",
        "json",
        dev="text",
    )
    access_log: bool = setting(
        "CHAT_GATEWAY_ACCESS_LOG", "one INFO line per RPC and per HTTP request", True
    )
    metrics_addr: str | None = setting(
        "CHAT_GATEWAY_METRICS_ADDR",
        "serve `/metrics` on this host:port instead of the browser-facing HTTP port",
        None,
        shown_default="unset: `/metrics` on the HTTP bridge's port",
    )

    metrics_refresh_s: float = setting(
        "CHAT_GATEWAY_METRICS_REFRESH",
        "seconds between refreshes of the sync-backlog gauges",
        5.0,
        above=0,
        maximum=3600,
    )

    def check(self) -> None:
        if self.metrics_addr is not None:
            _addr("CHAT_GATEWAY_METRICS_ADDR", self.metrics_addr)


Section = (
    StreamSettings
    | TokenSettings
    | RegistrySettings
    | EdgeSettings
    | BridgeSettings
    | SyncSettings
    | ObservabilitySettings
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway is configured with, by section."""

    stream: StreamSettings = field(default_factory=StreamSettings)
    tokens: TokenSettings = field(default_factory=TokenSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    edge: EdgeSettings = field(default_factory=EdgeSettings)
    bridge: BridgeSettings = field(default_factory=BridgeSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    dev_profile: bool = False
    """True when built by ``serve --dev``: dev keys and secrets are in use."""

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some settings changed by field name (validated again).

        Raises:
            ConfigError: an unknown name or an invalid value.
        """
        values = dict(_flat(self))
        for name in changes:
            if name not in values:
                raise ConfigError(f"unknown setting {name!r}")
        values.update(changes)
        return _build(values, dev_profile=self.dev_profile)


SECTIONS: tuple[tuple[str, type[Any]], ...] = tuple(
    (f.name, typing.get_type_hints(Settings)[f.name])
    for f in dataclasses.fields(Settings)
    if f.name != "dev_profile"
)
"""``(attribute, section class)`` in declaration order."""


def declared() -> Iterator[tuple[str, dataclasses.Field[Any], Spec, Any]]:
    """Every setting: ``(section attribute, field, spec, resolved type)``."""
    for section_name, section in SECTIONS:
        hints = typing.get_type_hints(section)
        for f in dataclasses.fields(section):
            yield section_name, f, f.metadata["setting"], hints[f.name]


def _specs_and_values(section: Any) -> Iterator[tuple[Spec, Any]]:
    for f in dataclasses.fields(section):
        yield f.metadata["setting"], getattr(section, f.name)


def _flat(settings: Settings) -> Iterator[tuple[str, Any]]:
    for section_name, _ in SECTIONS:
        section = getattr(settings, section_name)
        for f in dataclasses.fields(section):
            yield f.name, getattr(section, f.name)


# -- reading and checking values ----------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _coerce(spec: Spec, kind: Any, raw: Any) -> Any:
    """``raw`` (an environment string or a TOML/override value) as a ``kind`` value."""
    name = spec.env
    if spec.parse is not None:
        return spec.parse(name, raw)
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):  # X | None
        if raw is None:
            return None
        (kind,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        origin = typing.get_origin(kind)
    if origin is Literal:
        allowed = typing.get_args(kind)
        value = raw.strip() if isinstance(raw, str) else raw
        if isinstance(value, str) and all(a.isupper() for a in allowed):
            value = value.upper()
        if value not in allowed:
            options = ", ".join(map(repr, allowed[:-1])) + f" or {allowed[-1]!r}"
            raise ConfigError(f"{name}: must be {options}, not {raw!r}")
        return value
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        value = str(raw).strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ConfigError(f"{name}: {raw!r} is not true or false")
    if kind is int:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ConfigError(f"{name}: {raw!r} is not a whole number")
        try:
            return int(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: {raw!r} is not a whole number") from exc
    if kind is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise ConfigError(f"{name}: {raw!r} is not a number")
        try:
            value = float(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: {raw!r} is not a number") from exc
        if not math.isfinite(value):
            raise ConfigError(f"{name}: {raw!r} is not a finite number")
        return value
    if kind is str:
        if not isinstance(raw, str):
            raise ConfigError(f"{name}: expected a string, got {raw!r}")
        return raw
    raise TypeError(f"{name}: no reader for {kind!r}; give the setting a parse=")


def _bounded(spec: Spec, value: Any) -> Any:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return value
    low, high = spec.minimum, spec.maximum
    too_low = (low is not None and value < low) or (spec.above is not None and value <= spec.above)
    if too_low or (high is not None and value > high):
        lower = f">= {low:g}" if low is not None else f"> {spec.above:g}"
        upper = f" and <= {high:g}" if high is not None else ""
        raise ConfigError(f"{spec.env}: must be {lower}{upper}, not {value!r}")
    return value


def _build(values: Mapping[str, Any], *, dev_profile: bool) -> Settings:
    """Sections from flat ``field name -> value`` (coerced, bounded, checked)."""
    sections: dict[str, Any] = {}
    for section_name, section in SECTIONS:
        kwargs: dict[str, Any] = {}
        hints = typing.get_type_hints(section)
        for f in dataclasses.fields(section):
            if f.name in values:
                spec: Spec = f.metadata["setting"]
                kwargs[f.name] = _bounded(spec, _coerce(spec, hints[f.name], values[f.name]))
        built = section(**kwargs)
        built.check()
        sections[section_name] = built
    return Settings(**sections, dev_profile=dev_profile)


def load_settings(environ: Mapping[str, str] | None = None, *, dev: bool = False) -> Settings:
    """Build the settings from the dev profile (if ``dev``), the TOML file and the env.

    Raises:
        ConfigError: a value is missing or invalid; the message names the setting.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if dev:
        values.update((f.name, spec.dev) for _, f, spec, _ in declared() if spec.dev is not _UNSET)
    config_file = env.get("CHAT_GATEWAY_CONFIG")
    if config_file:
        values.update(_from_toml(config_file))
    from_env = {f.name: env[spec.env] for _, f, spec, _ in declared() if env.get(spec.env)}
    values.update(from_env)
    if "backend" not in values:
        stream_key = bool(env.get("GETSTREAM_API_KEY")) or (
            not dev and bool(values.get("stream_api_key"))
        )
        values["backend"] = "stream" if stream_key else "local"
    return _build(values, dev_profile=dev)


def _from_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"CHAT_GATEWAY_CONFIG: cannot read {path}: {exc}") from exc
    known = {f.name for _, f, _, _ in declared()}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}")
    return dict(data)


# -- documentation ------------------------------------------------------------------------


def _shown(value: Any) -> str:
    if value is None or value == ():
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def settings_table() -> str:
    """The README's settings table (Markdown), one row per setting, by section."""
    lines = ["| variable | TOML key | meaning | default |", "|---|---|---|---|"]
    current = ""
    for section_name, f, spec, _ in declared():
        if section_name != current:
            current = section_name
            lines.append(f"| **{section_name}** | | | |")
        default = spec.shown_default or _shown(
            f.default if f.default is not dataclasses.MISSING else None
        )
        if isinstance(spec.dev, str):
            default += f" (dev: {_shown(spec.dev)})"
        lines.append(f"| `{spec.env}` | `{f.name}` | {spec.doc} | {default} |")
    return "\n".join(lines) + "\n"
