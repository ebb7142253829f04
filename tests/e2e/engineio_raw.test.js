'use strict';
/*
 * Engine.IO v4 spoken by hand over raw HTTP and WebSocket: the handshake,
 * the error bodies, ping/pong timing, max_payload, CORS, the upgrade from
 * polling, and the raw Engine.IO endpoint (handlers/eio_echo.lua, with
 * ping_interval 300 ms, ping_timeout 200 ms and max_payload 1000).
 * Expected answers are those of Node's engine.io 6 / socket.io 4.8.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { startEmitd, stopAndCheck } = require('./lib/harness');
const {
  httpRequest, openWs, waitClosed, parseOpen, splitPayload, withTimeout,
} = require('./lib/clients');

let emitd;
test.before(async () => { emitd = await startEmitd(); });
test.after(async () => { if (emitd) await emitd.stop(); });

const SIO = '/socket.io/';
const EIO = '/engine.io/';
const GOOD = 'http://good.example';

function get(path, opts) { return httpRequest(emitd.port, 'GET', path, opts); }
function post(path, body, opts = {}) {
  return httpRequest(emitd.port, 'POST', path, { ...opts, body, headers: { 'Content-Type': 'text/plain;charset=UTF-8', ...(opts.headers || {}) } });
}

async function handshake(base = SIO, headers = {}) {
  const r = await get(`${base}?EIO=4&transport=polling`, { headers });
  assert.equal(r.status, 200, `handshake: ${r.status} ${r.body}`);
  return { ...parseOpen(r.body), response: r };
}

function poll(base, sid, opts) { return get(`${base}?EIO=4&transport=polling&sid=${sid}`, opts); }
function send(base, sid, body) { return post(`${base}?EIO=4&transport=polling&sid=${sid}`, body); }

function wsUrl(base, query = '') {
  return `ws://127.0.0.1:${emitd.port}${base}?EIO=4&transport=websocket${query}`;
}

function assertEioError(r, code, message) {
  assert.equal(r.status, 400, `status for ${message}: ${r.status} ${r.body}`);
  assert.match(r.headers['content-type'] || '', /application\/json/);
  assert.deepEqual(JSON.parse(r.body), { code, message });
}

test('polling handshake: OPEN packet with sid, upgrades, pingInterval, pingTimeout, maxPayload', async () => {
  const hs = await handshake();
  assert.match(hs.sid, /^[A-Za-z0-9_-]{20}$/);
  assert.deepEqual(hs.upgrades, ['websocket']);
  assert.equal(hs.pingInterval, 25000);
  assert.equal(hs.pingTimeout, 20000);
  assert.equal(hs.maxPayload, 100000);
  assert.match(hs.response.headers['content-type'], /^text\/plain/);
  /* the raw endpoint announces its own settings */
  const raw = await handshake(EIO);
  assert.equal(raw.pingInterval, 300);
  assert.equal(raw.pingTimeout, 200);
  assert.equal(raw.maxPayload, 1000);
  assert.notEqual(raw.sid, hs.sid);
  await send(SIO, hs.sid, '1');
  await send(EIO, raw.sid, '1');
});

test('websocket handshake: OPEN packet first, no further upgrades', async () => {
  const c = await openWs(wsUrl(SIO));
  try {
    const open = parseOpen(await c.queue.next());
    assert.match(open.sid, /^[A-Za-z0-9_-]{20}$/);
    assert.deepEqual(open.upgrades, []);
    assert.equal(open.pingInterval, 25000);
    assert.equal(open.maxPayload, 100000);
  } finally {
    c.ws.terminate();
  }
});

