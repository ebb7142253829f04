'use strict';
/*
 * Hostile HTTP clients against the real daemon with 2 workers, while a
 * bystander (socket.io-client over websocket) keeps doing acks and must
 * keep its service: slowloris heads and bodies, 500 connections that never
 * finish a request, oversized heads and request lines, Content-Length
 * overflow, duplicate and conflicting Content-Length, Transfer-Encoding
 * with Content-Length or a coding emitd cannot frame, an endless chunk
 * size, a body over max_payload, and a flood of handshakes. Each is
 * answered with the status Node's http server gives (408, 431, 400, 413)
 * and a close, or served; none costs another client anything.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { startEmitd, stopAndCheck, handler, delay, childrenOf } = require('./lib/harness');
const { httpRequest, parseOpen } = require('./lib/clients');
const { Bystander, RawTcp, statusOf, rssOf } = require('./lib/hostile');
const fs = require('node:fs');

const REQUEST_TIMEOUT = 2000;
const CONNECT_TIMEOUT = 2000;
const MAX_PAYLOAD = 100000;

let emitd;
let bystander;
test.before(async () => {
  emitd = await startEmitd({
    config: {
      namespaces: [{ name: '/', script: handler('hostile.lua') }],
      max_payload: MAX_PAYLOAD,
      connect_timeout: CONNECT_TIMEOUT,
      limits: { request_timeout: REQUEST_TIMEOUT },
    },
  });
  bystander = await new Bystander(emitd.url).start();
});
test.after(async () => {
  if (bystander) await bystander.stop();
  if (emitd) await emitd.stop();
});

const POLL = '/socket.io/?EIO=4&transport=polling';

/* Send `bytes` on a fresh connection; the status the server closes with. */
async function answerTo(bytes, ms = 5000) {
  const c = await RawTcp.open(emitd.port);
  c.send(bytes);
  const got = await c.waitClosed(ms, 'the server to answer and close');
  return { status: statusOf(got), text: got.toString('latin1') };
}

/* Open descriptors of the workers (sockets included). */
function workerFds() {
  let n = 0;
  for (const pid of childrenOf(emitd.pid)) {
    try { n += fs.readdirSync(`/proc/${pid}/fd`).length; } catch (_) { /* gone */ }
  }
  return n;
}

test('slowloris head: a header byte every 200 ms gets 408 at request_timeout and is closed', async () => {
  const c = await RawTcp.open(emitd.port);
  const started = Date.now();
  c.send(`GET ${POLL} HTTP/1.1\r\nHost: x\r\n`);
  const drip = 'X-Slow: ' + 'a'.repeat(100);
  for (let i = 0; i < drip.length && !c.ended && Date.now() - started < 10000; i++) {
    c.send(drip[i]);
    await delay(200);
  }
  const got = await c.waitClosed(5000);
  assert.equal(statusOf(got), 408, got.toString('latin1').slice(0, 100));
  const took = Date.now() - started;
  assert.ok(took >= REQUEST_TIMEOUT - 100, `closed after ${took} ms, before request_timeout`);
  await bystander.check('slowloris head');
});

test('slowloris body: a POST body a byte every 200 ms gets 408 at request_timeout', async () => {
  const [open] = (await httpRequest(emitd.port, 'GET', POLL)).body.split('\x1e');
  const { sid } = parseOpen(open);
  const c = await RawTcp.open(emitd.port);
  const started = Date.now();
  c.send(`POST ${POLL}&sid=${sid} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n`);
  for (let i = 0; i < 1000 && !c.ended && Date.now() - started < 10000; i++) {
    c.send('4');
    await delay(200);
  }
  const got = await c.waitClosed(5000);
  assert.equal(statusOf(got), 408, got.toString('latin1').slice(0, 100));
  assert.ok(Date.now() - started >= REQUEST_TIMEOUT - 100);
  await bystander.check('slowloris body');
});

