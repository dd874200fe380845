// A minimal Node `http` SSE server: what a Node developer would write (no npm package).
// Contract: see loadtest/baselines/__init__.py. Usage: node node_sse.js [host] [port]
"use strict";
const http = require("http");
const readline = require("readline");

const host = process.argv[2] || "0.0.0.0";
const port = Number(process.argv[3] || 0);
const clients = new Set();

const server = http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
  res.write("event: put\ndata: {}\n\n");
  clients.add(res);
  req.on("close", () => clients.delete(res));
});
server.keepAliveTimeout = 0;
server.requestTimeout = 0;
server.headersTimeout = 0;
server.listen({ host, port, backlog: 4096 }, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const frame = `event: patch\ndata: ${line}\n\n`;
  for (const res of clients) res.write(frame);
});
process.stdin.on("end", () => process.exit(0));