test('HTTP 400 with the Engine.IO error bodies', async () => {
  assertEioError(await get(`${SIO}?EIO=4&transport=foo`), 0, 'Transport unknown');
  assertEioError(await get(`${SIO}?EIO=4`), 0, 'Transport unknown');
  assertEioError(await get(`${SIO}?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA`), 1, 'Session ID unknown');
  assertEioError(await post(`${SIO}?EIO=4&transport=polling&sid=xyz`, '40'), 1, 'Session ID unknown');
  assertEioError(await post(`${SIO}?EIO=4&transport=polling`, '40'), 2, 'Bad handshake method');
  assertEioError(await get(`${SIO}?EIO=4&transport=websocket`), 3, 'Bad request');
  assertEioError(await get(`${SIO}?EIO=3&transport=polling`), 5, 'Unsupported protocol version');
  assertEioError(await get(`${SIO}?transport=polling`), 5, 'Unsupported protocol version');
  assertEioError(await get(`${SIO}?EIO=5&transport=polling`), 5, 'Unsupported protocol version');
  /* a polling sid asked for with transport=websocket and no Upgrade */
  const hs = await handshake();
  assertEioError(await get(`${SIO}?EIO=4&transport=websocket&sid=${hs.sid}`), 3, 'Bad request');
  await send(SIO, hs.sid, '1');
  /* the raw endpoint answers the same way */
  assertEioError(await get(`${EIO}?EIO=4&transport=foo`), 0, 'Transport unknown');
});

test('a path that is no endpoint gets 404', async () => {
  const r = await get('/definitely-not-here');
  assert.equal(r.status, 404);
});

test('a second concurrent GET on a polling session gets 400 and the session is closed', async () => {
  const { sid } = await handshake();
  /* two GETs at once on two connections: whichever the server sees second
     overlaps the one it parked */
  const both = await Promise.all([poll(SIO, sid), poll(SIO, sid)]);
  const byStatus = both.slice().sort((a, b) => a.status - b.status);
  assert.deepEqual(byStatus.map((r) => r.status), [200, 400], 'one parked GET, one refused');
  assert.deepEqual(splitPayload(byStatus[0].body), ['1'], 'the parked GET is answered with a CLOSE packet');
  assertEioError(await poll(SIO, sid), 1, 'Session ID unknown');
});

test('pings at ping_interval over websocket; closed after ping_interval + ping_timeout without a pong', async () => {
  /* The lower bounds count from before the connection was opened, which
   * the server's timer cannot precede: a late open packet (a slow run,
   * Valgrind) does not shorten what the test sees. */
  const start = Date.now();
  const c = await openWs(wsUrl(EIO));
  try {
    const open = parseOpen(await c.queue.next());
    const t0 = Date.now();
    assert.equal(await c.queue.next(2000, 'the first ping'), '2');
    const t1 = Date.now();
    assert.ok(t1 - start >= 290 && t1 - t0 <= 1500,
      `first ping ${t1 - start} ms after connecting, ${t1 - t0} ms after the open packet (interval ${open.pingInterval})`);
    c.ws.send('3');
    assert.equal(await c.queue.next(2000, 'the second ping'), '2');
    const t2 = Date.now();
    assert.ok(t2 - start >= 590 && t2 - t1 <= 1500, `second ping ${t2 - start} ms after connecting, ${t2 - t1} ms after the first`);
    /* no pong now */
    const closed = await waitClosed(c, 3000);
    const waited = closed.at - t2;
    assert.ok(closed.at - start >= 790 && waited <= 1500,
      `closed ${waited} ms after the unanswered ping (timeout 200), ${closed.at - start} ms after connecting`);
  } finally {
    c.ws.terminate();
  }
});

test('pings over polling; a pong keeps the session', async () => {
  const { sid } = await handshake(EIO);
  for (let i = 0; i < 3; i++) {
    const r = await poll(EIO, sid, { ms: 2000 });
    assert.equal(r.status, 200);
    assert.deepEqual(splitPayload(r.body), ['2']);
    const p = await send(EIO, sid, '3');
    assert.equal(p.status, 200);
    assert.equal(p.body, 'ok');
  }
  /* stop answering: the session goes away */
  const r = await poll(EIO, sid, { ms: 2000 });
  assert.deepEqual(splitPayload(r.body), ['2']);
  let gone = false;
  for (let i = 0; i < 20 && !gone; i++) {
    const g = await poll(EIO, sid, { ms: 2000 });
    if (g.status === 400) {
      assertEioError(g, 1, 'Session ID unknown');
      gone = true;
    } else {
      assert.ok(/^(1|6)$/.test(g.body), `pending GET answered ${JSON.stringify(g.body)}`);
      if (g.body === '1') gone = true;
    }
  }
  assert.ok(gone, 'the session was closed after the ping timeout');
});

