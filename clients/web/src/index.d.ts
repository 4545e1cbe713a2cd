import type { Channel, StreamChat } from "stream-chat";

/** Where the page finds the bridge and Stream (see `chatConfig`). */
export interface ChatConfig {
  /** The bridge's base URL; "" for the page's own origin. */
  bridgeUrl: string;
  /** Stream's API base URL; undefined for Stream's own (`https://chat.stream-io-api.com`). */
  streamBaseUrl?: string;
}

/** Reads `<meta name="tradetrust-chat:bridge-url">` and `<meta name="tradetrust-chat:stream-url">`. */
export function chatConfig(doc?: Document): ChatConfig;

/** A failed bridge call. `code` is the bridge's `error.code` (`unauthenticated`,
 * `permission_denied`, `not_found`, `rate_limited`, `invalid_argument`, `unavailable`,
 * `internal`, ...), or `network` (no answer) or `bad_response` (an answer of the wrong shape). */
export class BridgeError extends Error {
  constructor(
    code: string,
    message: string,
    details?: { status?: number; retryAfterS?: number | null; cause?: unknown },
  );
  readonly code: string;
  /** HTTP status; 0 when no answer arrived. */
  readonly status: number;
  /** Seconds the bridge asked to wait (`Retry-After`), if it did. */
  readonly retryAfterS: number | null;
}

/** The bridge's token answer (`GET /api/chat/stream/token`). */
export interface BridgeToken {
  token: string;
  /** RFC 3339, UTC. */
  expiresAt: string;
  apiKey: string;
  userId: string;
}

export interface TokenProviderOptions {
  /** The bridge's base URL; default from `chatConfig()`. */
  bridgeUrl?: string;
  /** Token lifetime to ask for, seconds (the bridge allows 60 … its maximum); default: the bridge's. */
  ttlSeconds?: number;
  /** 429 answers waited out per shared request before failing; default 3. */
  maxRateLimitRetries?: number;
  /** Longest `Retry-After` honoured, seconds; default 60. */
  maxRetryAfterS?: number;
}

/** A stream-chat token provider: resolves to a fresh user token. Every call made while a
 * request to the bridge is in flight shares it (one per page, bridge URL and TTL). */
export interface TokenProvider {
  (): Promise<string>;
  /** The whole token answer (`apiKey`, `userId`, ...), from the same shared request. */
  fetchToken(): Promise<BridgeToken>;
  readonly bridgeUrl: string;
}

export function createTokenProvider(options?: TokenProviderOptions): TokenProvider;

export type Role = "buyer" | "seller" | "support";
export type OrderState = "open" | "closed" | "disputed";

/** The bridge's channel answer (`POST /api/chat/stream/channel`). */
export interface OrderChannel {
  orderId: string;
  channelType: string;
  channelId: string;
  cid: string;
  role: Role;
  members: string[];
  syncState: "pending" | "synced";
  /** The order's state; "open" when the bridge does not say. */
  state: OrderState;
}

export function fetchOrderChannel(
  orderId: string,
  options?: { bridgeUrl?: string },
): Promise<OrderChannel>;

export interface UseOrderChatOptions {
  bridgeUrl?: string;
  streamBaseUrl?: string;
  ttlSeconds?: number;
  /** A provider of your own (from `createTokenProvider`); it must stay the same object. */
  tokenProvider?: TokenProvider;
}

/** What `useOrderChat` gives the page.
 *
 * `state`: `loading`; `pending` (the bridge has the order, Stream not yet: asked again with
 * back-off); the order's state once the channel is watched (`open`, `closed`, `disputed`);
 * or `error` (`error` says why: a `BridgeError` with code `permission_denied`,
 * `not_found`, `unauthenticated`, ..., or stream-chat's error). */
export interface OrderChat {
  client: StreamChat | null;
  channel: Channel | null;
  state: "loading" | "pending" | OrderState | "error";
  role: Role | null;
  error: unknown;
  order: OrderChannel | null;
  /** True when no message may be sent: a closed order, a frozen channel, or no
   * `send-message` capability (and before the channel is ready). */
  readOnly: boolean;
}

export function useOrderChat(orderId: string, options?: UseOrderChatOptions): OrderChat;

export function isReadOnly(channel: Channel, order: OrderChannel): boolean;
