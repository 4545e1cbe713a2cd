"""An order's life after it was placed, with the blocking client: the buyer disputes, the
support tool brings an agent in, the order service closes the order, the support tool reads
what the gateway recorded and logs the buyer out of chat everywhere.

Run against `make run` (the dev profile):

    python clients/python/examples/order_life.py [ORDER_ID]

Environment (dev defaults shown; the keys are never valid outside the dev profile):
    CHAT_GATEWAY_ADDR          127.0.0.1:50051
    ORDER_SERVICE_KEY          dev-order-service-key
    SUPPORT_TOOL_KEY           dev-support-tool-key
"""

# ruff: noqa: T201 - an example prints what it did

from __future__ import annotations

import os
import sys
import uuid

from tradetrust.chat.client import (
    ChatGatewayClient,
    ChatGatewayError,
    InvalidArgumentError,
    OrderChannelState,
    Participant,
)


def order_life(order: ChatGatewayClient, support: ChatGatewayClient, order_id: str) -> int:
    """What the order service and the support tool do over an order's life."""
    order.ensure_order_channel(order_id, "buyer-42", "seller-7")

    # The buyer complains: support agent sue-1 joins, the chat is open for posting again.
    agent = Participant("sue-1", display_name="Sue Support")
    channel = support.open_dispute(order_id, agent, reason="item not as described")
    print(f"order {order_id}: {channel.state.value}, agents {list(channel.support_agent_user_ids)}")

    # The agent cannot be the buyer or the seller.
    try:
        support.open_dispute(order_id, "buyer-42")
    except InvalidArgumentError as exc:
        print(f"refused: {exc.field}")

    # The order ends: the chat is frozen (members read it, nobody posts). Closing again
    # changes nothing, so a redelivered "order completed" event is harmless.
    channel = order.close_order_channel(order_id, reason="refunded")
    again = order.close_order_channel(order_id, reason="refunded")
    assert again.state is OrderChannelState.CLOSED and again.update_time == channel.update_time
    print(f"order {order_id}: {channel.state.value}")

    details = support.get_order_channel(order_id)
    for event in details.history:
        agent_note = f" agent={event.agent_user_id}" if event.agent_user_id else ""
        print(f"  {event.action} by {event.service}{agent_note} reason={event.reason!r}")

    # The buyer logs out everywhere: every chat token issued before revoke_time stops working.
    revocation = support.revoke_user_tokens("buyer-42")
    print(f"buyer-42 tokens issued before {revocation.revoke_time.isoformat()} revoked")
    return 0


def main(argv: list[str]) -> int:
    """Entry point."""
    target = os.environ.get("CHAT_GATEWAY_ADDR", "127.0.0.1:50051")
    order_key = os.environ.get("ORDER_SERVICE_KEY", "dev-order-service-key")
    support_key = os.environ.get("SUPPORT_TOOL_KEY", "dev-support-tool-key")
    order_id = argv[1] if len(argv) > 1 else f"ord-{uuid.uuid4().hex[:12]}"
    with (
        ChatGatewayClient(target, order_key) as order,
        ChatGatewayClient(target, support_key) as support,
    ):
        try:
            return order_life(order, support, order_id)
        except ChatGatewayError as exc:
            print(f"gateway error {exc.code.name}: {exc.details}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
