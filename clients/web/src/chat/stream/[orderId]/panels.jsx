// @ts-check
/** What the page shows around (or instead of) the chat: its states, header and notices. */

import { BridgeError } from "../../../index.js";

/** @typedef {import("../../../index").OrderChat} OrderChat */

const ROLE_LABEL = { buyer: "You are the buyer", seller: "You are the seller", support: "TradeTrust support" };
const STATE_LABEL = { open: "Open", closed: "Closed", disputed: "In dispute" };

/**
 * @param {unknown} error
 * @param {string} orderId
 * @returns {{code: string, title: string, detail: string, retry: boolean}}
 */
function describe(error, orderId) {
  const code = error instanceof BridgeError ? error.code : "stream_error";
  switch (code) {
    case "permission_denied":
      return {
        code,
        title: "This chat is not yours",
        detail: `You are not a participant in order ${orderId}, so you cannot see its chat.`,
        retry: false,
      };
    case "not_found":
      return {
        code,
        title: "Order not found",
        detail: `There is no order ${orderId}. Check the link you followed.`,
        retry: false,
      };
    case "unauthenticated":
      return {
        code,
        title: "Please sign in",
        detail: "Your TradeTrust session has ended. Sign in again to open this chat.",
        retry: false,
      };
    default:
      return {
        code,
        title: "The chat is unavailable",
        detail: "The chat could not be opened just now. Try again in a moment.",
        retry: true,
      };
  }
}

/** @param {{orderId: string, chat: OrderChat}} props */
export function StatePanel({ orderId, chat }) {
  if (chat.state === "error") {
    const { code, title, detail, retry } = describe(chat.error, orderId);
    return (
      <main className="tt-order-chat tt-panel" data-state="error" data-error-code={code} role="alert">
        <h1>{title}</h1>
        <p>{detail}</p>
        {retry && (
          <button type="button" onClick={() => window.location.reload()}>
            Try again
          </button>
        )}
      </main>
    );
  }
  if (chat.state === "pending") {
    return (
      <main className="tt-order-chat tt-panel" data-state="pending" aria-busy="true">
        <h1>Setting up the chat</h1>
        <p>The chat for order {orderId} is being set up. It opens by itself in a moment.</p>
      </main>
    );
  }
  return (
    <main className="tt-order-chat tt-panel" data-state="loading" aria-busy="true">
      <p>Opening the chat for order {orderId}…</p>
    </main>
  );
}

/** @param {{orderId: string, chat: OrderChat}} props */
export function OrderHeader({ orderId, chat }) {
  const state = chat.order?.state ?? "open";
  return (
    <header className="tt-order-header">
      <h1>Order {orderId}</h1>
      {chat.role && (
        <span className={`tt-badge tt-badge--${chat.role}`} data-role={chat.role}>
          {ROLE_LABEL[chat.role] ?? chat.role}
        </span>
      )}
      <span className={`tt-badge tt-badge--${state}`} data-order-state={state}>
        {STATE_LABEL[state]}
      </span>
      {state === "disputed" && (
        <p className="tt-header-note">
          This order is in dispute: TradeTrust support can read this chat and write in it.
        </p>
      )}
    </header>
  );
}

/** @param {{chat: OrderChat}} props */
export function OrderNotice({ chat }) {
  const closed = chat.order?.state === "closed";
  return (
    <p className="tt-notice" data-notice={closed ? "closed" : "read-only"} role="status">
      {closed
        ? "This order is closed. Its chat stays readable, but no new messages can be sent."
        : "This chat is read-only: no new messages can be sent."}
    </p>
  );
}