test('raw Engine.IO endpoint echoes text and binary over websocket', async () => {
  const c = await openWs(wsUrl(EIO));
  try {
    parseOpen(await c.queue.next());
    c.ws.send('4hello \u2028 😀');
    assert.equal(await c.queue.next(), '4hello \u2028 😀');
    c.ws.send(Buffer.from([0, 1, 2, 255]));
    const b = await c.queue.next();
    assert.ok(Buffer.isBuffer(b), 'binary comes back as a binary frame');
    assert.deepEqual([...b], [0, 1, 2, 255]);
    c.ws.send('4close');
    assert.ok((await waitClosed(c)).code > 0, 'conn:close() closes the connection');
  } finally {
    c.ws.terminate();
  }
});

test('raw Engine.IO endpoint echoes text and binary over polling', async () => {
  const { sid } = await handshake(EIO);
  const p = await send(EIO, sid, '4hello\x1e4\u2028x\x1ebAAEC/w==');
  assert.equal(p.status, 200);
  assert.equal(p.body, 'ok');
  const got = [];
  for (let i = 0; i < 5 && got.length < 3; i++) {
    const r = await poll(EIO, sid, { ms: 2000 });
    for (const pkt of splitPayload(r.body)) if (pkt !== '2') got.push(pkt);
  }
  assert.deepEqual(got, ['4hello', '4\u2028x', 'bAAEC/w==']);
  await send(EIO, sid, '1');
});

test('a polling POST with a chunked body is accepted, as Node does', async () => {
  const { sid } = await handshake(EIO);
  const p = await httpRequest(emitd.port, 'POST', `${EIO}?EIO=4&transport=polling&sid=${sid}`,
    { body: '4chunked body', chunked: true, headers: { 'Content-Type': 'text/plain;charset=UTF-8' } });
  assert.equal(p.status, 200, `${p.status} ${p.body}`);
  assert.equal(p.body, 'ok');
  const got = [];
  for (let i = 0; i < 5 && got.length < 1; i++) {
    const r = await poll(EIO, sid, { ms: 2000 });
    for (const pkt of splitPayload(r.body)) if (pkt !== '2') got.push(pkt);
  }
  assert.deepEqual(got, ['4chunked body']);
  await send(EIO, sid, '1');
});

test('max_payload over websocket: a larger message is closed with 1009 and not delivered', async () => {
  const c = await openWs(wsUrl(EIO));
  try {
    parseOpen(await c.queue.next());
    const exact = '4' + 'a'.repeat(999);
    c.ws.send(exact);
    let m = await c.queue.next();
    while (m === '2') { c.ws.send('3'); m = await c.queue.next(); }
    assert.equal(m, exact, 'a message of exactly max_payload bytes is fine');
    c.ws.send('4' + 'b'.repeat(1000));
    const seen = [];
    let closed;
    for (let i = 0; i < 20; i++) {
      const x = await c.queue.next(3000, 'the close');
      if (x.closed) { closed = x.closed; break; }
      seen.push(x);
    }
    assert.ok(closed, 'closed');
    assert.equal(closed.code, 1009);
    assert.ok(!seen.some((x) => typeof x === 'string' && x.startsWith('4b')), 'the handler never saw it');
  } finally {
    c.ws.terminate();
  }
});

test('max_payload over polling: a larger POST gets 413 and is not delivered', async () => {
  const { sid } = await handshake(EIO);
  const big = await send(EIO, sid, '4' + 'b'.repeat(1000));
  assert.equal(big.status, 413);
  /* whatever follows on the session is not the echo of that message */
  const r = await poll(EIO, sid, { ms: 2000 });
  if (r.status === 200) {
    assert.ok(!r.body.includes('4bbbb'), `not delivered: ${r.body.slice(0, 40)}`);
  } else {
    assertEioError(r, 1, 'Session ID unknown');
  }
  /* Socket.IO endpoint: max_payload 100000 */
  const hs = await handshake();
  const big2 = await send(SIO, hs.sid, '4' + 'x'.repeat(100000));
  assert.equal(big2.status, 413);
});

