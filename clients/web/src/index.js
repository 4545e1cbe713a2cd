// @ts-check
/**
 * @tradetrust/chat-web: the browser side of TradeTrust's order chat on Stream.
 * Types: index.d.ts.
 */

export { BridgeError, chatConfig, fetchOrderChannel } from "./bridge.js";
export { createTokenProvider } from "./tokenProvider.js";
export { isReadOnly, useOrderChat } from "./useOrderChat.js";
