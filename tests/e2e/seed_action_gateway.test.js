'use strict';
/*
 * action-gateway.md against deploy/examples/action-gateway/ as shipped (2
 * workers, its handlers/realtime.lua), with a stand-in backend the test
 * runs for the REQUEST envelopes: path /realtime, the REST API's JWT in
 * auth.token, sessionId (required) and artifactId from the query, company
 * and artifact rooms, RESPONSE / ERROR envelopes correlated by requestId,
 * malformed requests answered with ERROR envelopes, UPDATE envelopes from
 * the backend to a company and to an artifact, the request rate limit and
 * the connection limit (per address: each test connects from its own
 * 127.0.0.x). Real socket.io-client, both transports; the seed's client
 * example runs as it stands.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const jwt = require('jsonwebtoken');
const { freePort, delay, stopAndCheck } = require('./lib/harness');
const { io, waitConnected, connectError, closeAll, waitUntil } = require('./lib/clients');
const { startExample, runSeedClient } = require('./lib/examples');

const SECRET = 'change-me-the-rest-api-jwt-secret';    /* the shipped jwt.secret */
const token = (claims, opts = {}) => jwt.sign(claims, SECRET, { algorithm: 'HS256', expiresIn: '1h', ...opts });

/* ---- the stand-in backend: the REST API's action endpoint ---- */
let backend;
const seen = [];
async function startBackend(port) {
  backend = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', async () => {
      const call = { method: req.method, url: req.url, auth: req.headers.authorization, body: JSON.parse(body) };
      seen.push(call);
      const reply = (status, v) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(v));
      };
      const { action, data } = call.body;
      if (action === 'processData') reply(200, { data: { output: String(data.input).toUpperCase() } });
      else if (action === 'slow') { await delay(300); reply(200, { data: { slow: true } }); }
      else if (action === 'forbidden') reply(403, { error: { code: 'FORBIDDEN', message: 'Not allowed for this company' } });
      else if (action === 'crash') { res.writeHead(500); res.end('boom'); }
      else reply(200, { data: { action, received: data === undefined ? null : data } });
    });
  });
  await new Promise((resolve) => backend.listen(port, '127.0.0.1', resolve));
}

let emitd;
let backendPort;
test.before(async () => {
  backendPort = await freePort();
  await startBackend(backendPort);
  emitd = await startExample('action-gateway', { vars: { actions_url: `http://127.0.0.1:${backendPort}/realtime/actions` } });
});
test.after(async () => {
  if (emitd) await emitd.stop();
  if (backend) backend.close();
});

/* A client from the source address 127.0.0.<host> (the connection limit is per address). */
function client(host, { claims = { sub: 'u1', companyId: 'c1' }, query = { sessionId: 's1' }, transports = ['websocket'], auth } = {}) {
  const agent = new http.Agent({ localAddress: `127.0.0.${host}` });
  const s = io(emitd.url, { path: '/realtime', forceNew: true, reconnection: false, transports, agent,
    auth: auth || { token: token(claims) }, query });
  s.msgs = [];
  s.raw = [];
  s.on('message', (m) => { s.raw.push(m); s.msgs.push(typeof m === 'string' ? JSON.parse(m) : m); });
  return s;
}
const request = (s, requestId, action, data) => s.emit('message', JSON.stringify({ type: 'REQUEST', requestId, action, data }));
const reply = (s, requestId) => waitUntil(`the answer to ${requestId}`, () => s.msgs.find((m) => m.requestId === requestId));

test('refusals: no token, a bad or expired token, no sessionId, no company', async () => {
  const cases = [
    [client(10, { auth: {} }), 'Authentication required'],
    [client(10, { auth: { token: 'not.a.jwt' } }), 'Invalid token'],
    [client(10, { auth: { token: jwt.sign({ sub: 'u', companyId: 'c' }, 'another-secret-0123456789') } }), 'Invalid token'],
    [client(10, { auth: { token: jwt.sign({ sub: 'u', companyId: 'c', exp: Math.floor(Date.now() / 1000) - 120 }, SECRET) } }), 'Token expired'],
    [client(10, { query: {} }), 'Session ID is required'],
    [client(10, { query: { sessionId: 's', artifactId: 'x'.repeat(200) } }), 'Invalid artifact ID'],
    [client(10, { claims: { sub: 'u' } }), 'The token names no company'],
  ];
  try {
    const errs = await Promise.all(cases.map(([s]) => connectError(s)));
    errs.forEach((e, i) => assert.equal(e.message, cases[i][1], `case ${i}`));
  } finally {
    closeAll(cases.map(([s]) => s));
  }
});

