// The test harness: clients/web's hook and token provider on a page of their own, with the
// real stream-chat, driven by the browser tests through `window.harness`. Built in React's
// development mode, so <StrictMode> mounts, unmounts and mounts again as in development.

import { StrictMode, useEffect } from "react";
import { createRoot } from "react-dom/client";
import { StreamChat } from "stream-chat";

import {
  BridgeError,
  chatConfig,
  createTokenProvider,
  useOrderChat,
} from "../../../clients/web/src/index.js";

const config = chatConfig();
let root = null;

function Probe({ orderId, tick }) {
  const chat = useOrderChat(orderId);
  useEffect(() => {
    window.harness.chat = chat;
  }, [chat]);
  return (
    <p data-state={chat.state} data-tick={tick}>
      {chat.state}
    </p>
  );
}

const outcome = (promise) =>
  promise.then(
    (value) => ({ ok: true, value }),
    (error) => ({
      ok: false,
      name: error?.name ?? null,
      code: error?.code ?? null,
      status: error?.status ?? null,
      message: String(error?.message ?? error),
    }),
  );

// n channel queries at once, each a REST call stream-chat makes with its current token.
const storm = (channel, n) =>
  Promise.all(
    Array.from({ length: n }, () => outcome(channel.query({ messages: { limit: 1 } }).then(() => true))),
  );

window.harness = {
  chat: null,
  bare: null,

  mount(orderId) {
    root = createRoot(document.getElementById("root"));
    window.harness.render(orderId, 0);
  },

  // Render again with a new prop: the hook must keep its provider and connection.
  render(orderId, tick) {
    root.render(
      <StrictMode>
        <Probe orderId={orderId} tick={tick} />
      </StrictMode>,
    );
  },

  unmount() {
    root.unmount();
    root = null;
  },

  state() {
    const chat = window.harness.chat;
    return chat && { state: chat.state, role: chat.role, readOnly: chat.readOnly, cid: chat.channel?.cid ?? null };
  },

  storm(n) {
    return storm(window.harness.chat.channel, n);
  },

  // stream-chat with createTokenProvider alone (no useOrderChat), as the README's pattern.
  async connectBare(orderId) {
    const provider = createTokenProvider({ bridgeUrl: config.bridgeUrl });
    const first = await provider.fetchToken();
    const client = new StreamChat(first.apiKey, { baseURL: config.streamBaseUrl });
    await client.connectUser({ id: first.userId }, provider);
    const response = await fetch(`${config.bridgeUrl}/api/chat/stream/channel`, {
      method: "POST",
      credentials: "include",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ orderId }),
    });
    const { channelType, channelId } = await response.json();
    const channel = client.channel(channelType, channelId);
    await channel.watch();
    window.harness.bare = { client, channel };
    return channel.cid;
  },

  bareStorm(n) {
    return storm(window.harness.bare.channel, n);
  },

  // n calls of one provider at once: each resolves to a token, or says why not.
  providerCalls(n, options = {}) {
    const provider = createTokenProvider({ bridgeUrl: config.bridgeUrl, ...options });
    return Promise.all(Array.from({ length: n }, () => outcome(provider())));
  },

  isBridgeError(value) {
    return value instanceof BridgeError;
  },
};
window.harnessReady = true;
