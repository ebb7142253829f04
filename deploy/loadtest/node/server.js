'use strict';
/*
 * server.js - Node.js socket.io 4.8 with the same handlers as
 * ../emitd/bench.lua, so that emitd-bench measures both servers the same
 * way (deploy/loadtest/run.sh runs them side by side).
 *
 * POST /v1/emit {"to": room?, "event": name, "args": [...]} is the backend
 * endpoint a Node application would write, calling io.to(room).emit(): the
 * peer of emitd's backend API in deploy/loadtest/publish.js.
 *
 *   node server.js [port]      (listens on 127.0.0.1 only; REDIS_URL=redis://...
 *                               joins a cluster through @socket.io/redis-adapter)
 */
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 3000);
const MAX_ROOM_NAME = 64;
const validRoom = (room) => typeof room === 'string' && room.length > 0 && room.length <= MAX_ROOM_NAME;

/* Made before the Server attaches: socket.io hands this listener only the
 * requests that are not its own. */
const httpServer = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/v1/emit') {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on('data', (d) => chunks.push(d));
  req.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (e) {
      res.writeHead(400, { 'Content-Type': 'application/json' }).end('{"error":"bad_request"}');
      return;
    }
    const target = body.to ? io.to(body.to) : io;
    target.emit(body.event, ...(Array.isArray(body.args) ? body.args : []));
    res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
  });
});
const io = new Server(httpServer, { pingInterval: 25000, pingTimeout: 20000, connectTimeout: 45000 });

/* REDIS_URL: in a cluster through @socket.io/redis-adapter (publish.js --redis 1). */
if (process.env.REDIS_URL) {
  const { createClient } = require('redis');
  const { createAdapter } = require('@socket.io/redis-adapter');
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  Promise.all([pub.connect(), sub.connect()]).then(() => io.adapter(createAdapter(pub, sub)));
}

io.on('connection', (socket) => {
  socket.on('echo', (...args) => {
    const ack = args[args.length - 1];
    if (typeof ack === 'function') ack(...args.slice(0, -1));
  });
  socket.on('join', (room, ack) => {
    if (validRoom(room)) socket.join(room);
    if (typeof ack === 'function') ack(validRoom(room));
  });
  socket.on('publish', (room, payload, ack) => {
    if (validRoom(room)) io.to(room).emit('tick', payload);
    if (typeof ack === 'function') ack(validRoom(room));
  });
});

httpServer.listen(port, '127.0.0.1', () => {
  process.stderr.write(`socket.io ${require('socket.io/package.json').version} on 127.0.0.1:${port}\n`);
});
process.on('SIGTERM', () => { io.close(); process.exit(0); });
