"""Property-based API testing with schemathesis against the served OpenAPI document.

A live gateway answers on loopback; schemathesis loads the document the bridge serves, then
hypothesis generates valid (positive) and invalid (negative) requests for every operation.
Every response must be a non-5xx that conforms to the document (status, content type,
headers, body schema), invalid requests must be rejected and valid ones accepted.
schemathesis is synchronous (requests), so it runs in a worker thread while the gateway
keeps serving on the test's event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode

from gateway.domain import Participant
from tests.helpers.bridge import BUYER, CHANNEL_PATH, SELLER, session_jwt
from tests.helpers.gateways import GatewayFactory

MAX_EXAMPLES = 60
OPENAPI_PATH = "/api/chat/stream/openapi.json"
Operation = schemathesis.APIOperation[Any, Any, Any, Any]


def _run(base_url: str, session: str) -> dict[str, int]:
    """Fuzz every operation in both modes; return how many calls each operation got."""
    schema = schemathesis.openapi.from_url(base_url + OPENAPI_PATH)
    auth = {"Authorization": f"Bearer {session}"}
    calls: dict[str, int] = {}
    with requests.Session() as http:
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result
            operation = result.ok()
            for mode in GenerationMode:
                if mode is GenerationMode.NEGATIVE and not _has_inputs(operation):
                    continue  # nothing to make invalid (healthz, readyz, openapi.json)
                calls[operation.label] = calls.get(operation.label, 0) + _fuzz(
                    operation, mode, http, auth
                )
        # A known order, so the 200 path of the channel endpoint is checked too.
        case = schema.make_case(
            operation=schema[CHANNEL_PATH]["POST"],
            body={"orderId": "ord-fuzz"},
            media_type="application/json",
        )
        response = case.call_and_validate(session=http, headers=auth, timeout=10)
        assert response.status_code == 200, response.text
    return calls


def _fuzz(
    operation: Operation,
    mode: GenerationMode,
    http: requests.Session,
    auth: dict[str, str],
) -> int:
    """Run hypothesis over one operation in one mode; return the number of calls made."""
    calls = 0

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case[Any]) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate(session=http, headers=auth, timeout=10)

    check()
    return calls


def _has_inputs(operation: Operation) -> bool:
    definition = operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))


async def test_bridge_conforms_to_its_openapi_document(start_gateway: GatewayFactory) -> None:
    # A generous rate limit: the fuzzer must see the API's answers, not 429s.
    gw = await start_gateway(
        token_rate_limit_per_min=60_000.0,
        token_rate_limit_burst=10_000,
        channel_rate_limit_per_min=60_000.0,
        channel_rate_limit_burst=10_000,
    )
    await gw.service.ensure_order_channel("ord-fuzz", Participant(BUYER), Participant(SELLER))
    started = time.monotonic()
    calls = await asyncio.wait_for(
        asyncio.to_thread(_run, f"http://127.0.0.1:{gw.http_port}", session_jwt(BUYER, exp_in=600)),
        timeout=120,
    )
    assert time.monotonic() - started < 120
    # schemathesis leaves out the operation that serves the document it loaded.
    assert set(calls) == {
        "GET /api/chat/stream/token",
        "POST /api/chat/stream/token",
        "POST /api/chat/stream/channel",
        "GET /healthz",
        "GET /readyz",
    }
    assert all(n >= 1 for n in calls.values())
