'use strict';
/*
 * deploy/examples/combined/ as shipped (2 workers): studio and chat on
 * /socket.io/, device-gateway on /ws and action-gateway on /realtime in
 * one instance, each answering as it does alone (its own suite covers it
 * in full), and kept apart: the "/" of one endpoint is not the "/" of
 * another. Real socket.io-client; a stand-in backend for the actions.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const jwt = require('jsonwebtoken');
const { stopAndCheck, freePort, delay } = require('./lib/harness');
const { io, waitConnected, connectError, closeAll, waitUntil, ack } = require('./lib/clients');
const { startExample } = require('./lib/examples');

const sign = (secret, claims) => jwt.sign(claims, secret, { algorithm: 'HS256', expiresIn: '1h' });
const STUDIO = 'change-me-studio-jwt-secret-0123456789';
const CHAT = 'change-me-chat-jwt-secret-0123456789';
const REST = 'change-me-the-rest-api-jwt-secret';

let emitd;
let backend;
test.before(async () => {
  const port = await freePort();
  backend = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const q = JSON.parse(body);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ data: { did: q.action, company: q.companyId } }));
    });
  });
  await new Promise((resolve) => backend.listen(port, '127.0.0.1', resolve));
  emitd = await startExample('combined', { vars: { actions_url: `http://127.0.0.1:${port}/realtime/actions` } });
});
test.after(async () => {
  if (emitd) await emitd.stop();
  if (backend) backend.close();
});

function client(nsp, opts) {
  const s = io(`${emitd.url}${nsp}`, { forceNew: true, reconnection: false, transports: ['websocket'], ...opts });
  s.seen = [];
  s.onAny((event, ...args) => s.seen.push([event, ...args]));
  return s;
}
const events = (s, name) => s.seen.filter((e) => e[0] === name).map((e) => e[1]);

test('every example answers in the one instance', async () => {
  const studio = client('/', { auth: { token: sign(STUDIO, { sub: 'st-1' }) } });
  const chatA = client('/chat', { auth: { token: sign(CHAT, { sub: 'ch-a', chats: ['c1'] }) } });
  const chatB = client('/chat', { auth: { token: sign(CHAT, { sub: 'ch-b', chats: ['c1'] }) }, transports: ['polling'] });
  const device = client('/device/d-1', { path: '/ws', query: { apiKey: 'change-me-device-api-key' } });
  const action = client('/', { path: '/realtime', auth: { token: sign(REST, { sub: 'ag-1', companyId: 'acme' }) },
    query: { sessionId: 'sess-1' } });
  const all = [studio, chatA, chatB, device, action];
  try {
    await Promise.all(all.map((s) => waitConnected(s)));
    /* studio */
    await waitUntil('studio\'s welcome and authenticated', () => events(studio, 'authenticated').length === 1);
    assert.equal(events(studio, 'welcome')[0].message, 'Welcome to Slop Studios');
    assert.deepEqual(await ack(studio, 'joinRoom', 'project-1'), [{ success: true, room: 'project-1' }]);
    /* chat */
    assert.equal((await ack(chatA, 'join:chat', { chatId: 'c1' }))[0].success, true);
    assert.equal((await ack(chatB, 'join:chat', { chatId: 'c1' }))[0].success, true);
    const [sent] = await ack(chatA, 'message:send', { chatId: 'c1', content: 'in the combined instance' });
    await waitUntil('message:new', () => events(chatB, 'message:new').length === 1);
    assert.deepEqual(events(chatB, 'message:new')[0], sent.sentMessage);
    /* device-gateway, published with the endpoint's path */
    let r = await emitd.api('POST', '/v1/emit', { path: '/ws', namespace: '/device/d-1', event: 'qr',
      args: [{ deviceId: 'd-1', qr: 'QR', timestamp: 1 }] });
    assert.equal(r.status, 200, r.text);
    await waitUntil('qr', () => events(device, 'qr').length === 1);
    assert.deepEqual(events(device, 'qr'), [{ deviceId: 'd-1', qr: 'QR', timestamp: 1 }]);
    /* action-gateway */
    action.emit('message', JSON.stringify({ type: 'REQUEST', requestId: 'r1', action: 'go' }));
    await waitUntil('the RESPONSE', () => events(action, 'message').length === 1);
    assert.deepEqual(JSON.parse(events(action, 'message')[0]),
      { type: 'RESPONSE', requestId: 'r1', action: 'go', data: { did: 'go', company: 'acme' } });
    r = await emitd.api('POST', '/v1/emit', { path: '/realtime', to: 'company:acme', event: 'message',
      args: [JSON.stringify({ type: 'UPDATE', requestId: 'u1', action: 'companyUpdate', data: {} })] });
    assert.equal(r.status, 200, r.text);
    await waitUntil('the UPDATE', () => events(action, 'message').length === 2);
    assert.equal(JSON.parse(events(action, 'message')[1]).type, 'UPDATE');
    /* /metrics names each namespace by its endpoint and the name clients use */
    const m = await waitUntil('the metrics', async () => {
      const res = await fetch(`http://127.0.0.1:${emitd.adminPort}/metrics`);
      const text = await res.text();
      return /emitd_namespace_sockets\{path="\/realtime\/",namespace="\/"\} 1\n/.test(text) ? text : null;
    });
    assert.match(m, /emitd_namespace_sockets\{path="\/ws\/",namespace="\/device\/:deviceId"\} \d+\n/);
    assert.match(m, /emitd_namespace_sockets\{path="\/ws\/",namespace="\/"\} 0\n/);
    assert.match(m, /emitd_namespace_sockets\{path="\/socket.io\/",namespace="\/chat"\} 2\n/);
    assert.match(m, /emitd_namespace_sockets\{path="\/socket.io\/",namespace="\/"\} 1\n/);
    assert.doesNotMatch(m, /namespace="@/);
  } finally {
    closeAll(all);
  }
});

