'use strict';
/*
 * Several Socket.IO endpoints in one instance: each path has its own
 * namespaces, scripts and settings (transports, ping, CORS), a namespace "/" of
 * one is not the "/" of another (rooms, broadcasts, counts), the backend
 * API reaches one endpoint's namespace by its path, and a namespace is
 * only served on its own path. Real clients, 2 workers.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { startEmitd, handler, delay, freePort, isReference } = require('./lib/harness');
const { io, ack, closeAll, waitConnected, connectError, httpRequest } = require('./lib/clients');

const skip = isReference() && 'emitd-only: several endpoints per instance is an emitd setting';
const KEY = 'endpoints-admin-key-0123456789';

let emitd;
let admin;
test.before(async () => {
  if (skip) return;
  admin = await freePort();
  emitd = await startEmitd({
    config: {
      ping_interval: 25000,
      admin: { listen: `127.0.0.1:${admin}`, keys: [KEY] },
      namespaces: [{ name: '/', script: handler('ep_main.lua') }],
      socketio: [
        { path: '/realtime', transports: ['websocket'], ping_interval: 7000,
          namespaces: [{ name: '/', script: handler('ep_realtime.lua') }] },
        { path: '/ws', ping_interval: 9000, cors: { origins: ['http://ws.example'] },
          namespaces: [{ name: '/device/:deviceId', api_key: { keys: ['dev-key'], invalid_message: 'Invalid API key' } }] },
      ],
      engineio: undefined,
    },
  });
});
test.after(async () => { if (emitd) await emitd.stop(); });

function sock(path, nsp = '/', opts = {}) {
  return io(`${emitd.url}${nsp === '/' ? '' : nsp}`, {
    path, forceNew: true, reconnection: false, timeout: 5000, transports: ['websocket'], ...opts,
  });
}

test('"/" of /socket.io/ and "/" of /realtime are two namespaces with their own scripts and rooms', { skip }, async () => {
  const a = sock('/socket.io/');
  const b = sock('/realtime');
  const b2 = sock('/realtime');
  const heard = { a: [], b: [], b2: [] };
  a.on('heard', (...x) => heard.a.push(x));
  b.on('heard', (...x) => heard.b.push(x));
  b2.on('heard', (...x) => heard.b2.push(x));
  try {
    await Promise.all([waitConnected(a), waitConnected(b), waitConnected(b2)]);
    const [wa] = await ack(a, 'who');
    const [wb] = await ack(b, 'who');
    assert.deepEqual({ ...wa, size: 0 }, { tag: 'main', nsp: '/', name: '/', size: 0 });
    assert.deepEqual({ ...wb, size: 0 }, { tag: 'realtime', nsp: '/', name: '/', size: 0 });
    await ack(b, 'shout', 'hi');
    await ack(a, 'shout', 'yo');
    for (let i = 0; i < 100 && (heard.b2.length < 1 || heard.a.length < 1); i++) await delay(20);
    await delay(100);
    assert.deepEqual(heard.b2, [['realtime', 'hi']]);
    assert.deepEqual(heard.b, [['realtime', 'hi']]);
    assert.deepEqual(heard.a, [['main', 'yo']], 'a room of one endpoint is not the other\'s');
    const [wb2] = await ack(b2, 'who');
    assert.equal(wb2.size, 2, 'two sockets in /realtime\'s "/"');
  } finally {
    closeAll(a, b, b2);
  }
});

test('each endpoint has its own transports and ping settings', { skip }, async () => {
  const open = async (path) => {
    const r = await httpRequest(emitd.port, 'GET', `${path}?EIO=4&transport=polling`);
    return r;
  };
  const main = await open('/socket.io/');
  assert.equal(main.status, 200);
  assert.equal(JSON.parse(main.body.slice(1)).pingInterval, 25000);
  const ws = await open('/ws/');
  assert.equal(JSON.parse(ws.body.slice(1)).pingInterval, 9000);
  const rt = await open('/realtime/');
  assert.equal(rt.status, 400, '/realtime takes WebSocket only');
  const b = sock('/realtime');
  try {
    await waitConnected(b);
    assert.equal(b.io.engine._pingInterval ?? b.io.engine.pingInterval, 7000);
  } finally {
    closeAll(b);
  }
});

test('each endpoint has its own CORS; the others take the top level\'s', { skip }, async () => {
  const get = (path, origin) => httpRequest(emitd.port, 'GET', `${path}?EIO=4&transport=polling`,
                                            { headers: { Origin: origin } });
  let r = await get('/ws/', 'http://ws.example');
  assert.equal(r.headers['access-control-allow-origin'], 'http://ws.example');
  assert.equal(r.headers['access-control-allow-credentials'], undefined);
  r = await get('/ws/', 'http://good.example');
  assert.equal(r.headers['access-control-allow-origin'], undefined);
  r = await get('/socket.io/', 'http://good.example');
  assert.equal(r.headers['access-control-allow-origin'], 'http://good.example');
  assert.equal(r.headers['access-control-allow-credentials'], 'true');
  r = await get('/socket.io/', 'http://ws.example');
  assert.equal(r.headers['access-control-allow-origin'], undefined);
});

test('a namespace is served on its own path only; its api_key applies there', { skip }, async () => {
  const wrong = sock('/socket.io/', '/device/1');
  const nokey = sock('/ws', '/device/1');
  const badkey = sock('/ws', '/device/1', { query: { apiKey: 'nope' } });
  try {
    /* listening on all three at once: each may be refused before the others */
    const [w, n, b] = await Promise.all([connectError(wrong), connectError(nokey), connectError(badkey)]);
    assert.equal(w.message, 'Invalid namespace');
    assert.equal(n.message, 'API key is required');
    assert.equal(b.message, 'Invalid API key');
  } finally {
    closeAll(wrong, nokey, badkey);
  }
});

test('the backend API reaches one endpoint\'s namespace by its path', { skip }, async () => {
  const d = sock('/ws', '/device/42', { query: { apiKey: 'dev-key' } });
  const other = sock('/socket.io/');
  const got = [];
  const otherGot = [];
  d.on('qr', (x) => got.push(x));
  other.on('qr', (x) => otherGot.push(x));
  const api = async (body) => {
    const r = await httpRequest(admin, 'POST', '/v1/emit', {
      headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    return { status: r.status, body: JSON.parse(r.body) };
  };
  try {
    await Promise.all([waitConnected(d), waitConnected(other)]);
    let r = await api({ path: '/ws', namespace: '/device/42', event: 'qr', args: ['code'] });
    assert.equal(r.status, 200);
    r = await api({ path: '/ws', namespace: '/device/:deviceId', event: 'qr', args: ['all'] });
    assert.equal(r.status, 200);
    r = await api({ path: '/nowhere', namespace: '/', event: 'qr' });
    assert.equal(r.status, 404);
    r = await api({ namespace: '/device/42', event: 'qr' });
    assert.equal(r.status, 404, 'not a namespace of the first endpoint');
    for (let i = 0; i < 100 && got.length < 2; i++) await delay(20);
    assert.deepEqual(got, ['code', 'all']);
    assert.deepEqual(otherGot, []);
    const s = await httpRequest(admin, 'GET', '/v1/sockets?path=/ws&namespace=/device/:deviceId', {
      headers: { Authorization: `Bearer ${KEY}` },
    });
    const list = JSON.parse(s.body);
    assert.equal(list.total, 1);
    assert.equal(list.sockets[0].namespace, '/device/42');
  } finally {
    closeAll(d, other);
  }
});
