"""Builders of the domain objects and requests tests keep making."""

from __future__ import annotations

from datetime import UTC, datetime

from tradetrust.chat.v1 import chat_gateway_pb2 as pb

from gateway.domain import EventAction, OrderChannel, OrderEvent, Participant, SyncState


def order_channel(
    order_id: str = "ord-1",
    *,
    buyer: str | Participant = "buyer-1",
    seller: str | Participant = "seller-1",
    sync_state: SyncState = SyncState.PENDING,
    create_time: datetime | None = None,
) -> OrderChannel:
    """A ``messaging`` channel ``order-<order_id>``, pending and created now unless told
    otherwise; ``buyer`` and ``seller`` are participants or bare user ids."""
    return OrderChannel(
        order_id=order_id,
        channel_type="messaging",
        channel_id=f"order-{order_id}",
        buyer=buyer if isinstance(buyer, Participant) else Participant(buyer),
        seller=seller if isinstance(seller, Participant) else Participant(seller),
        sync_state=sync_state,
        create_time=create_time or datetime.now(UTC),
    )


def creation(time: datetime | None = None, service: str = "order-service") -> OrderEvent:
    """The ``created`` event a new order is recorded with."""
    return OrderEvent(time or datetime.now(UTC), EventAction.CREATED, service)


def participant(user_id: str, display_name: str = "", image_url: str = "") -> pb.Participant:
    """A proto participant (empty fields are left unset)."""
    return pb.Participant(user_id=user_id, display_name=display_name, image_url=image_url)


def ensure_request(
    order_id: str = "ord-1",
    buyer: str | pb.Participant = "buyer-1",
    seller: str | pb.Participant = "seller-1",
) -> pb.EnsureOrderChannelRequest:
    """An EnsureOrderChannel request; ``buyer`` and ``seller`` are participants or bare
    user ids."""
    return pb.EnsureOrderChannelRequest(
        order_id=order_id,
        buyer=buyer if isinstance(buyer, pb.Participant) else participant(buyer),
        seller=seller if isinstance(seller, pb.Participant) else participant(seller),
    )


def numbered_request(n: int) -> pb.EnsureOrderChannelRequest:
    """The ``n``-th of a series of unrelated orders: ``ord-<n>`` of ``buyer-<n>`` and
    ``seller-<n>``."""
    return ensure_request(f"ord-{n}", f"buyer-{n}", f"seller-{n}")


def own_parties_request(order_id: str) -> pb.EnsureOrderChannelRequest:
    """An order with participants of its own: buyer ``b-<order_id>``, seller
    ``s-<order_id>`` (so every order of a load is checkable on its own)."""
    return ensure_request(
        order_id, participant(f"b-{order_id}", "Buyer"), participant(f"s-{order_id}", "Seller")
    )


def cid_of(order_id: str) -> str:
    """The Stream cid of a short order id's channel."""
    return f"messaging:order-{order_id}"