for (const transports of [['websocket'], ['polling']]) {
  test(`${transports[0]}: a REQUEST runs on the backend with the client's token and context; the RESPONSE is a JSON string`, async () => {
    const claims = { sub: 'user-7', companyId: 'acme' };
    const s = client(11, { claims, query: { sessionId: 'sess-7', artifactId: 'art-3' }, transports });
    try {
      await waitConnected(s);
      const rid = `req-${transports[0]}`;
      request(s, rid, 'processData', { input: 'value' });
      const r = await reply(s, rid);
      assert.equal(typeof s.raw[0], 'string', 'sent as a JSON string');
      assert.deepEqual(r, { type: 'RESPONSE', requestId: rid, action: 'processData', data: { output: 'VALUE' } });
      const call = seen.find((c) => c.body.requestId === rid);
      assert.equal(call.method, 'POST');
      assert.equal(call.url, '/realtime/actions');
      assert.equal(call.auth, `Bearer ${s.auth.token}`);
      assert.deepEqual(call.body, { requestId: rid, action: 'processData', data: { input: 'value' }, sessionId: 'sess-7',
        artifactId: 'art-3', userId: 'user-7', companyId: 'acme', socketId: s.id });
    } finally {
      closeAll(s);
    }
  });
}

test('answers are correlated by requestId: a slow action does not hold up a quick one', async () => {
  const s = client(12);
  try {
    await waitConnected(s);
    request(s, 'r-slow', 'slow');
    request(s, 'r-quick', 'processData', { input: 'q' });
    await reply(s, 'r-slow');
    assert.deepEqual(s.msgs.map((m) => m.requestId), ['r-quick', 'r-slow']);
    assert.deepEqual(s.msgs[1], { type: 'RESPONSE', requestId: 'r-slow', action: 'slow', data: { slow: true } });
  } finally {
    closeAll(s);
  }
});

test('malformed requests and failed actions are answered with ERROR envelopes', async () => {
  const s = client(13, { transports: ['polling'] });
  try {
    await waitConnected(s);
    s.emit('message', '{not json');
    s.emit('message', JSON.stringify({ type: 'QUERY', requestId: 'e1', action: 'x' }));
    s.emit('message', JSON.stringify({ type: 'REQUEST', action: 'x' }));
    s.emit('message', JSON.stringify({ type: 'REQUEST', requestId: 'e3' }));
    s.emit('message', 42);
    s.emit('message', { type: 'REQUEST', requestId: 'e5', action: 'echoObject', data: [1] });   /* an object is taken too */
    request(s, 'e6', 'forbidden');
    request(s, 'e7', 'crash');
    await waitUntil('eight answers', () => s.msgs.length === 8);
    const [m0, m1, m2, m3, m4] = s.msgs;
    assert.deepEqual(m0, { type: 'ERROR', requestId: null, error: { code: 'INVALID_MESSAGE', message: 'The message is not valid JSON' } });
    assert.deepEqual(m1, { type: 'ERROR', requestId: 'e1', error: { code: 'INVALID_MESSAGE', message: 'type must be "REQUEST"' } });
    assert.deepEqual(m2, { type: 'ERROR', requestId: null, error: { code: 'INVALID_MESSAGE', message: 'requestId must be a string of 1 to 128 bytes' } });
    assert.deepEqual(m3, { type: 'ERROR', requestId: 'e3', error: { code: 'INVALID_MESSAGE', message: 'action must be a string of 1 to 128 bytes' } });
    assert.deepEqual(m4, { type: 'ERROR', requestId: null, error: { code: 'INVALID_MESSAGE', message: 'The message must be a JSON object' } });
    const by = (id) => s.msgs.find((m) => m.requestId === id);
    assert.deepEqual(by('e5'), { type: 'RESPONSE', requestId: 'e5', action: 'echoObject', data: { action: 'echoObject', received: [1] } });
    assert.deepEqual(by('e6'), { type: 'ERROR', requestId: 'e6', action: 'forbidden', error: { code: 'FORBIDDEN', message: 'Not allowed for this company' } });
    assert.deepEqual(by('e7'), { type: 'ERROR', requestId: 'e7', action: 'crash', error: { code: 'ACTION_FAILED', message: 'The action failed with status 500' } });
  } finally {
    closeAll(s);
  }
});

test('the backend\'s UPDATE envelopes reach a company, and an artifact of that company only', async () => {
  const a = client(14, { claims: { sub: 'a', companyId: 'c1' }, query: { sessionId: 'sa', artifactId: 'art-1' } });
  const b = client(14, { claims: { sub: 'b', companyId: 'c1' }, query: { sessionId: 'sb' }, transports: ['polling'] });
  const other = client(14, { claims: { sub: 'o', companyId: 'c2' }, query: { sessionId: 'so', artifactId: 'art-1' } });
  try {
    await Promise.all([a, b, other].map((s) => waitConnected(s)));
    const update = (to, action, data) => emitd.api('POST', '/v1/emit', { to, event: 'message', path: '/realtime',
      args: [JSON.stringify({ type: 'UPDATE', requestId: `u-${action}`, action, data })] });
    assert.equal((await update('company:c1', 'companyUpdate', { plan: 'pro' })).status, 200);
    assert.equal((await update('company:c1:artifact:art-1', 'artifactUpdate', { status: 'completed' })).status, 200);
    await waitUntil('the updates', () => a.msgs.length === 2 && b.msgs.length === 1);
    await delay(100);
    assert.deepEqual(a.msgs, [
      { type: 'UPDATE', requestId: 'u-companyUpdate', action: 'companyUpdate', data: { plan: 'pro' } },
      { type: 'UPDATE', requestId: 'u-artifactUpdate', action: 'artifactUpdate', data: { status: 'completed' } }]);
    assert.deepEqual(b.msgs, [a.msgs[0]]);
    assert.deepEqual(other.msgs, [], 'another company\'s client with the same artifactId gets nothing');
  } finally {
    closeAll(a, b, other);
  }
});

