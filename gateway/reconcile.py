"""``python -m gateway reconcile [--apply] [--json]``: what the registry says against what
Stream holds, and the repair of every difference.

It pages through every order in the registry (30 at a time: one ``query_channels`` call
per page, by cid) and compares each channel with the order: exists, members exactly the
buyer, the seller and the support agents (agents as channel moderators), ``frozen`` as the
state says, ``order_id`` in its data. It then lists every channel of the order channel
type that carries an ``order_id`` (paged by creation time) and reports those the registry
does not know: orphans, which are never touched. Pending revocations come from the
registry.

With ``--apply`` every differing order is handed to the outbox (made pending and due
now) and this process runs the sync worker until they are synced or a minute has passed;
a gateway's own worker would finish anything left. Nothing in Stream is ever deleted.

Stream's rate limits are honoured: the backend holds calls while ``X-RateLimit-Remaining``
is 0 or after a 429, and this command waits out the reset instead of failing. The report
counts the Stream calls made.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from gateway.chat import ChannelSnapshot, ChatBackend, ChatBackendError
from gateway.chat.drift import drift
from gateway.domain import Revocation, SyncState
from gateway.outbox import ChannelSync
from gateway.registry import OrderRegistry

logger = logging.getLogger(__name__)

T = TypeVar("T")

PAGE = 30
"""Orders compared per Stream call (Stream's largest ``query_channels`` page)."""
MAX_RATE_LIMIT_WAITS = 20
"""Rate-limit resets one run waits out before it gives up."""
APPLY_TIMEOUT_S = 60.0
"""How long ``--apply`` runs the sync worker for the repairs it handed over."""


@dataclass(frozen=True, slots=True)
class OrderDifference:
    """One order whose channel in Stream differs from the registry."""

    order_id: str
    cid: str
    sync_state: SyncState
    differences: tuple[str, ...]


@dataclass
class Report:
    """What one reconcile run found (and, with ``--apply``, repaired)."""

    orders_checked: int = 0
    differing: list[OrderDifference] = field(default_factory=list)
    orphans: list[ChannelSnapshot] = field(default_factory=list)
    pending_revocations: list[Revocation] = field(default_factory=list)
    stream_calls: int = 0
    repaired: list[str] = field(default_factory=list)
    still_pending: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Whether Stream matches the registry exactly."""
        return not (self.differing or self.orphans or self.pending_revocations)

    def as_json(self) -> str:
        """The report for scripts."""
        return json.dumps(
            {
                "clean": self.clean,
                "orders_checked": self.orders_checked,
                "differing": [
                    {
                        "order_id": d.order_id,
                        "cid": d.cid,
                        "sync_state": d.sync_state.value,
                        "differences": list(d.differences),
                    }
                    for d in self.differing
                ],
                "orphans": [{"cid": o.cid, "order_id": o.order_id} for o in self.orphans],
                "pending_revocations": [
                    {"user_id": r.user_id, "revoke_time": r.revoke_time.isoformat()}
                    for r in self.pending_revocations
                ],
                "stream_calls": self.stream_calls,
                "repaired": self.repaired,
                "still_pending": self.still_pending,
            },
            indent=2,
        )

    def table(self) -> str:
        """The summary and one row per difference, for people."""
        lines = [
            f"orders checked: {self.orders_checked}   differing: {len(self.differing)}   "
            f"orphan channels: {len(self.orphans)}   pending revocations: "
            f"{len(self.pending_revocations)}   Stream calls: {self.stream_calls}",
        ]
        rows = [("KIND", "ID", "CID", "SYNC", "DIFFERENCES")]
        rows += [
            ("order", d.order_id, d.cid, d.sync_state.value, "; ".join(d.differences))
            for d in self.differing
        ]
        rows += [
            ("orphan", o.order_id or "-", o.cid, "-", "not in the registry (left alone)")
            for o in self.orphans
        ]
        rows += [
            ("revocation", r.user_id, "-", "pending", f"before {r.revoke_time.isoformat()}")
            for r in self.pending_revocations
        ]
        if len(rows) > 1:
            widths = [max(len(row[i]) for row in rows) for i in range(4)]
            lines.append("")
            lines += [
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
                + "  "
                + row[4]
                for row in rows
            ]
        if self.repaired or self.still_pending:
            lines.append("")
            lines.append(
                f"repaired: {len(self.repaired)}   handed to the sync worker, still pending: "
                f"{len(self.still_pending)}"
            )
        lines.append("")
        lines.append("Stream matches the registry." if self.clean else "Stream differs.")
        return "\n".join(lines) + "\n"


async def reconcile(
    registry: OrderRegistry,
    backend: ChatBackend,
    channel_type: str,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Report:
    """Compare the registry with Stream. Changes nothing.

    Raises:
        ChatBackendError: Stream could not be asked (after waiting out rate limits).
        UnavailableError: the registry cannot be read.
    """
    report = Report()
    known: set[str] = set()
    after = ""
    while page := await registry.orders(after=after, limit=PAGE):
        held = await _patiently(lambda: backend.inspect(page), sleep)
        for channel in page:
            known.add(channel.cid)
            repairs = drift(channel, held.get(channel.cid))
            if repairs:
                report.differing.append(
                    OrderDifference(
                        channel.order_id,
                        channel.cid,
                        channel.sync_state,
                        tuple(repairs.describe()),
                    )
                )
        report.orders_checked += len(page)
        after = page[-1].order_id
    seen: set[str] = set()
    waits = 0
    while True:  # a rate limit mid-listing restarts it; what was seen is not repeated
        try:
            async for snapshot in backend.order_channels(channel_type):
                if snapshot.cid not in known and snapshot.cid not in seen:
                    report.orphans.append(snapshot)
                seen.add(snapshot.cid)
            break
        except ChatBackendError as exc:
            waits = await _wait_out(exc, waits, sleep)
    report.pending_revocations = await registry.pending_revocations()
    report.stream_calls = backend.calls
    return report


async def apply(
    report: Report,
    registry: OrderRegistry,
    sync: ChannelSync,
    *,
    timeout_s: float = APPLY_TIMEOUT_S,
    poll_s: float = 0.2,
) -> None:
    """Hand every difference to the outbox and run the sync worker until it is repaired
    (or ``timeout_s`` passes); fills in ``report.repaired`` and ``report.still_pending``."""
    order_ids = [d.order_id for d in report.differing]
    await registry.resync(order_ids)
    users = [r.user_id for r in report.pending_revocations]
    stop = asyncio.Event()
    worker = asyncio.create_task(sync.run(stop), name="reconcile-sync")
    sync.wake()
    try:
        async with asyncio.timeout(timeout_s):
            while await _pending_orders(registry, order_ids) or await _pending_users(
                registry, users
            ):
                await asyncio.sleep(poll_s)
    except TimeoutError:
        logger.warning("reconcile: repairs not finished within %.0fs", timeout_s)
    finally:
        stop.set()
        await worker
    pending = set(await _pending_orders(registry, order_ids))
    report.repaired = [order_id for order_id in order_ids if order_id not in pending]
    report.still_pending = [order_id for order_id in order_ids if order_id in pending]


async def _pending_orders(registry: OrderRegistry, order_ids: list[str]) -> list[str]:
    pending = []
    for order_id in order_ids:
        channel = await registry.get(order_id)
        if channel is not None and channel.sync_state is SyncState.PENDING:
            pending.append(order_id)
    return pending


async def _pending_users(registry: OrderRegistry, users: list[str]) -> bool:
    if not users:
        return False
    waiting = {r.user_id for r in await registry.pending_revocations()}
    return bool(waiting & set(users))


async def _patiently(
    call: Callable[[], Awaitable[T]], sleep: Callable[[float], Awaitable[None]]
) -> T:
    """``call()``, waiting out Stream's rate-limit resets (bounded)."""
    waits = 0
    while True:
        try:
            return await call()
        except ChatBackendError as exc:
            waits = await _wait_out(exc, waits, sleep)


async def _wait_out(
    error: ChatBackendError, waits: int, sleep: Callable[[float], Awaitable[None]]
) -> int:
    """Sleep until a rate limit resets, or re-raise anything else (or too many waits)."""
    if error.retry_after_s is None or waits >= MAX_RATE_LIMIT_WAITS:
        raise error
    logger.info("reconcile: Stream rate limit reached; waiting %.1fs", error.retry_after_s)
    await sleep(error.retry_after_s)
    return waits + 1
