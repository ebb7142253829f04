'use strict';
/*
 * emitd.http: scripts call a backend (a Node HTTP server this test starts
 * on 127.0.0.1) without blocking the worker: JSON and text round trips,
 * statuses, headers, timeouts, refused connections, oversized responses,
 * the bound on calls in flight, calls from timers, and action-gateway.md's
 * REQUEST -> RESPONSE/ERROR envelope flow. Real clients, 2 workers.
 * Handlers: webhooks.lua.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startEmitd, handler, delay, freePort, isReference, timeMs } = require('./lib/harness');
const { io, ack, closeAll, waitConnected, withTimeout } = require('./lib/clients');

const skip = isReference() && 'emitd-only: emitd.http is an emitd API';

let emitd;
let backend;
let base;
let seen = [];
test.before(async () => {
  if (skip) return;
  backend = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      const u = new URL(req.url, 'http://x');
      if (u.pathname === '/echo') {
        res.writeHead(200, { 'Content-Type': 'application/json', 'X-Backend': 'yes' });
        res.end(JSON.stringify({ method: req.method, query: u.search, body, key: req.headers['x-key'] || null,
                                 ctype: req.headers['content-type'] || null }));
      } else if (u.pathname === '/text') {
        res.writeHead(201, { 'Content-Type': 'text/plain' }).end('plain words');
      } else if (u.pathname === '/fail') {
        res.writeHead(500, { 'Content-Type': 'application/json' }).end('{"error":"boom"}');
      } else if (u.pathname === '/slow') {
        setTimeout(() => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"slow":true}'),
                   Number(u.searchParams.get('ms') || 1500));
      } else if (u.pathname === '/big') {
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end('z'.repeat(200000));
      } else if (u.pathname === '/execute') {
        const env = JSON.parse(body);
        if (env.action === 'explode') {
          res.writeHead(502).end();
        } else {
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ action: env.action, result: (env.payload?.n ?? 0) * 2,
                                   session: req.headers['x-session'] }));
        }
      } else {
        res.writeHead(404).end();
      }
    });
  });
  await new Promise((r) => backend.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${backend.address().port}`;
  emitd = await startEmitd({
    config: {
      webhooks: { max_inflight: 3, timeout: 5000, max_response: 100000 },
      namespaces: [{ name: '/hooks', script: handler('webhooks.lua') }],
      engineio: undefined,
    },
  });
});
test.after(async () => {
  if (emitd) await emitd.stop();
  if (backend) backend.close();
});

async function client() {
  const s = io(`${emitd.url}/hooks`, {
    forceNew: true, transports: ['websocket'], reconnection: false, timeout: 5000, auth: { backend: base },
  });
  await waitConnected(s);
  return s;
}

test('a JSON POST and a GET round trip: status, headers, body and decoded JSON', { skip }, async () => {
  const s = await client();
  try {
    let [r] = await ack(s, 'call', { url: `${base}/echo?x=1`, body: { a: [1, 'two'] }, headers: { 'X-Key': 'k1' } });
    assert.equal(r.status, 200);
    assert.equal(r.ctype, 'application/json');
    assert.deepEqual(r.json, { method: 'POST', query: '?x=1', body: '{"a":[1,"two"]}', key: 'k1',
                               ctype: 'application/json' });
    [r] = await ack(s, 'call', { url: `${base}/echo`, method: 'PUT', body: 'raw text' });
    assert.equal(r.json.method, 'PUT');
    assert.equal(r.json.body, 'raw text');
    [r] = await ack(s, 'call', { url: `${base}/text` });
    assert.deepEqual([r.status, r.body, r.json, r.ctype], [201, 'plain words', null, 'text/plain']);
    [r] = await ack(s, 'call', { url: `${base}/fail` });
    assert.equal(r.status, 500);
    assert.deepEqual(r.json, { error: 'boom' });
    assert.ok(seen.some((x) => x.url === '/text' && x.method === 'GET' && /^emitd\//.test(x.headers['user-agent'])));
  } finally {
    closeAll(s);
  }
});

test('failures come back as an error, never a hang: timeout, refused, too large, bad url', { skip }, async () => {
  const s = await client();
  const closed = await freePort();
  try {
    let [r] = await ack(s, 'call', { url: `${base}/slow?ms=2000`, timeout: 300 });
    assert.equal(r.error, 'timeout');
    [r] = await ack(s, 'call', { url: `http://127.0.0.1:${closed}/x`, timeout: 2000 });
    assert.equal(typeof r.error, 'string');
    assert.match(r.error, /connect/i);
    [r] = await ack(s, 'call', { url: `${base}/big` });
    assert.equal(r.error, 'response too large');
    [r] = await ack(s, 'call', { url: 'file:///etc/passwd' });
    assert.match(r.error, /http:\/\/ or https:\/\//);
  } finally {
    closeAll(s);
  }
});

test('a slow backend does not stall the worker: the socket and the others go on meanwhile', { skip }, async () => {
  const s = await client();
  const others = await Promise.all([client(), client()]);
  try {
    /* The order of what finishes says it, not a clock. */
    let slowDone = false;
    const slow = withTimeout(new Promise((resolve) => {
      s.emit('call', { url: `${base}/slow?ms=4000`, timeout: 20000 }, (x) => {
        slowDone = true;
        resolve(x);
      });
    }), timeMs(15000), 'the slow call');
    for (let i = 0; i < 3; i++) {
      const [p] = await ack(s, 'ping2');
      assert.equal(p, 'pong');
      for (const o of others) assert.deepEqual(await ack(o, 'ping2'), ['pong']);
    }
    assert.equal(slowDone, false, 'answered while the backend was still thinking');
    const r = await slow;
    assert.deepEqual(r.json, { slow: true });
    assert.equal(r.socketStill, true);
  } finally {
    closeAll(s, others);
  }
});

