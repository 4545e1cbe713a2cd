// @ts-check
/**
 * The order chat at /chat/stream/[orderId], on stream-chat-react: the order's messages,
 * image attachments (images only) and read receipts ("sent", "read"), for the buyer, the
 * seller and TradeTrust support; a clear page for every state the order's chat can be in.
 */

import { Channel, Chat, MessageInput, MessageList, Window } from "stream-chat-react";

import { useOrderChat } from "../../../index.js";
import { ImagesOnly, MarkReadOnArrival } from "./behaviour.js";
import { OrderHeader, OrderNotice, StatePanel } from "./panels.jsx";
import { OrderMessageStatus } from "./receipts.jsx";

/** Messages of an order are a record of what was agreed: no editing, deleting, threads. */
const NO_MESSAGE_ACTIONS = /** @type {string[]} */ ([]);

/**
 * @param {{
 *   params: {orderId: string},
 *   bridgeUrl?: string,
 *   streamBaseUrl?: string,
 * }} props
 */
export default function OrderChatPage({ params, bridgeUrl, streamBaseUrl }) {
  const { orderId } = params;
  const chat = useOrderChat(orderId, { bridgeUrl, streamBaseUrl });
  const { client, channel } = chat;

  if (client === null || channel === null) {
    return <StatePanel orderId={orderId} chat={chat} />;
  }
  return (
    <main className="tt-order-chat" data-state={chat.state} data-role={chat.role}>
      <Chat client={client} theme="str-chat__theme-light">
        <ImagesOnly client={client} />
        <Channel channel={channel} MessageStatus={OrderMessageStatus}>
          <MarkReadOnArrival />
          <Window>
            <OrderHeader orderId={orderId} chat={chat} />
            <MessageList messageActions={NO_MESSAGE_ACTIONS} />
            {chat.readOnly ? <OrderNotice chat={chat} /> : <MessageInput />}
          </Window>
        </Channel>
      </Chat>
    </main>
  );
}
