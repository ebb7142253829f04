'use strict';
/*
 * A namespace's connect_hook: each CONNECT is POSTed to the backend (a
 * Node HTTP server this test starts) with its auth, query, headers and
 * address; a 2xx admits it, the body's data becoming socket.data and its
 * rooms joined; anything else refuses it with the backend's message and
 * data (or the configured message). What the client sends meanwhile waits
 * and comes after, in order. Real clients, 2 workers.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startEmitd, handler, freePort, isReference } = require('./lib/harness');
const { io, ack, closeAll, waitConnected, connectError, httpRequest } = require('./lib/clients');

const skip = isReference() && 'emitd-only: connect_hook is an emitd setting';
const KEY = 'hook-admin-key-0123456789ab';

let emitd;
let backend;
let admin;
const calls = [];
test.before(async () => {
  if (skip) return;
  backend = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      calls.push(body);
      const token = body.auth && body.auth.token;
      const reply = (status, doc) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(doc === undefined ? '' : JSON.stringify(doc));
      };
      if (token === 'good') reply(200, { data: { userId: 'u1', plan: 'pro' }, rooms: ['vip', 'user:u1'] });
      else if (token === 'slow') setTimeout(() => reply(200, { data: { slow: true } }), 300);
      else if (token === 'boom') reply(500);
      else reply(401, { message: 'Bad token', data: { code: 'E_TOKEN' } });
    });
  });
  await new Promise((r) => backend.listen(0, '127.0.0.1', r));
  admin = await freePort();
  const closed = await freePort();
  emitd = await startEmitd({
    config: {
      admin: { listen: `127.0.0.1:${admin}`, keys: [KEY] },
      namespaces: [
        { name: '/', script: handler('main.lua') },
        { name: '/hooked', script: handler('main.lua'),
          connect_hook: { url: `http://127.0.0.1:${backend.address().port}/connect`, timeout: 3000 } },
        { name: '/nobackend', connect_hook: { url: `http://127.0.0.1:${closed}/x`, timeout: 2000,
                                              message: 'Authentication unavailable' } },
      ],
      engineio: undefined,
    },
  });
});
test.after(async () => {
  if (emitd) await emitd.stop();
  if (backend) backend.close();
});

function client(nsp, token, extra = {}) {
  return io(`${emitd.url}${nsp}`, { forceNew: true, reconnection: false, timeout: 5000, transports: ['websocket'],
                                    auth: { token }, ...extra });
}

test('admitted: the backend saw the handshake; its data is socket.data and its rooms are joined', { skip }, async () => {
  const s = client('/hooked', 'good', { query: { clientId: 'c9' } });
  try {
    await waitConnected(s);
    const call = calls.find((c) => c.socketId === s.id);
    assert.ok(call, 'the backend was asked about this socket');
    assert.equal(call.namespace, '/hooked');
    assert.equal(call.path, '/socket.io/');
    assert.deepEqual(call.auth, { token: 'good' });
    assert.equal(call.query.clientId, 'c9');
    assert.equal(call.headers.host, `127.0.0.1:${emitd.port}`);
    assert.equal(typeof call.address, 'string');
    const r = await httpRequest(admin, 'GET', '/v1/sockets?namespace=/hooked&room=vip', {
      headers: { Authorization: `Bearer ${KEY}` },
    });
    const list = JSON.parse(r.body);
    assert.equal(list.total, 1);
    assert.deepEqual(list.sockets[0].data, { userId: 'u1', plan: 'pro' });
    assert.deepEqual(list.sockets[0].rooms.slice().sort(), [s.id, 'user:u1', 'vip'].sort());
    const [echo] = await ack(s, 'echo', 'still served');
    assert.equal(echo, 'still served');
  } finally {
    closeAll(s);
  }
});

test('refused with the backend\'s message and data, or the configured one', { skip }, async () => {
  const bad = client('/hooked', 'nope');
  const boom = client('/hooked', 'boom');
  const none = client('/nobackend', 'x');
  try {
    const [b, m, n] = await Promise.all([connectError(bad), connectError(boom), connectError(none)]);
    assert.equal(b.message, 'Bad token');
    assert.deepEqual(b.data, { code: 'E_TOKEN' });
    assert.equal(m.message, 'Unauthorized');
    assert.equal(n.message, 'Authentication unavailable');
  } finally {
    closeAll(bad, boom, none);
  }
});

test('what the client sends while its CONNECT waits comes after it, in order', { skip }, async () => {
  /* One Manager, two namespaces: the CONNECT of "/" waits behind the
   * slow hook of "/hooked" and is answered after it. */
  const slow = client('/hooked', 'slow');
  const main = slow.io.socket('/', { auth: { token: 'slow' } });
  try {
    await Promise.all([waitConnected(slow), waitConnected(main)]);
    const [a] = await ack(slow, 'echo', 1);
    const [b] = await ack(main, 'echo', 2);
    assert.deepEqual([a, b], [1, 2]);
  } finally {
    closeAll(main, slow);
  }
});
