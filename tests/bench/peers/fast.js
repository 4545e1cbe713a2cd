// The same route written for speed: secrets pre-wrapped as crypto KeyObjects, HS256
// verified and signed directly with node:crypto, constant header precomputed.
"use strict";
const http = require("node:http");
const crypto = require("node:crypto");

const { PORT, SESSION_SECRET, STREAM_KEY, STREAM_SECRET, TTL = "86400" } = process.env;
const sessionKey = crypto.createSecretKey(Buffer.from(SESSION_SECRET));
const streamKey = crypto.createSecretKey(Buffer.from(STREAM_SECRET));
const HEADER = Buffer.from('{"alg":"HS256","typ":"JWT"}').toString("base64url");
const ttl = Number(TTL);

function verifySession(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  const header = JSON.parse(Buffer.from(parts[0], "base64url"));
  if (header.alg !== "HS256") return null;
  const mac = crypto.createHmac("sha256", sessionKey).update(`${parts[0]}.${parts[1]}`).digest();
  const sig = Buffer.from(parts[2], "base64url");
  if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac)) return null;
  const claims = JSON.parse(Buffer.from(parts[1], "base64url"));
  const now = Date.now() / 1000;
  if (typeof claims.exp !== "number" || claims.exp <= now) return null;
  if (typeof claims.nbf === "number" && claims.nbf > now) return null;
  return typeof claims.sub === "string" ? claims : null;
}

function sign(userId, iat, exp) {
  const payload = Buffer.from(JSON.stringify({ user_id: userId, iat, exp })).toString("base64url");
  const input = `${HEADER}.${payload}`;
  return `${input}.${crypto.createHmac("sha256", streamKey).update(input).digest("base64url")}`;
}

http
  .createServer((req, res) => {
    if (!req.url.startsWith("/api/chat/stream/token")) {
      res.writeHead(404).end();
      return;
    }
    const auth = req.headers.authorization || "";
    let session = null;
    try {
      session = auth.startsWith("Bearer ") ? verifySession(auth.slice(7)) : null;
    } catch {
      session = null;
    }
    if (!session) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end('{"error":{"code":"unauthenticated","message":"bad session"}}');
      return;
    }
    const iat = Math.floor(Date.now() / 1000);
    const exp = iat + ttl;
    const body = JSON.stringify({
      token: sign(session.sub, iat, exp),
      expiresAt: new Date(exp * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"),
      apiKey: STREAM_KEY,
      userId: session.sub,
    });
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(body);
  })
  .listen(Number(PORT), "127.0.0.1");
