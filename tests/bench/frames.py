"""Files of pre-framed gRPC requests for grpcload, made with the generated stubs.

Each file is the requests of one run in the order they are sent: grpcload sends them in
that order and reports how often it ran out and started over (``wraps``). The orders named
are those :func:`tests.bench.scale.populate_sqlite` records (``ord-<i>``, buyer
``buyer-<i>``, seller ``seller-<i % 997>``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from tradetrust.chat.v1 import chat_gateway_pb2 as pb

from tests.bench.loadgen import grpc_frame
from tests.bench.scale import buyer_of, seller_of


def write(path: Path, messages: Iterable[Message]) -> Path:
    """Frame each message and write them all, in order."""
    with path.open("wb") as fh:
        fh.writelines(grpc_frame(m) for m in messages)
    return path


def health_check(path: Path) -> Path:
    """One Health/Check request (sent again and again: the baseline)."""
    return write(path, [health_pb2.HealthCheckRequest()])


def issue_token_distinct(path: Path, prefix: str, count: int) -> Path:
    """IssueToken for ``count`` different users, none repeated."""
    return write(path, (pb.IssueTokenRequest(user_id=f"{prefix}{i}") for i in range(count)))


def authorize_random(path: Path, orders: int, count: int, seed: int) -> Path:
    """AuthorizeParticipant for uniformly random recorded orders, as the buyer or the
    seller (at random), so every call is allowed."""
    rng = random.Random(seed)

    def requests() -> Iterable[Message]:
        for _ in range(count):
            i = rng.randrange(orders)
            user = buyer_of(i) if rng.random() < 0.5 else seller_of(i)
            yield pb.AuthorizeParticipantRequest(order_id=f"ord-{i}", user_id=user)

    return write(path, requests())


def ensure_repeat(path: Path, known: int, count: int, seed: int) -> Path:
    """EnsureOrderChannel repeating uniformly random known (synced) orders, with the
    participants they were recorded with."""
    rng = random.Random(seed)

    def requests() -> Iterable[Message]:
        for _ in range(count):
            i = rng.randrange(known)
            yield pb.EnsureOrderChannelRequest(
                order_id=f"ord-{i}",
                buyer=pb.Participant(user_id=buyer_of(i), display_name=f"Buyer {i}"),
                seller=pb.Participant(user_id=seller_of(i), display_name=f"Seller {i % 997}"),
            )

    return write(path, requests())
