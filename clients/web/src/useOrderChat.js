// @ts-check
/**
 * `useOrderChat(orderId)`: the order's channel, connected and watched, for a React page.
 *
 * Order of work: the bridge's channel answer first (so a stranger never opens a socket; a
 * pending channel is asked for again until Stream has it), then a token, `connectUser` with
 * the provider, and `channel.watch()`. On unmount the client disconnects (its socket closes).
 * Under React StrictMode's mount-unmount-mount the first run stops at its next step and
 * closes whatever it opened, so one connection stays. Leaving the page (`pagehide`, also into
 * the back/forward cache) closes the socket; a page restored from that cache connects anew.
 */

import { useEffect, useMemo, useState } from "react";
import { StreamChat } from "stream-chat";

import { chatConfig, fetchOrderChannel } from "./bridge.js";
import { reuseTokenAfterStaleRefusals } from "./staleTokens.js";
import { createTokenProvider } from "./tokenProvider.js";

const FIRST_PENDING_RETRY_MS = 1000;
const MAX_PENDING_RETRY_MS = 10000;
const MAX_PENDING_WAIT_MS = 5 * 60 * 1000;

/** @type {import("./index").OrderChat} */
const LOADING = Object.freeze({
  client: null,
  channel: null,
  state: "loading",
  role: null,
  error: null,
  order: null,
  readOnly: true,
});

/**
 * @param {import("stream-chat").Channel} channel
 * @param {import("./index").OrderChannel} order
 */
export function isReadOnly(channel, order) {
  const capabilities = channel.data?.own_capabilities;
  return (
    order.state === "closed" ||
    channel.data?.frozen === true ||
    (Array.isArray(capabilities) && !capabilities.includes("send-message"))
  );
}

/**
 * @param {number} ms
 * @param {() => boolean} cancelled
 */
async function pause(ms, cancelled) {
  const step = 250;
  for (let waited = 0; waited < ms && !cancelled(); waited += step) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(step, ms - waited)));
  }
}

/**
 * @param {string} orderId
 * @param {import("./index").UseOrderChatOptions} [options]
 * @returns {import("./index").OrderChat}
 */
export function useOrderChat(orderId, options = {}) {
  const defaults = useMemo(() => chatConfig(), []);
  const bridgeUrl = options.bridgeUrl ?? defaults.bridgeUrl;
  const streamBaseUrl = options.streamBaseUrl ?? defaults.streamBaseUrl;
  const ttlSeconds = options.ttlSeconds;
  const provider = useMemo(
    () => options.tokenProvider ?? createTokenProvider({ bridgeUrl, ttlSeconds }),
    [options.tokenProvider, bridgeUrl, ttlSeconds],
  );
  const [chat, setChat] = useState(LOADING);
  // Bumped when the page comes back from the back/forward cache: connect again.
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    let cancelled = false;
    const isCancelled = () => cancelled;
    /** @type {StreamChat | null} */
    let client = null;
    /** @type {(() => void)[]} */
    const undo = [];
    setChat(LOADING);

    // Leaving the page (even into the back/forward cache, where the page and its socket
    // would otherwise live on) closes the connection; coming back opens a new one.
    const onPageHide = () => {
      client?.disconnectUser().catch(() => {});
    };
    /** @param {PageTransitionEvent} event */
    const onPageShow = (event) => {
      if (event.persisted) setGeneration((n) => n + 1);
    };
    window.addEventListener("pagehide", onPageHide);
    window.addEventListener("pageshow", onPageShow);
    undo.push(() => {
      window.removeEventListener("pagehide", onPageHide);
      window.removeEventListener("pageshow", onPageShow);
    });

    (async () => {
      let order = await fetchOrderChannel(orderId, { bridgeUrl });
      for (
        let waitedMs = 0, delayMs = FIRST_PENDING_RETRY_MS;
        order.syncState !== "synced" && !cancelled;
        waitedMs += delayMs, delayMs = Math.min(delayMs * 2, MAX_PENDING_RETRY_MS)
      ) {
        if (waitedMs >= MAX_PENDING_WAIT_MS) throw new Error("the order's chat is not ready yet");
        const pendingOrder = order;
        setChat({ ...LOADING, state: "pending", role: pendingOrder.role, order: pendingOrder });
        await pause(delayMs, isCancelled);
        if (!cancelled) order = await fetchOrderChannel(orderId, { bridgeUrl });
      }
      if (cancelled) return;
      const first = await provider.fetchToken();
      if (cancelled) return;

      const created = new StreamChat(first.apiKey, streamBaseUrl ? { baseURL: streamBaseUrl } : {});
      client = created;
      const tokens = reuseTokenAfterStaleRefusals(created, provider, first.token);
      undo.push(tokens.dispose);
      await created.connectUser({ id: first.userId }, tokens.provider);
      if (cancelled) return;
      const channel = created.channel(order.channelType, order.channelId);
      await channel.watch();
      if (cancelled) return;

      const ready = order;
      const show = () =>
        setChat({
          client: created,
          channel,
          state: ready.state,
          role: ready.role,
          error: null,
          order: ready,
          readOnly: isReadOnly(channel, ready),
        });
      const subscription = channel.on("channel.updated", show);
      undo.push(() => subscription.unsubscribe());
      show();
    })().catch((error) => {
      if (!cancelled) setChat({ ...LOADING, state: "error", error, readOnly: true });
    });

    return () => {
      cancelled = true;
      for (const step of undo.splice(0)) step();
      // Closes the socket, or stops a handshake still under way.
      client?.disconnectUser().catch(() => {});
    };
  }, [orderId, bridgeUrl, streamBaseUrl, provider, generation]);

  return chat;
}
