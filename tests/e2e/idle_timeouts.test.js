'use strict';
/*
 * Connection timeouts and half-closed clients, with limits.request_timeout
 * and limits.write_timeout set to a few seconds:
 * - a connection reading a request head is answered 408 once request_timeout
 *   has passed since the head began, but an upgraded WebSocket stays open
 *   however long it is quiet (its liveness is Engine.IO's ping/pong, here 60 s
 *   so that nothing crosses the wire);
 * - a client that keeps sending but takes none of its output is closed after
 *   write_timeout: its reads do not move the write deadline;
 * - a keep-alive client that shuts its sending side still gets the whole
 *   response it asked for, and a parked polling GET still gets its answer.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const crypto = require('node:crypto');
const { startEmitd, stopAndCheck, delay, handler } = require('./lib/harness');
const { openWs, withTimeout, httpRequest, parseOpen, splitPayload } = require('./lib/clients');

const REQUEST_TIMEOUT = 3000;
const WRITE_TIMEOUT = 2000;
const BIG = 256 * 1024 * 1024;

let emitd;
test.before(async () => {
  emitd = await startEmitd({
    config: {
      ping_interval: 60000, ping_timeout: 20000, workers: 1,
      namespaces: [{ name: '/', script: handler('limits.lua') }],
      limits: {
        request_timeout: REQUEST_TIMEOUT, write_timeout: WRITE_TIMEOUT,
        output_soft: BIG, output_hard: BIG,
      },
    },
  });
});
test.after(async () => { if (emitd) await emitd.stop(); });

function tcp(port) {
  return withTimeout(new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  }), 5000, 'the TCP connect');
}

/* A masked client text frame (RFC 6455 5.3). */
function wsFrame(text) {
  const payload = Buffer.from(text);
  const mask = crypto.randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x81, 0x80 | len])
    : len < 65536 ? Buffer.from([0x81, 0x80 | 126, len >> 8, len & 255])
      : null;
  assert.ok(head, 'short frames only');
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([head, mask, body]);
}

