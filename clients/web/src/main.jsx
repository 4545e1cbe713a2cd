// @ts-check
/**
 * The browser entry of /chat/stream/{orderId}: the order id from the path, the bridge and
 * Stream URLs from the page's <meta> tags (see chatConfig), rendered in StrictMode.
 */

import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import "stream-chat-react/dist/css/v2/index.css";
import "./page.css";

import OrderChatPage from "./chat/stream/[orderId]/page.jsx";

const PATH = /^\/chat\/stream\/([^/]+)\/?$/;

const container = document.getElementById("root");
if (container === null) throw new Error("the page has no #root element");
const match = PATH.exec(window.location.pathname);
const root = createRoot(container);
root.render(
  <StrictMode>
    {match ? (
      <OrderChatPage params={{ orderId: decodeURIComponent(match[1]) }} />
    ) : (
      <main className="tt-order-chat tt-panel" data-state="error" data-error-code="bad_path">
        <h1>No order here</h1>
        <p>Order chats live at /chat/stream/&lt;order id&gt;.</p>
      </main>
    )}
  </StrictMode>,
);
