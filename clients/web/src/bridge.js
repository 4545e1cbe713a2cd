// @ts-check
/**
 * Calls to the chat gateway's HTTP bridge: JSON in and out, the session cookie always sent
 * (`credentials: "include"`), failures as {@link BridgeError} carrying the bridge's
 * `error.code`.
 */

export const TOKEN_PATH = "/api/chat/stream/token";
export const CHANNEL_PATH = "/api/chat/stream/channel";

const META_BRIDGE_URL = "tradetrust-chat:bridge-url";
const META_STREAM_URL = "tradetrust-chat:stream-url";

/** A failed bridge call: `code` is the bridge's `error.code` (or `network`, `bad_response`). */
export class BridgeError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{status?: number, retryAfterS?: number | null, cause?: unknown}} [details]
   */
  constructor(code, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "BridgeError";
    /** @type {string} */
    this.code = code;
    /** @type {number} HTTP status; 0 when no answer arrived */
    this.status = details.status ?? 0;
    /** @type {number | null} seconds the bridge asked to wait (`Retry-After`), if any */
    this.retryAfterS = details.retryAfterS ?? null;
  }
}

/**
 * Where the page finds the bridge and Stream: `<meta name="tradetrust-chat:bridge-url">`
 * ("" or absent: the page's own origin) and `<meta name="tradetrust-chat:stream-url">`
 * (absent: Stream's own API).
 * @param {Document | undefined} [doc]
 * @returns {import("./index").ChatConfig}
 */
export function chatConfig(doc = globalThis.document) {
  /** @param {string} name */
  const meta = (name) =>
    doc?.querySelector(`meta[name="${name}"]`)?.getAttribute("content")?.trim() || undefined;
  return { bridgeUrl: meta(META_BRIDGE_URL) ?? "", streamBaseUrl: meta(META_STREAM_URL) };
}

/**
 * `Retry-After` in seconds (delta-seconds or an HTTP date); null when absent or unreadable.
 * @param {string | null} value
 * @param {number} [nowMs]
 */
export function retryAfterSeconds(value, nowMs = Date.now()) {
  if (value === null || value.trim() === "") return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - nowMs) / 1000));
}

/**
 * One bridge call; the JSON answer, or a BridgeError.
 * @param {string} bridgeUrl
 * @param {string} path
 * @param {RequestInit} [init]
 * @returns {Promise<any>}
 */
export async function bridgeRequest(bridgeUrl, path, init = {}) {
  /** @type {Response} */
  let response;
  try {
    response = await fetch(bridgeUrl.replace(/\/+$/, "") + path, {
      credentials: "include",
      cache: "no-store",
      ...init,
      headers: { Accept: "application/json", ...init.headers },
    });
  } catch (cause) {
    throw new BridgeError("network", `the chat gateway cannot be reached: ${cause}`, { cause });
  }
  /** @type {any} */
  let body = null;
  try {
    body = await response.json();
  } catch (cause) {
    if (response.ok) {
      throw new BridgeError("bad_response", "the chat gateway answered with no JSON", {
        status: response.status,
        cause,
      });
    }
  }
  if (response.ok) return body;
  const error = body && typeof body.error === "object" ? body.error : {};
  throw new BridgeError(
    typeof error.code === "string" ? error.code : `http_${response.status}`,
    typeof error.message === "string" ? error.message : `HTTP ${response.status}`,
    { status: response.status, retryAfterS: retryAfterSeconds(response.headers.get("Retry-After")) },
  );
}

const ORDER_STATES = new Set(["open", "closed", "disputed"]);

/**
 * The order's chat channel for the session's user: `POST /api/chat/stream/channel`.
 * Rejects with BridgeError `permission_denied` (403), `not_found` (404), `unauthenticated`
 * (401), ...
 * @param {string} orderId
 * @param {{bridgeUrl?: string}} [options]
 * @returns {Promise<import("./index").OrderChannel>}
 */
export async function fetchOrderChannel(orderId, options = {}) {
  const bridgeUrl = options.bridgeUrl ?? chatConfig().bridgeUrl;
  const body = await bridgeRequest(bridgeUrl, CHANNEL_PATH, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ orderId }),
  });
  for (const field of ["orderId", "channelType", "channelId", "cid", "role", "syncState"]) {
    if (typeof body?.[field] !== "string") {
      throw new BridgeError("bad_response", `the channel answer has no ${field}`, { status: 200 });
    }
  }
  return {
    ...body,
    members: Array.isArray(body.members) ? body.members : [],
    state: ORDER_STATES.has(body.state) ? body.state : "open",
  };
}
