// @ts-check
/**
 * Fewer token refreshes after expiry, for one StreamChat client.
 *
 * When many requests are in flight as the token expires, Stream refuses each with code 40
 * and stream-chat asks the provider again for each, spread over up to 25 s of its own
 * back-off: one refresh would do. This wrapper sees, on the client's HTTP responses, which
 * token each refused request carried. When stream-chat then asks for a token because of a
 * refusal of a token the page has already replaced, it gets the replacement at once, with no
 * new bridge request; a refusal of the current token (or a WebSocket one) fetches a new token.
 */

const MAX_REMEMBERED = 1000;
const TOKEN_EXPIRED = 40;

/**
 * @param {import("stream-chat").StreamChat} client
 * @param {() => Promise<string>} provider
 * @param {string} firstToken the token already fetched for `connectUser` (used once)
 * @returns {{provider: () => Promise<string>, dispose: () => void}}
 */
export function reuseTokenAfterStaleRefusals(client, provider, firstToken) {
  /** @type {string[]} tokens of the requests Stream refused as expired, oldest first */
  const refused = [];
  /** @type {string | null} */
  let unused = firstToken;
  /** @type {string | null} */
  let latest = null;

  const interceptor = client.axiosInstance.interceptors.response.use(undefined, (error) => {
    const response = error?.response;
    if (response?.status === 401 && response.data?.code === TOKEN_EXPIRED) {
      const headers = error.config?.headers;
      const used = headers?.get?.("Authorization") ?? headers?.Authorization;
      if (typeof used === "string" && refused.length < MAX_REMEMBERED) refused.push(used);
    }
    return Promise.reject(error);
  });

  const wrapped = async () => {
    if (unused !== null) {
      latest = unused;
      unused = null;
      return latest;
    }
    const refusedToken = refused.shift();
    if (refusedToken !== undefined && latest !== null && refusedToken !== latest) return latest;
    latest = await provider();
    return latest;
  };

  return {
    provider: wrapped,
    dispose: () => client.axiosInstance.interceptors.response.eject(interceptor),
  };
}
