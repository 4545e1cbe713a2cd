"""Several processes opening one fresh SQLite file at once (``serve --workers N``) all succeed."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

from gateway.registry.sqlite import SqliteRegistry


def _open_and_close(path: str) -> str:
    async def go() -> None:
        registry = await SqliteRegistry.open(path)
        await registry.close()

    try:
        asyncio.run(go())
    except Exception as exc:  # reported to the parent, which asserts on it
        return repr(exc)
    return "ok"


def test_concurrent_processes_open_a_fresh_file(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    outcomes: list[str] = []
    with context.Pool(4) as pool:
        for attempt in range(8):
            path = str(tmp_path / f"registry-{attempt}.db")
            outcomes += pool.map(_open_and_close, [path] * 4)
    assert outcomes == ["ok"] * 32