test('500 connections that never finish a request: the bystander is served, all are closed, descriptors come back', async () => {
  const before = workerFds();
  const conns = [];
  for (let i = 0; i < 500; i++) {
    const c = await RawTcp.open(emitd.port);
    if (i % 3 === 1) c.send(`GET ${POLL} HTTP/1.1\r\nHost: x\r\n`);
    if (i % 3 === 2) c.send(`POST ${POLL}&sid=none HTTP/1.1\r\nContent-Length: 50\r\n\r\n12345`);
    conns.push(c);
  }
  await bystander.check('500 connections open');
  /* one that sends nothing waits about request_timeout in the kernel
   * (TCP_DEFER_ACCEPT) and as long again for its request line */
  const deadline = Date.now() + 2 * REQUEST_TIMEOUT + 8000;
  for (let i = 0; i < 1000 && conns.some((c) => !c.ended) && Date.now() < deadline; i++) await delay(50);
  const open = conns.filter((c) => !c.ended).length;
  conns.forEach((c) => c.destroy());
  assert.equal(open, 0, `${open} of 500 idle connections still open after request_timeout`);
  const headers = conns.filter((c, i) => i % 3 === 1).map((c) => statusOf(c.received()));
  assert.ok(headers.every((s) => s === 408), `unfinished heads got ${[...new Set(headers)]}`);
  for (let i = 0; i < 100 && workerFds() > before + 10; i++) await delay(50);
  assert.ok(workerFds() <= before + 10, `workers hold ${workerFds()} descriptors, ${before} before`);
  await bystander.check('after the 500');
});

test('a request head over 16 KiB gets 431 and a close', async () => {
  const big = `GET ${POLL} HTTP/1.1\r\nHost: x\r\n` +
    Array.from({ length: 40 }, (_, i) => `X-Pad-${i}: ${'p'.repeat(500)}\r\n`).join('') + '\r\n';
  assert.ok(big.length > 16384);
  const r = await answerTo(big);
  assert.equal(r.status, 431);
  await bystander.check('oversized head');
});

test('a head that never ends (1 MB of one header line) gets 431 without the server reading it all', async () => {
  const c = await RawTcp.open(emitd.port);
  c.send(`GET ${POLL} HTTP/1.1\r\nX-Endless: `);
  const chunk = 'z'.repeat(16384);
  for (let i = 0; i < 64 && !c.ended; i++) {
    c.send(chunk);
    await delay(2);
  }
  const got = await c.waitClosed(5000);
  assert.equal(statusOf(got), 431);
  await bystander.check('endless head');
});

test('a 431 reaches a client that sends 1 MB of head at once: the server shuts its side and drops the rest, no reset', async () => {
  for (let k = 0; k < 3; k++) {
    const c = await RawTcp.open(emitd.port);
    /* the answer waits unread in our kernel while the server closes: a
     * reset (the server closing with our bytes unread) would discard it */
    c.sock.pause();
    c.send(`GET ${POLL} HTTP/1.1\r\nX-Endless: ${'z'.repeat(1024 * 1024)}`);
    await delay(300);
    c.sock.resume();
    const got = await c.waitClosed(5000);
    assert.equal(statusOf(got), 431, `attempt ${k}`);
  }
  await bystander.check('1 MB of head at once');
});

