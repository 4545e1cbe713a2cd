"""Waiting for a condition: the one polling loop of the test suite."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

import pytest

T = TypeVar("T")


@overload
async def eventually(
    predicate: Callable[[], Awaitable[T]],
    *,
    timeout_s: float = ...,
    interval_s: float = ...,
    message: str | Callable[[], str] = ...,
) -> T: ...


@overload
async def eventually(
    predicate: Callable[[], T],
    *,
    timeout_s: float = ...,
    interval_s: float = ...,
    message: str | Callable[[], str] = ...,
) -> T: ...


async def eventually(
    predicate: Callable[[], object],
    *,
    timeout_s: float = 5.0,
    interval_s: float = 0.05,
    message: str | Callable[[], str] = "condition not met",
) -> object:
    """Call ``predicate`` (plain or ``async``) every ``interval_s`` until it returns a truthy
    value, and return that value; fail the test after ``timeout_s``.

    Bounded twice: by the deadline and by the number of tries (``timeout_s / interval_s``
    plus one), so neither a slow predicate nor a stalled clock can keep it looping.
    ``message`` (or, lazily, what it returns) explains a failure, e.g. with a log tail.
    """
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / interval_s) + 1):
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(interval_s)
    text = message() if callable(message) else message
    pytest.fail(f"{text} (within {timeout_s}s)")
