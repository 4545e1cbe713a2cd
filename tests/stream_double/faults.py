"""Which requests a fault switch applies to (``Scope``) and the injected-failure queue."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class Scope:
    """The requests a switch applies to: all of them by default.

    ``method`` is an HTTP method (``"PATCH"``). ``path`` is either a path pattern starting
    with ``/`` where ``*`` matches exactly one segment (``/channels/*/*`` matches
    ``/channels/messaging/x`` but not ``/channels`` nor ``/channels/messaging/x/query``), or
    a call kind (``"query_channels"``).
    """

    method: str | None = None
    path: str | None = None

    def matches(self, method: str, path: str, kind: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.path is None:
            return True
        if self.path.startswith("/"):
            return _path_matches(self.path, path)
        return self.path == kind


def _path_matches(pattern: str, path: str) -> bool:
    wanted, actual = pattern.strip("/").split("/"), path.strip("/").split("/")
    return len(wanted) == len(actual) and all(
        fnmatchcase(part, want) for part, want in zip(actual, wanted, strict=True)
    )


@dataclass
class Injection:
    """Answer the next ``remaining`` requests in ``scope`` with ``status``."""

    status: int
    remaining: int
    scope: Scope


def take_injection(queue: list[Injection], method: str, path: str, kind: str) -> int | None:
    """The status of the first queued injection matching this request (used up), or None.

    Injections are consumed in the order they were queued, so unscoped ones still answer
    "the next N requests" in order, as ``inject(status, count)`` always did.
    """
    for injection in queue:
        if injection.scope.matches(method, path, kind):
            injection.remaining -= 1
            if injection.remaining <= 0:
                queue.remove(injection)
            return injection.status
    return None
