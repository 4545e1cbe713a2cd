"""The order service places an order and makes sure its buyer/seller chat channel exists.

Run against `make run` (the dev profile):

    python clients/python/examples/place_order.py [ORDER_ID]

Environment (dev defaults shown):
    CHAT_GATEWAY_ADDR          127.0.0.1:50051
    ORDER_SERVICE_KEY          dev-order-service-key   (never valid outside the dev profile)
    CHAT_GATEWAY_DEADLINE_S    5
"""

# ruff: noqa: T201 - an example prints what it did

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from tradetrust.chat.client import (
    AsyncChatGatewayClient,
    ChatGatewayError,
    ClientOptions,
    ConflictError,
    InvalidArgumentError,
    Participant,
    SyncState,
)


async def place_order(client: AsyncChatGatewayClient, order_id: str) -> int:
    """What the order service does after it has stored a new order."""
    buyer = Participant("buyer-42", display_name="Ana Buyer")
    seller = Participant(
        "seller-7", display_name="Sam Seller", image_url="https://cdn.example.com/sam.png"
    )
    try:
        ensured = await client.ensure_order_channel(order_id, buyer, seller)
    except ConflictError as exc:
        # The order id was reused with other participants: a bug upstream, not retryable.
        print(f"conflict: {exc.details}", file=sys.stderr)
        return 3
    except InvalidArgumentError as exc:
        print(f"invalid {exc.field or 'request'}: {exc.details}", file=sys.stderr)
        return 2
    channel = ensured.channel
    print(f"order {channel.order_id}: channel {channel.cid} created={ensured.created}")
    if channel.sync_state is SyncState.PENDING:
        # The gateway recorded the order; its background sync finishes the Stream side.
        print("stream sync pending; the gateway will finish it")

    # Ensuring again is safe (a retried message, a redelivered event): same channel.
    again = await client.ensure_order_channel(order_id, buyer, seller)
    assert again.channel.cid == channel.cid and not again.created
    print(f"ensured again: created={again.created}")

    answer = await client.authorize_participant(order_id, buyer.user_id)
    role = answer.role.value if answer.role else "none"
    print(f"{buyer.user_id} allowed={answer.allowed} role={role}")
    return 0


async def main(argv: list[str]) -> int:
    """Entry point."""
    target = os.environ.get("CHAT_GATEWAY_ADDR", "127.0.0.1:50051")
    key = os.environ.get("ORDER_SERVICE_KEY", "dev-order-service-key")
    options = ClientOptions(deadline_s=float(os.environ.get("CHAT_GATEWAY_DEADLINE_S", "5")))
    order_id = argv[1] if len(argv) > 1 else f"ord-{uuid.uuid4().hex[:12]}"
    async with AsyncChatGatewayClient(target, key, options=options) as client:
        try:
            return await place_order(client, order_id)
        except ChatGatewayError as exc:
            # UNAVAILABLE / DEADLINE_EXCEEDED after the client's retries: the order service
            # keeps the order and ensures the channel again later (the call is idempotent).
            print(f"gateway error {exc.code.name}: {exc.details}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv)))