test('a request line over 16 KiB gets 414', async () => {
  const r = await answerTo(`GET ${POLL}&pad=${'q'.repeat(17000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
  assert.equal(r.status, 414);
  await bystander.check('long request line');
});

test('more than 64 header fields get 431', async () => {
  const many = Array.from({ length: 100 }, (_, i) => `X-H${i}: v\r\n`).join('');
  const r = await answerTo(`GET ${POLL} HTTP/1.1\r\nHost: x\r\n${many}\r\n`);
  assert.equal(r.status, 431);
});

const BAD_FRAMING = [
  ['a Content-Length past 2^64', 'Content-Length: 99999999999999999999999999\r\n', 400],
  ['a Content-Length of 2^63', 'Content-Length: 9223372036854775808\r\n', 400],
  ['a negative Content-Length', 'Content-Length: -1\r\n', 400],
  ['a Content-Length with a sign', 'Content-Length: +5\r\n', 400],
  ['two conflicting Content-Lengths', 'Content-Length: 5\r\nContent-Length: 6\r\n', 400],
  ['a Content-Length list that conflicts', 'Content-Length: 5, 6\r\n', 400],
  ['Transfer-Encoding and Content-Length', 'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n', 400],
  ['a Transfer-Encoding emitd cannot frame', 'Transfer-Encoding: gzip\r\n', 400],
  ['a Content-Length over max_payload', `Content-Length: ${MAX_PAYLOAD * 10}\r\n`, 413],
];

for (const [what, headers, status] of BAD_FRAMING) {
  test(`a POST with ${what} gets ${status} and a close`, async () => {
    const r = await answerTo(`POST ${POLL}&sid=x HTTP/1.1\r\nHost: x\r\n${headers}\r\n12345`);
    assert.equal(r.status, status, r.text.slice(0, 200));
    await bystander.check(what);
  });
}

test('two equal Content-Lengths are one (RFC 9110): the request is answered', async () => {
  const r = await answerTo(`POST ${POLL}&sid=nosuch HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n` +
    'Content-Length: 2\r\nConnection: close\r\n\r\n40');
  assert.equal(r.status, 400);
  assert.match(r.text, /"code":1/, 'answered as an unknown session, not as bad framing');
});

test('a chunk size that never ends, and one past 2^64, are refused', async () => {
  const endless = await RawTcp.open(emitd.port);
  endless.send(`POST ${POLL}&sid=x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`);
  for (let i = 0; i < 40 && !endless.ended; i++) {
    endless.send('f'.repeat(1000));
    await delay(2);
  }
  const got = await endless.waitClosed(5000);
  assert.ok([400, 413].includes(statusOf(got)), got.toString('latin1').slice(0, 100));
  const huge = await answerTo(`POST ${POLL}&sid=x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n` +
    'fffffffffffffffffffff\r\n');
  assert.ok([400, 413].includes(huge.status), huge.text.slice(0, 100));
  await bystander.check('chunk sizes');
});

test('a flood of 1,000 handshakes is served, its sessions expire at connect_timeout, memory comes back', async () => {
  const base = rssOf(emitd);
  const sids = new Set();
  for (let round = 0; round < 50; round++) {
    const batch = await Promise.all(Array.from({ length: 20 }, () => httpRequest(emitd.port, 'GET', POLL)));
    for (const r of batch) {
      assert.equal(r.status, 200);
      sids.add(parseOpen(r.body.split('\x1e')[0]).sid);
    }
  }
  assert.equal(sids.size, 1000);
  await bystander.check('handshake flood');
  /* No CONNECT came: every session ends at connect_timeout. */
  const probe = [...sids].slice(0, 20);
  const deadline = Date.now() + CONNECT_TIMEOUT + 8000;
  let alive = probe.length;
  for (let i = 0; i < 100 && alive > 0 && Date.now() < deadline; i++) {
    await delay(500);
    const rs = await Promise.all(probe.map((sid) => httpRequest(emitd.port, 'POST', `${POLL}&sid=${sid}`,
      { body: '6', headers: { 'Content-Type': 'text/plain' } })));
    alive = rs.filter((r) => r.status === 200).length;
  }
  assert.equal(alive, 0, 'sessions outlived connect_timeout');
  const after = rssOf(emitd);
  assert.ok(after < base + 64 * 1024 * 1024, `resident memory grew from ${base} to ${after} bytes`);
  await bystander.check('after the flood');
});

test('emitd stops cleanly after the hostile HTTP clients', async () => {
  await bystander.check('at the end');
  await bystander.stop();
  bystander = null;
  const problems = await stopAndCheck(emitd);
  emitd = null;
  assert.deepEqual(problems, []);
});
