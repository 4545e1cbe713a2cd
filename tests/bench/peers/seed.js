// The token route as stream-chat users commonly write it: node:http, jsonwebtoken to
// verify the session, the stream-chat server client's createToken for the user token.
"use strict";
const http = require("node:http");
const jwt = require("jsonwebtoken");
const { StreamChat } = require("stream-chat");

const { PORT, SESSION_SECRET, STREAM_KEY, STREAM_SECRET, TTL = "86400" } = process.env;

http
  .createServer((req, res) => {
    const url = new URL(req.url, "http://localhost");
    if (url.pathname !== "/api/chat/stream/token") {
      res.writeHead(404).end();
      return;
    }
    const auth = req.headers.authorization || "";
    let session;
    try {
      session = jwt.verify(auth.replace(/^Bearer /, ""), SESSION_SECRET, {
        algorithms: ["HS256"],
      });
    } catch (err) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "unauthenticated", message: err.message } }));
      return;
    }
    const serverClient = StreamChat.getInstance(STREAM_KEY, STREAM_SECRET);
    const iat = Math.floor(Date.now() / 1000);
    const exp = iat + Number(TTL);
    const token = serverClient.createToken(session.sub, exp, iat);
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(
      JSON.stringify({
        token,
        expiresAt: new Date(exp * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"),
        apiKey: STREAM_KEY,
        userId: session.sub,
      }),
    );
  })
  .listen(Number(PORT), "127.0.0.1");
