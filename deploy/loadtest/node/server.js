'use strict';
/*
 * server.js - Node.js socket.io 4.8 with the same handlers as
 * ../emitd/bench.lua, so that emitd-bench measures both servers the same
 * way (deploy/loadtest/run.sh runs them side by side).
 *
 *   node server.js [port]      (listens on 127.0.0.1 only)
 */
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 3000);
const MAX_ROOM_NAME = 64;
const validRoom = (room) => typeof room === 'string' && room.length > 0 && room.length <= MAX_ROOM_NAME;

const httpServer = http.createServer();
const io = new Server(httpServer, { pingInterval: 25000, pingTimeout: 20000, connectTimeout: 45000 });

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
