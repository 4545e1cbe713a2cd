// @ts-check
/**
 * The token provider for stream-chat's `connectUser(user, provider)`.
 *
 * stream-chat calls its provider once per request that Stream refused with code 40 (token
 * expired), with nothing to merge simultaneous calls. This provider keeps ONE request to the
 * bridge in flight per page (per bridge URL and TTL): every caller meanwhile shares it. A 429
 * is waited out as the bridge's `Retry-After` says, inside that same shared request.
 */

import { BridgeError, TOKEN_PATH, bridgeRequest, chatConfig } from "./bridge.js";

/** @type {Map<string, Promise<import("./index").BridgeToken>>} */
const inFlight = new Map();

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * @param {import("./index").TokenProviderOptions} [options]
 * @returns {import("./index").TokenProvider}
 */
export function createTokenProvider(options = {}) {
  const bridgeUrl = options.bridgeUrl ?? chatConfig().bridgeUrl;
  const { ttlSeconds, maxRateLimitRetries = 3, maxRetryAfterS = 60 } = options;
  const path = ttlSeconds === undefined ? TOKEN_PATH : `${TOKEN_PATH}?ttl=${ttlSeconds}`;
  const key = `${bridgeUrl}\n${path}`;

  /** @returns {Promise<import("./index").BridgeToken>} */
  async function request() {
    for (let attempt = 0; ; attempt += 1) {
      try {
        const body = await bridgeRequest(bridgeUrl, path);
        if (typeof body?.token !== "string" || typeof body?.apiKey !== "string") {
          throw new BridgeError("bad_response", "the token answer has no token", { status: 200 });
        }
        return body;
      } catch (error) {
        const limited = error instanceof BridgeError && error.code === "rate_limited";
        if (!limited || attempt >= maxRateLimitRetries) throw error;
        const waitS = Math.min(error.retryAfterS ?? 1, maxRetryAfterS);
        await sleep(waitS * 1000);
      }
    }
  }

  /** @returns {Promise<import("./index").BridgeToken>} */
  function fetchToken() {
    let pending = inFlight.get(key);
    if (pending === undefined) {
      pending = request();
      inFlight.set(key, pending);
      const settled = pending;
      const forget = () => {
        if (inFlight.get(key) === settled) inFlight.delete(key);
      };
      settled.then(forget, forget);
    }
    return pending;
  }

  return Object.assign(async () => (await fetchToken()).token, { fetchToken, bridgeUrl });
}