test('CORS: an allowed Origin is echoed with credentials', async () => {
  const r = await get(`${SIO}?EIO=4&transport=polling`, { headers: { Origin: GOOD } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['access-control-allow-origin'], GOOD);
  assert.equal(r.headers['access-control-allow-credentials'], 'true');
  const { sid } = parseOpen(r.body);
  const p = await post(`${SIO}?EIO=4&transport=polling&sid=${sid}`, '1', { headers: { Origin: GOOD } });
  assert.equal(p.headers['access-control-allow-origin'], GOOD);
});

test('CORS: a disallowed Origin gets no Access-Control-Allow-Origin', async () => {
  const r = await get(`${SIO}?EIO=4&transport=polling`, { headers: { Origin: 'http://evil.example' } });
  assert.equal(r.headers['access-control-allow-origin'], undefined);
  if (r.status === 200) await send(SIO, parseOpen(r.body).sid, '1');
  else assert.equal(r.status, 403);
});

test('CORS: OPTIONS preflight is answered 204 with Allow-Methods and Allow-Headers', async () => {
  const r = await httpRequest(emitd.port, 'OPTIONS', `${SIO}?EIO=4&transport=polling`, {
    headers: { Origin: GOOD, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
  });
  assert.equal(r.status, 204);
  assert.equal(r.headers['access-control-allow-origin'], GOOD);
  assert.equal(r.headers['access-control-allow-credentials'], 'true');
  const methods = (r.headers['access-control-allow-methods'] || '').toUpperCase().split(/\s*,\s*/);
  assert.ok(methods.includes('GET') && methods.includes('POST'), `Allow-Methods: ${r.headers['access-control-allow-methods']}`);
  assert.match(r.headers['access-control-allow-headers'] || '', /content-type/i);
  assert.equal(r.body, '');
  const bad = await httpRequest(emitd.port, 'OPTIONS', `${SIO}?EIO=4&transport=polling`, {
    headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' },
  });
  assert.equal(bad.headers['access-control-allow-origin'], undefined);
});

test('upgrade from polling: probe, the pending GET gets a NOOP, then the websocket carries the session', async () => {
  const { sid } = await handshake();
  const pending = poll(SIO, sid);
  const c = await openWs(wsUrl(SIO, `&sid=${sid}`));
  try {
    c.ws.send('2probe');
    assert.equal(await c.queue.next(), '3probe');
    const g = await withTimeout(pending, 3000, 'the pending GET to be answered during the upgrade');
    assert.equal(g.status, 200);
    assert.deepEqual(splitPayload(g.body), ['6']);
    c.ws.send('5');
    c.ws.send('40');
    const m = await c.queue.next();
    assert.match(m, /^40\{"sid":"[A-Za-z0-9_-]{20}"/);
    assert.notEqual(JSON.parse(m.slice(2)).sid, sid);
    c.ws.send('421["echo","over ws"]');
    let reply = await c.queue.next();
    if (reply.startsWith('42["welcome"')) reply = await c.queue.next();   /* main.lua greets */
    assert.equal(reply, '431["over ws"]');
    /* polling on an upgraded session is refused */
    const after = await poll(SIO, sid);
    assert.equal(after.status, 400);
  } finally {
    c.ws.terminate();
  }
});

test('upgrade of an unknown sid is refused', async () => {
  await assert.rejects(openWs(wsUrl(SIO, '&sid=AAAAAAAAAAAAAAAAAAAA')), (e) => {
    assert.equal(e.status, 400);
    /* Node's engine.io answers a refused upgrade with the message as plain text */
    assert.match(e.body, /Session ID unknown/);
    return true;
  });
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