test('a quiet WebSocket outlives request_timeout; a stalled request head gets 408 after it', async () => {
  const url = emitd.url.replace('http', 'ws') + '/socket.io/?EIO=4&transport=websocket';
  const conn = await openWs(url);
  const open = await conn.queue.next(5000, 'the open packet');
  assert.match(open, /^0\{"sid"/);
  let wsClosedAt = null;
  conn.closed.then((c) => { wsClosedAt = c.at; });

  /* A raw TCP client that sends half a request head and then nothing. */
  const stalled = await tcp(emitd.port);
  stalled.write('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n');
  let reply = '';
  stalled.on('data', (d) => { reply += d.toString('latin1'); });
  const stalledClosed = new Promise((resolve) => stalled.once('close', () => resolve(Date.now())));
  stalled.on('error', () => {});
  const t0 = Date.now();

  const closedAt = await withTimeout(stalledClosed, REQUEST_TIMEOUT + 15000, 'the stalled head to be closed');
  assert.ok(closedAt - t0 >= REQUEST_TIMEOUT - 500, `closed too early: ${closedAt - t0} ms`);
  assert.match(reply, /^HTTP\/1\.1 408 /, 'the stalled client is told why');
  await emitd.waitLog(/sent no whole request within 3000 ms \(limit "request_timeout"\)/);
  /* Wait past the timeout plus a margin, then check the WebSocket. */
  await delay(Math.max(0, t0 + REQUEST_TIMEOUT + 2000 - Date.now()));
  assert.equal(wsClosedAt, null, 'the quiet WebSocket was closed');
  /* And it still works: a Socket.IO CONNECT is answered. */
  conn.ws.send('40');
  const reply40 = await conn.queue.next(5000, 'the CONNECT reply');
  assert.match(String(reply40), /^40\{"sid":"/);
  conn.ws.close();
});

test('a client that sends but takes none of its output is closed after write_timeout', async () => {
  const s = await tcp(emitd.port);
  s.on('error', () => {});
  let got = Buffer.alloc(0);
  s.on('data', (d) => { got = Buffer.concat([got, d]); });
  const key = crypto.randomBytes(16).toString('base64');
  s.write(`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n`
    + `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  for (let i = 0; i < 200 && !got.includes('0{"sid"'); i++) await delay(25);
  assert.ok(got.includes('0{"sid"'), 'upgraded, open packet received');
  s.write(wsFrame('40'));
  for (let i = 0; i < 200 && !got.includes('40{"sid"'); i++) await delay(25);
  assert.ok(got.includes('40{"sid"'), 'connected to "/"');

  /* Stop reading, ask for 24 MB (more than the kernel buffers take), and
   * keep sending pongs: a timeout restarted by any I/O would never fire. */
  s.pause();
  s.write(wsFrame('42["flood",12,2000000]'));
  const t0 = Date.now();
  let closedAt = null;
  s.once('close', () => { closedAt = Date.now(); });
  for (let i = 0; i < 150 && closedAt === null && !/took none of its/.test(emitd.log()); i++) {
    if (!s.destroyed) s.write(wsFrame('3'));
    await delay(100);
  }
  const m = emitd.log().match(/took none of its (\d+) bytes of output for 2000 ms \(limit "write_timeout"\)/);
  assert.ok(m, `closed for the write timeout while it kept sending; log:\n${emitd.logTail(2000)}`);
  assert.ok(Number(m[1]) > 0);
  assert.ok(Date.now() - t0 >= WRITE_TIMEOUT - 500, 'not before write_timeout');
  s.destroy();
});

async function pollingSession() {
  const hs = await httpRequest(emitd.port, 'GET', '/socket.io/?EIO=4&transport=polling');
  assert.equal(hs.status, 200);
  const { sid } = parseOpen(hs.body);
  const base = `/socket.io/?EIO=4&transport=polling&sid=${sid}`;
  assert.equal((await httpRequest(emitd.port, 'POST', base, { body: '40' })).status, 200);
  const r = await httpRequest(emitd.port, 'GET', base);
  assert.match(r.body, /^40\{"sid"/);
  return base;
}

/* Send a raw request on a new connection, shut our side at once, read the
 * answer only after `wait` ms; resolves {head, body, contentLength}. */
async function halfClosedRequest(req, wait) {
  const s = await tcp(emitd.port);
  s.on('error', () => {});
  s.pause();
  const chunks = [];
  s.on('data', (d) => chunks.push(d));
  const closed = new Promise((resolve) => s.once('close', resolve));
  s.end(req);
  return { s, closed, chunks, wait };
}

function parseResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  assert.ok(end > 0, `a response head (got ${JSON.stringify(buf.subarray(0, 200).toString('latin1'))})`);
  const head = buf.subarray(0, end).toString('latin1');
  const cl = Number((head.match(/\r\ncontent-length: (\d+)/i) || [])[1]);
  return { head, body: buf.subarray(end + 4), contentLength: cl };
}

test('a keep-alive client that shuts its side gets the whole large response it asked for', async () => {
  const base = await pollingSession();
  /* 20 MB wait in the polling queue for the next GET */
  assert.equal((await httpRequest(emitd.port, 'POST', base, { body: '42["flood",10,2000000]' })).status, 200);
  const h = await halfClosedRequest(`GET ${base} HTTP/1.1\r\nHost: x\r\n\r\n`);
  await delay(500);         /* the server writes what fits, then meets our FIN */
  h.s.resume();
  await withTimeout(h.closed, 20000, 'the response to end');
  const r = parseResponse(Buffer.concat(h.chunks));
  assert.match(r.head, /^HTTP\/1\.1 200 /);
  assert.ok(r.contentLength > 20000000, `Content-Length ${r.contentLength}`);
  assert.equal(r.body.length, r.contentLength, 'the whole body arrived before the close');
  const packets = splitPayload(r.body.toString('utf8'));
  assert.equal(packets.length, 10);
  assert.match(packets[9], /^42\["blob",10,"x+"\]$/);
});

test('a parked GET whose client shut its side still gets its answer', async () => {
  const base = await pollingSession();
  const h = await halfClosedRequest(`GET ${base} HTTP/1.1\r\nHost: x\r\n\r\n`);
  await delay(300);         /* parked, and the FIN has been read */
  assert.equal((await httpRequest(emitd.port, 'POST', base, { body: '42["flood",1,10]' })).status, 200);
  h.s.resume();
  await withTimeout(h.closed, 10000, 'the answer to the parked GET');
  const r = parseResponse(Buffer.concat(h.chunks));
  assert.match(r.head, /^HTTP\/1\.1 200 /);
  assert.equal(r.body.toString('utf8'), '42["blob",1,"xxxxxxxxxx"]');
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
  emitd = null;
});
