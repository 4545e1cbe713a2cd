"""Unit tests of the bridge's pieces without I/O: rate limiter, settings, OpenAPI document."""

from __future__ import annotations

import pytest
import schemathesis

from gateway.bridge import TokenBucketLimiter
from gateway.bridge.openapi import ERROR_CODES, openapi_document
from gateway.config import ConfigError, load_settings
from gateway.domain import ErrorCode, RateLimitedError
from tests.helpers.clock import FakeClock


def test_bucket_allows_burst_then_limits_with_retry_after() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(rate_per_s=0.5, burst=2, clock=clock.timestamp)
    limiter.acquire("u")
    limiter.acquire("u")
    with pytest.raises(RateLimitedError) as caught:
        limiter.acquire("u")
    assert caught.value.retry_after_s == 2.0  # one request refills in 1 / 0.5 s
    limiter.acquire("other")  # per key
    clock.advance(2.0)
    limiter.acquire("u")
    with pytest.raises(RateLimitedError):
        limiter.acquire("u")


def test_bucket_refill_is_capped_at_burst() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(rate_per_s=10.0, burst=3, clock=clock.timestamp)
    clock.advance(3600)
    for _ in range(3):
        limiter.acquire("u")
    with pytest.raises(RateLimitedError) as caught:
        limiter.acquire("u")
    assert caught.value.retry_after_s == 1.0  # rounded up to whole seconds, at least 1


def test_bucket_memory_is_bounded() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(rate_per_s=0.001, burst=1, max_keys=2, clock=clock.timestamp)
    limiter.acquire("a")
    limiter.acquire("b")
    limiter.acquire("c")  # evicts "a", the least recently used
    limiter.acquire("a")  # a fresh bucket again
    with pytest.raises(RateLimitedError):
        limiter.acquire("c")


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_bucket_rejects_bad_parameters(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucketLimiter(rate_per_s=rate, burst=burst)


def test_rate_limit_settings_from_env() -> None:
    settings = load_settings(
        {"CHAT_GATEWAY_TOKEN_RATE_LIMIT": "12.5", "CHAT_GATEWAY_TOKEN_RATE_BURST": "4"}, dev=True
    )
    assert (settings.bridge.token_rate_limit_per_min, settings.bridge.token_rate_limit_burst) == (
        12.5,
        4,
    )


def test_rate_limit_settings_defaults() -> None:
    defaults = load_settings({}, dev=True)
    assert (defaults.bridge.token_rate_limit_per_min, defaults.bridge.token_rate_limit_burst) == (
        30.0,
        50,
    )


@pytest.mark.parametrize("name", ["CHAT_GATEWAY_TOKEN_RATE_LIMIT", "CHAT_GATEWAY_TOKEN_RATE_BURST"])
def test_rate_limit_settings_must_be_positive(name: str) -> None:
    with pytest.raises(ConfigError, match="RATE"):
        load_settings({name: "0"}, dev=True)


def test_openapi_document_is_valid() -> None:
    schemathesis.openapi.from_dict(openapi_document(cookie_name="sid", max_ttl_s=3600)).validate()


def test_openapi_document_follows_the_settings() -> None:
    doc = openapi_document(cookie_name="sid", max_ttl_s=3600)
    assert doc["components"]["securitySchemes"]["sessionCookie"]["name"] == "sid"
    ttl = doc["paths"]["/api/chat/stream/token"]["get"]["parameters"][0]["schema"]
    assert ttl["maximum"] == 3600


def test_openapi_document_defaults_to_the_tt_session_cookie() -> None:
    assert openapi_document()["components"]["securitySchemes"]["sessionCookie"]["name"] == (
        "tt_session"
    )


def test_openapi_document_uses_the_contract_codes() -> None:
    assert {c.json_code for c in ErrorCode} == set(ERROR_CODES)