test('the request rate limit: 60 REQUESTs a minute per user, counted across the user\'s tabs', async () => {
  const claims = { sub: 'busy-user', companyId: 'c1' };
  const tabs = [client(15, { claims }), client(15, { claims }), client(15, { claims })];
  try {
    await Promise.all(tabs.map((s) => waitConnected(s)));
    for (let i = 0; i < 61; i++) request(tabs[i % 3], `rl-${i}`, 'processData', { input: String(i) });
    await waitUntil('61 answers', () => tabs.reduce((n, s) => n + s.msgs.length, 0) === 61, 15000);
    const all = tabs.flatMap((s) => s.msgs);
    const limited = all.filter((m) => m.type === 'ERROR');
    assert.equal(limited.length, 1, JSON.stringify(limited));
    assert.equal(all.filter((m) => m.type === 'RESPONSE').length, 60);
    assert.equal(limited[0].error.code, 'RATE_LIMITED');
    assert.equal(limited[0].error.message, 'Too many requests. Please slow down.');
    assert.ok(limited[0].error.retryAfter >= 1 && limited[0].error.retryAfter <= 60);
    /* another user is not limited */
    const free = client(15, { claims: { sub: 'calm-user', companyId: 'c1' } });
    try {
      await waitConnected(free);
      request(free, 'calm', 'processData', { input: 'x' });
      assert.equal((await reply(free, 'calm')).type, 'RESPONSE');
    } finally {
      closeAll(free);
    }
  } finally {
    closeAll(tabs);
  }
});

test('the connection limit: 30 a minute from one address, then refused; other addresses go on', async () => {
  const kept = [];
  try {
    for (let i = 0; i < 30; i++) {
      const s = client(16);
      kept.push(s);
      await waitConnected(s);
      s.close();
    }
    const over = client(16);
    kept.push(over);
    const e = await connectError(over);
    assert.equal(e.message, 'Too many connection attempts. Please try again later.');
    assert.ok(e.data.retryAfter > 0);
    const elsewhere = client(17);
    kept.push(elsewhere);
    await waitConnected(elsewhere);
  } finally {
    closeAll(kept);
  }
});

test('the seed\'s client example, as it stands: its REQUEST answered, an UPDATE received', async () => {
  const host = emitd.url.replace('http://', '');
  const t = token({ sub: 'seed-user', companyId: 'seed-co' });
  const seed = runSeedClient('action-gateway.client.mjs', [['ws://your-domain', `ws://${host}`],
    ['your-jwt-token', t], ['your-session-id', 'seed-session'], ['optional-artifact-id', 'seed-art']]);
  try {
    await seed.waitLine(/^Connected to WebSocket server$/m);
    const m = await seed.waitLine(/Received response: \{[^}]*\{[^}]*\{[^}]*\}[^}]*\}[^}]*\}/);
    for (const part of [/type: 'RESPONSE'/, /action: 'someAction'/, /key: 'value'/, /requestId: '\d+'/]) assert.match(m[0], part);
    const call = seen.find((c) => c.body.action === 'someAction');
    assert.equal(call.body.sessionId, 'seed-session');
    assert.equal(call.body.artifactId, 'seed-art');
    await emitd.api('POST', '/v1/emit', { to: 'company:seed-co:artifact:seed-art', event: 'message',
      args: [JSON.stringify({ type: 'UPDATE', requestId: 'update-1', action: 'statusChange', data: { status: 'completed' } })] });
    const u = await seed.waitLine(/Received update: \{[^}]*\{[^}]*\}[^}]*\}/);
    for (const part of [/type: 'UPDATE'/, /action: 'statusChange'/, /status: 'completed'/, /requestId: 'update-1'/]) assert.match(u[0], part);
  } finally {
    await seed.stop();
  }
});

test('the backend away: ERROR BACKEND_UNAVAILABLE, the socket stays', async () => {
  const s = client(18);
  try {
    await waitConnected(s);
    await new Promise((resolve) => { backend.close(resolve); backend.closeAllConnections(); });
    backend = null;
    request(s, 'down-1', 'processData', { input: 'x' });
    assert.deepEqual(await reply(s, 'down-1'), { type: 'ERROR', requestId: 'down-1', action: 'processData',
      error: { code: 'BACKEND_UNAVAILABLE', message: 'The action service is not available' } });
    assert.equal(s.connected, true);
  } finally {
    closeAll(s);
  }
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
