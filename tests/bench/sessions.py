"""Browser session JWTs in bulk, and the user draws of the HTTP workloads.

A session is what TradeTrust's login issues and what :func:`tests.bench.procs.session_jwt`
makes one at a time with PyJWT: HS256 with the bench session secret, claims ``sub``, ``iat``
and ``exp``. Here the same bytes are made a few microseconds each (a precomputed header and
HMAC key schedule), so a million distinct sessions take seconds; :func:`check_against_pyjwt`
proves the two agree.

Draws: *distinct* users are ``<prefix><i>`` for consecutive ``i`` (never repeated);
*returning* users are drawn from a Zipf(s) distribution over a fixed population, each user
always presenting the same session.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import jwt

from tests.bench.procs import SESSION_SECRET

_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=") + b"."
_KEY = hmac.new(SESSION_SECRET.encode(), digestmod=hashlib.sha256)
LIFETIME_S = 3 * 3600
"""Sessions outlive the whole bench run."""
ISSUED_AT = int(time.time())
"""One issue time for the run, so a user's session is the same bytes in every file."""


def session(user_id: str, now: int = ISSUED_AT) -> str:
    """The session JWT of ``user_id``, issued at ``now`` (byte-identical to PyJWT's)."""
    claims = json.dumps(
        {"sub": user_id, "iat": now, "exp": now + LIFETIME_S}, separators=(",", ":")
    ).encode()
    signing_input = _HEADER + base64.urlsafe_b64encode(claims).rstrip(b"=")
    mac = _KEY.copy()
    mac.update(signing_input)
    return (signing_input + b"." + base64.urlsafe_b64encode(mac.digest()).rstrip(b"=")).decode()


def check_against_pyjwt() -> None:
    """Fail loudly if :func:`session` drifts from what PyJWT signs and verifies."""
    now = int(time.time())
    mine = session("check-user", now)
    theirs = jwt.encode(
        {"sub": "check-user", "iat": now, "exp": now + LIFETIME_S}, SESSION_SECRET, "HS256"
    )
    assert mine == theirs, (mine, theirs)
    assert jwt.decode(mine, SESSION_SECRET, algorithms=["HS256"])["sub"] == "check-user"


def distinct_users(prefix: str, count: int) -> Iterator[str]:
    """``count`` different user ids: ``<prefix>0``, ``<prefix>1``, …"""
    return (f"{prefix}{i}" for i in range(count))


def zipf_draws(population: int, s: float, count: int, seed: int) -> list[int]:
    """``count`` user indexes in ``[0, population)``, P(rank k) ∝ 1 / (k + 1) ** s."""
    cumulative = list(itertools.accumulate(1.0 / (k + 1) ** s for k in range(population)))
    total = cumulative[-1]
    rng = random.Random(seed)
    hi = population - 1
    return [min(bisect.bisect_left(cumulative, rng.random() * total), hi) for _ in range(count)]


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def write_sessions(path: Path, users: Iterable[str]) -> int:
    """One session JWT per line, for each user in order; returns the line count."""
    lines = 0
    with path.open("w") as fh:
        for batch in _batches(users, 10_000):
            fh.write("".join(session(u) + "\n" for u in batch))
            lines += len(batch)
    return lines


def write_returning(
    path: Path, population: int, s: float, count: int, seed: int
) -> dict[str, float]:
    """``count`` sessions in Zipf draw order over ``population`` users (``ret-<k>``), each
    user's session the same bytes every time; returns how the draw is spread."""
    draws = zipf_draws(population, s, count, seed)
    tokens = {k: session(f"ret-{k}") for k in set(draws)}
    with path.open("w") as fh:
        for start in range(0, count, 10_000):
            fh.write("".join(tokens[k] + "\n" for k in draws[start : start + 10_000]))
    top_share = Counter(draws).most_common(1)[0][1] / count
    return {"draws": count, "distinct_users": len(tokens), "top_user_share": round(top_share, 4)}