test('at most webhooks.max_inflight calls at once per worker; the next is refused at once', { skip }, async () => {
  const s = await client();
  try {
    const calls = [1, 2, 3, 4].map(() => ack(s, 'call', { url: `${base}/slow?ms=1500` }));
    const results = (await Promise.all(calls)).map((a) => a[0]);
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.error);
    assert.equal(ok.length, 3);
    assert.equal(refused.length, 1);
    assert.match(refused[0].error, /max_inflight/);
    /* and free again afterwards */
    const [r] = await ack(s, 'call', { url: `${base}/text` });
    assert.equal(r.status, 201);
  } finally {
    closeAll(s);
  }
});

test('from a timer; and REQUEST envelopes answered with RESPONSE / ERROR by requestId', { skip }, async () => {
  const s = await client();
  const got = [];
  s.on('message', (m) => got.push(m));
  try {
    const [st] = await ack(s, 'later', `${base}/text`);
    assert.equal(st, 201);
    s.emit('message', { type: 'REQUEST', requestId: 'r1', action: 'double', payload: { n: 21 } });
    s.emit('message', { type: 'REQUEST', requestId: 'r2', action: 'explode' });
    s.emit('message', { type: 'NONSENSE' });
    for (let i = 0; i < 250 && got.length < 3; i++) await delay(20);
    const by = Object.fromEntries(got.map((m) => [m.requestId ?? 'none', m]));
    assert.deepEqual(by.r1, { type: 'RESPONSE', requestId: 'r1', data: { action: 'double', result: 42, session: s.id } });
    assert.equal(by.r2.type, 'ERROR');
    assert.equal(by.r2.error.code, 'BACKEND_ERROR');
    assert.equal(by.r2.error.message, 'status 502');
    assert.deepEqual(by.none, { type: 'ERROR', requestId: null,
                                error: { code: 'INVALID_MESSAGE', message: 'Malformed request' } });
  } finally {
    closeAll(s);
  }
});

test('a client that leaves while its handler waits: the handler finishes, nothing breaks', { skip }, async () => {
  const s = await client();
  s.emit('call', { url: `${base}/slow?ms=400` }, () => {});
  await delay(50);
  s.disconnect();
  await delay(600);
  const t = await client();
  try {
    assert.deepEqual(await ack(t, 'ping2'), ['pong']);
  } finally {
    closeAll(t);
  }
});
