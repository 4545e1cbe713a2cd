"""Client options: deadline, retry policy, TLS/mTLS and keepalive, turned into channel args."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import grpc

SERVICE_NAME = "tradetrust.chat.v1.ChatGateway"

#: A gRPC channel argument (``grpc.*`` name and value).
ChannelOption = tuple[str, str | int]


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """gRPC service-config retry policy for ``UNAVAILABLE``.

    All three ChatGateway RPCs are idempotent, so gRPC may transparently re-send them.
    gRPC caps ``max_attempts`` at 5 and jitters each backoff, and a retry never outlives
    the call's deadline.
    """

    max_attempts: int = 5
    """Attempts including the first (2-5)."""
    initial_backoff_s: float = 0.1
    """Upper bound of the first randomized backoff."""
    max_backoff_s: float = 2.0
    """Cap for the backoff between attempts."""
    backoff_multiplier: float = 2.0
    """Growth of the backoff bound per attempt."""
    retryable_status_codes: tuple[str, ...] = ("UNAVAILABLE",)
    """Status codes (service-config spelling) that are retried."""

    def __post_init__(self) -> None:
        if not 2 <= self.max_attempts <= 5:
            raise ValueError("max_attempts must be between 2 and 5 (gRPC caps it at 5)")
        if self.initial_backoff_s <= 0 or self.max_backoff_s <= 0 or self.backoff_multiplier <= 0:
            raise ValueError("backoff settings must be positive")


@dataclass(frozen=True, kw_only=True)
class KeepaliveConfig:
    """HTTP/2 keepalive pings, so a dead connection is noticed between calls.

    Keep ``time_ms`` at or above what the server permits: gRPC servers by default reject
    pings more often than every 5 minutes with ``GOAWAY too_many_pings``.
    """

    time_ms: int = 300_000
    """``grpc.keepalive_time_ms``: ping after this long without activity."""
    timeout_ms: int = 20_000
    """``grpc.keepalive_timeout_ms``: close the connection if the ping is not acked in time."""
    permit_without_calls: bool = False
    """``grpc.keepalive_permit_without_calls``: ping also while no call is active."""

    def options(self) -> list[ChannelOption]:
        """The channel arguments."""
        return [
            ("grpc.keepalive_time_ms", self.time_ms),
            ("grpc.keepalive_timeout_ms", self.timeout_ms),
            ("grpc.keepalive_permit_without_calls", int(self.permit_without_calls)),
        ]


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    """TLS (server verified) or, with a client certificate and key, mTLS.

    All values are PEM bytes; ``None`` root certificates means the system trust store.
    """

    root_certificates: bytes | None = None
    """CA bundle that signed the gateway's certificate."""
    certificate_chain: bytes | None = field(default=None, repr=False)
    """Client certificate chain (mTLS)."""
    private_key: bytes | None = field(default=None, repr=False)
    """Client private key (mTLS)."""
    server_name_override: str | None = None
    """Expected name in the server certificate when it differs from the target host."""

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("mTLS needs both certificate_chain and private_key")

    @classmethod
    def from_files(
        cls,
        root_certificates: str | Path | None = None,
        certificate_chain: str | Path | None = None,
        private_key: str | Path | None = None,
        server_name_override: str | None = None,
    ) -> TlsConfig:
        """Read PEM files (any may be omitted)."""

        def read(path: str | Path | None) -> bytes | None:
            return Path(path).read_bytes() if path is not None else None

        return cls(
            root_certificates=read(root_certificates),
            certificate_chain=read(certificate_chain),
            private_key=read(private_key),
            server_name_override=server_name_override,
        )

    @property
    def mutual(self) -> bool:
        """True when a client certificate is presented (mTLS)."""
        return self.certificate_chain is not None

    def credentials(self) -> grpc.ChannelCredentials:
        """The channel credentials."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    """Everything about how a client talks to the gateway, apart from address and key."""

    deadline_s: float = 10.0
    """Default deadline of each call, in seconds; methods accept ``timeout=`` to override."""
    wait_for_ready: bool = True
    """Queue calls while the gateway is unreachable (until the deadline) instead of failing
    fast with ``UNAVAILABLE``. Safe because every RPC is idempotent and deadline-bound; it is
    what lets a call ride over a gateway restart."""
    retry: RetryPolicy | None = field(default_factory=RetryPolicy)
    """Retry policy for ``UNAVAILABLE``; ``None`` disables retries."""
    tls: TlsConfig | None = None
    """``None``: plaintext (loopback, a service mesh sidecar); else TLS or mTLS."""
    keepalive: KeepaliveConfig | None = field(default_factory=KeepaliveConfig)
    """Keepalive pings; ``None`` leaves gRPC's defaults."""
    initial_reconnect_backoff_ms: int = 250
    """First delay before reconnecting a lost connection (gRPC default: 1000)."""
    max_reconnect_backoff_ms: int = 5_000
    """Cap of the reconnect delay (gRPC default: 120000): bounds how long after a gateway
    restart queued calls wait for the next connection attempt."""
    extra_channel_options: tuple[ChannelOption, ...] = ()
    """Further ``grpc.*`` channel arguments, appended last."""

    def __post_init__(self) -> None:
        if self.deadline_s <= 0:
            raise ValueError("deadline_s must be positive")

    def service_config(self) -> str:
        """The service config JSON carrying the retry policy."""
        method_config: dict[str, object] = {"name": [{"service": SERVICE_NAME}]}
        if self.retry is not None:
            r = self.retry
            method_config["retryPolicy"] = {
                "maxAttempts": r.max_attempts,
                "initialBackoff": f"{r.initial_backoff_s:.3f}s",
                "maxBackoff": f"{r.max_backoff_s:.3f}s",
                "backoffMultiplier": r.backoff_multiplier,
                "retryableStatusCodes": list(r.retryable_status_codes),
            }
        return json.dumps({"methodConfig": [method_config]})

    def channel_options(self) -> list[ChannelOption]:
        """All channel arguments for these options."""
        options: list[ChannelOption] = [
            ("grpc.enable_retries", int(self.retry is not None)),
            ("grpc.service_config", self.service_config()),
            # The client's policy wins over one a resolver might supply.
            ("grpc.service_config_disable_resolution", 1),
            ("grpc.initial_reconnect_backoff_ms", self.initial_reconnect_backoff_ms),
            ("grpc.max_reconnect_backoff_ms", self.max_reconnect_backoff_ms),
        ]
        if self.keepalive is not None:
            options.extend(self.keepalive.options())
        if self.tls is not None and self.tls.server_name_override:
            options.append(("grpc.ssl_target_name_override", self.tls.server_name_override))
        options.extend(self.extra_channel_options)
        return options
