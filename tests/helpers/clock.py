"""One settable clock for every test that needs time to stand still or jump."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
"""Where a :class:`FakeClock` starts unless told otherwise."""


class FakeClock:
    """A clock that moves only when told to.

    Calling it gives the aware UTC ``datetime`` the gateway's clocks return; pass
    :meth:`timestamp` where a clock of epoch seconds (``time.time``-like) is wanted.
    """

    def __init__(self, start: datetime | float | None = None) -> None:
        if isinstance(start, int | float):
            start = datetime.fromtimestamp(start, UTC)
        self.now = start or START

    def __call__(self) -> datetime:
        return self.now

    def timestamp(self) -> float:
        """Now, in epoch seconds."""
        return self.now.timestamp()

    def advance(self, by: float | timedelta) -> None:
        """Move forward by ``by`` (seconds, or a ``timedelta``)."""
        self.now += by if isinstance(by, timedelta) else timedelta(seconds=by)
