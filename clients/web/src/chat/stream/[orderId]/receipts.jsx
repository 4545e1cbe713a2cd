// @ts-check
/** Read receipts in words: "sent" until the other side has read the message, then "read". */

import { MessageStatus } from "stream-chat-react";

const Sent = () => (
  <span className="tt-receipt" data-receipt="sent">
    sent
  </span>
);
const Read = () => (
  <span className="tt-receipt tt-receipt--read" data-receipt="read">
    read
  </span>
);

/** @param {import("stream-chat-react").MessageStatusProps} props */
export function OrderMessageStatus(props) {
  return (
    <MessageStatus
      {...props}
      MessageSentStatus={Sent}
      MessageDeliveredStatus={Sent}
      MessageReadStatus={Read}
    />
  );
}
