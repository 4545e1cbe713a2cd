"""ServiceAuthorizer: keys, grants, and what it remembers between calls."""

from __future__ import annotations

import pytest

from gateway.config import DEV_ORDER_SERVICE_KEY, DEV_WEB_BACKEND_KEY, dev_services
from gateway.domain import PermissionDeniedError, UnauthenticatedError
from gateway.rpc.auth import ServiceAuthorizer, bearer_key
from tests.helpers.rpc import GATEWAY_METHOD


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        ("Bearer ", None),
        ("Basic abc", None),
        ("abc", None),
        (b"Bearer abc", None),
        (None, None),
    ],
)
def test_bearer_key(value: str | bytes | None, key: str | None) -> None:
    assert bearer_key(value) == key


def test_known_key_granted_method_passes_every_time() -> None:
    authorizer = ServiceAuthorizer(dev_services())
    for _ in range(3):
        grant = authorizer.authorize(f"{GATEWAY_METHOD}IssueToken", f"Bearer {DEV_WEB_BACKEND_KEY}")
        assert grant.name == "web-backend"


def test_remembered_key_still_meets_per_method_grants() -> None:
    authorizer = ServiceAuthorizer(dev_services())
    authorizer.authorize(f"{GATEWAY_METHOD}IssueToken", f"Bearer {DEV_WEB_BACKEND_KEY}")
    with pytest.raises(PermissionDeniedError, match="EnsureOrderChannel"):
        authorizer.authorize(f"{GATEWAY_METHOD}EnsureOrderChannel", f"Bearer {DEV_WEB_BACKEND_KEY}")
    with pytest.raises(PermissionDeniedError, match="Check"):
        authorizer.authorize("/other.v1.Service/Check", f"Bearer {DEV_WEB_BACKEND_KEY}")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        f"Basic {DEV_WEB_BACKEND_KEY}",
        f"Bearer {DEV_WEB_BACKEND_KEY}x",
        f"Bearer {DEV_WEB_BACKEND_KEY[:-1]}",
        f"Bearer {DEV_WEB_BACKEND_KEY.upper()}",
        DEV_WEB_BACKEND_KEY.encode(),
    ],
)
def test_near_misses_stay_unauthenticated_after_the_real_key_was_seen(
    authorization: str | bytes | None,
) -> None:
    authorizer = ServiceAuthorizer(dev_services())
    authorizer.authorize(f"{GATEWAY_METHOD}IssueToken", f"Bearer {DEV_WEB_BACKEND_KEY}")
    for _ in range(2):  # failures are never remembered
        with pytest.raises(UnauthenticatedError):
            authorizer.authorize(f"{GATEWAY_METHOD}IssueToken", authorization)


def test_memory_is_bounded_by_successful_spellings() -> None:
    authorizer = ServiceAuthorizer(dev_services())
    for i in range(ServiceAuthorizer.MAX_REMEMBERED * 2):
        padded = f"Bearer {DEV_ORDER_SERVICE_KEY}{' ' * i}"
        assert authorizer.authorize(f"{GATEWAY_METHOD}AuthorizeParticipant", padded).name == (
            "order-service"
        )
        with pytest.raises(UnauthenticatedError):
            authorizer.authorize(f"{GATEWAY_METHOD}AuthorizeParticipant", f"Bearer wrong-{i}")
    assert len(authorizer._remembered) == ServiceAuthorizer.MAX_REMEMBERED