test('the endpoints are apart: each "/" is its own, each namespace keeps its own checks', async () => {
  const studio = client('/', {});
  const wsRoot = client('/', { path: '/ws', extraHeaders: { apiKey: 'change-me-device-api-key' } });
  const action = client('/', { path: '/realtime', auth: { token: sign(REST, { sub: 'ag-2', companyId: 'acme' }) },
    query: { sessionId: 's' } });
  /* a studio token is not a chat token; no key on /ws */
  const wrongToken = client('/chat', { auth: { token: sign(STUDIO, { sub: 'x', chats: ['c1'] }) } });
  const noKey = client('/device/d-2', { path: '/ws' });
  const chatOnWs = client('/chat', { path: '/ws', extraHeaders: { apiKey: 'change-me-device-api-key' } });
  /* listened for at once: a refusal may come before the others connect */
  const refusals = Promise.all([connectError(wrongToken), connectError(noKey), connectError(chatOnWs)]);
  try {
    await Promise.all([studio, wsRoot, action].map((s) => waitConnected(s)));
    const [e1, e2, e3] = await refusals;
    assert.equal(e1.message, 'Invalid token');
    assert.equal(e2.message, 'API key is required');
    assert.equal(e3.message, 'Invalid namespace');
    for (const [path, s] of [[undefined, studio], ['/ws', wsRoot], ['/realtime', action]]) {
      const r = await emitd.api('POST', '/v1/emit', { path, event: 'only', args: [path || '/socket.io/'] });
      assert.equal(r.status, 200, r.text);
      await waitUntil(`the emit to ${path}`, () => events(s, 'only').length === 1);
    }
    await delay(100);
    assert.deepEqual(events(studio, 'only'), ['/socket.io/']);
    assert.deepEqual(events(wsRoot, 'only'), ['/ws']);
    assert.deepEqual(events(action, 'only'), ['/realtime']);
  } finally {
    closeAll(studio, wsRoot, action, wrongToken, noKey, chatOnWs);
  }
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
