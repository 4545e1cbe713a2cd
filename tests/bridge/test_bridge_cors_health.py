"""CORS, health and readiness, the OpenAPI document and unknown routes, over real HTTP."""

from __future__ import annotations

import aiohttp
import pytest

from gateway.app import Gateway
from tests.helpers.bridge import (
    BUYER,
    CHANNEL_PATH,
    TOKEN_PATH,
    bearer,
    error_of,
    session_jwt,
)
from tests.helpers.gateways import GatewayFactory

APP = "http://127.0.0.1:3000"
EVIL = "http://127.0.0.1:6666"
CORS_HEADERS = {
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
}


def cors_headers_of(response: aiohttp.ClientResponse) -> set[str]:
    return {h for h in CORS_HEADERS if h in response.headers}


@pytest.fixture
async def cors_base(start_gateway: GatewayFactory) -> str:
    gw = await start_gateway(cors_origins=(APP, "https://app.tradetrust.test"))
    return f"http://127.0.0.1:{gw.http_port}"


async def test_allowed_origin_gets_credentialed_cors(
    http: aiohttp.ClientSession, cors_base: str
) -> None:
    headers = {**bearer(session_jwt(BUYER)), "Origin": APP}
    async with http.get(cors_base + TOKEN_PATH, headers=headers) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == APP
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]
        assert "Origin" in response.headers["Vary"]


async def test_allowed_origin_sees_errors_too(http: aiohttp.ClientSession, cors_base: str) -> None:
    async with http.get(cors_base + TOKEN_PATH, headers={"Origin": APP}) as response:
        assert response.status == 401
        assert response.headers["Access-Control-Allow-Origin"] == APP


@pytest.mark.parametrize("path", [TOKEN_PATH, CHANNEL_PATH])
async def test_preflight_for_allowed_origin(
    http: aiohttp.ClientSession, cors_base: str, path: str
) -> None:
    headers = {
        "Origin": APP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with http.options(cors_base + path, headers=headers) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == APP
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        assert int(response.headers["Access-Control-Max-Age"]) > 0
        assert "Origin" in response.headers["Vary"]


OTHER_ORIGINS = [EVIL, "http://127.0.0.1:3000.evil.test", "null", "HTTP://127.0.0.1:3000/"]


@pytest.mark.parametrize("origin", OTHER_ORIGINS)
async def test_other_origins_get_no_cors_headers(
    http: aiohttp.ClientSession, cors_base: str, origin: str
) -> None:
    headers = {**bearer(session_jwt(BUYER)), "Origin": origin}
    async with http.get(cors_base + TOKEN_PATH, headers=headers) as response:
        assert response.status == 200  # the browser, not the server, withholds it
        assert cors_headers_of(response) == set()
        assert "Origin" in response.headers["Vary"]


@pytest.mark.parametrize("origin", OTHER_ORIGINS)
async def test_other_origins_are_refused_a_preflight(
    http: aiohttp.ClientSession, cors_base: str, origin: str
) -> None:
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    async with http.options(cors_base + CHANNEL_PATH, headers=preflight) as response:
        assert response.status == 403
        assert await error_of(response) == "permission_denied"
        assert cors_headers_of(response) == set()


async def test_no_cors_by_default(http: aiohttp.ClientSession, bridge_url: str) -> None:
    preflight = {"Origin": APP, "Access-Control-Request-Method": "GET"}
    async with http.options(bridge_url + TOKEN_PATH, headers=preflight) as response:
        assert response.status == 403
        assert cors_headers_of(response) == set()


async def test_preflight_for_a_method_not_served_is_403(
    http: aiohttp.ClientSession, cors_base: str
) -> None:
    preflight = {"Origin": APP, "Access-Control-Request-Method": "DELETE"}
    async with http.options(cors_base + TOKEN_PATH, headers=preflight) as response:
        assert response.status == 403
        assert await error_of(response) == "permission_denied"


async def test_plain_options_is_405(http: aiohttp.ClientSession, cors_base: str) -> None:
    async with http.options(cors_base + TOKEN_PATH) as response:
        assert response.status == 405
        assert await error_of(response) == "method_not_allowed"


async def test_healthz(http: aiohttp.ClientSession, bridge_url: str) -> None:
    async with http.get(bridge_url + "/healthz") as response:
        assert (response.status, await response.json()) == (200, {"status": "ok"})


async def test_readyz(http: aiohttp.ClientSession, bridge_url: str) -> None:
    async with http.get(bridge_url + "/readyz") as response:
        assert (response.status, await response.json()) == (200, {"status": "ready"})


async def test_readyz_is_503_once_stopping(http: aiohttp.ClientSession, gateway: Gateway) -> None:
    base = f"http://127.0.0.1:{gateway.http_port}"
    gateway.bridge.readiness.started = False  # what stop() does first
    async with http.get(base + "/readyz") as response:
        assert response.status == 503
        assert await error_of(response) == "unavailable"


async def test_healthz_stays_200_while_stopping(
    http: aiohttp.ClientSession, gateway: Gateway
) -> None:
    base = f"http://127.0.0.1:{gateway.http_port}"
    gateway.bridge.readiness.started = False  # what stop() does first
    async with http.get(base + "/healthz") as response:
        assert response.status == 200


async def test_nothing_answers_once_stopped(http: aiohttp.ClientSession, gateway: Gateway) -> None:
    base = f"http://127.0.0.1:{gateway.http_port}"
    await gateway.stop(grace_s=1.0)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(base + "/healthz"):
            pass


async def test_http_port_is_the_bound_one(gateway: Gateway) -> None:
    assert gateway.settings.edge.http_addr.endswith(":0")
    assert 0 < gateway.http_port < 65536
    assert gateway.http_port != gateway.grpc_port


async def test_openapi_document_is_served(http: aiohttp.ClientSession, bridge_url: str) -> None:
    async with http.get(bridge_url + "/api/chat/stream/openapi.json") as response:
        assert response.status == 200
        doc = await response.json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) >= {TOKEN_PATH, CHANNEL_PATH, "/healthz", "/readyz"}
    assert set(doc["paths"][TOKEN_PATH]) == {"get", "post"}
    assert doc["components"]["securitySchemes"]["sessionCookie"]["name"] == "tt_session"


@pytest.mark.parametrize("path", ["/", "/api/chat/stream", "/api/chat/stream/tokens", "/x?y=1"])
async def test_unknown_route_is_json_404(
    http: aiohttp.ClientSession, bridge_url: str, path: str
) -> None:
    async with http.get(bridge_url + path) as response:
        assert response.status == 404
        assert await error_of(response) == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("DELETE", TOKEN_PATH, 405), ("PUT", "/healthz", 405)],
)
async def test_unrouted_requests_get_the_same_edge_headers(
    http: aiohttp.ClientSession, cors_base: str, method: str, path: str, status: int
) -> None:
    async with http.request(method, cors_base + path, headers={"Origin": APP}) as response:
        assert response.status == status
        assert response.headers["Access-Control-Allow-Origin"] == APP
        assert response.headers["Vary"] == "Origin"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        if status == 405:
            assert "GET" in response.headers["Allow"]
        assert await error_of(response) in {"not_found", "method_not_allowed"}
