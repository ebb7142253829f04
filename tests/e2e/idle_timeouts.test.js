'use strict';
/*
 * Idle connections and the 30 s I/O timeout: a connection that is reading
 * a request head is closed after 30 s without progress, but a WebSocket
 * that was upgraded stays open however long it is quiet (its liveness is
 * Engine.IO's ping/pong, here set to 60 s so that nothing at all crosses
 * the wire during the test). Bounded: about 35 s.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startEmitd, stopAndCheck, delay } = require('./lib/harness');
const { openWs, withTimeout } = require('./lib/clients');

let emitd;
test.before(async () => {
  emitd = await startEmitd({ config: { ping_interval: 60000, ping_timeout: 20000, workers: 1 } });
});
test.after(async () => { if (emitd) await emitd.stop(); });

test('a quiet WebSocket outlives the 30 s head timeout; a stalled request head does not', async () => {
  const url = emitd.url.replace('http', 'ws') + '/socket.io/?EIO=4&transport=websocket';
  const conn = await openWs(url);
  const open = await conn.queue.next(5000, 'the open packet');
  assert.match(open, /^0\{"sid"/);
  let wsClosedAt = null;
  conn.closed.then((c) => { wsClosedAt = c.at; });

  /* A raw TCP client that sends half a request head and then nothing. */
  const stalled = net.connect({ host: '127.0.0.1', port: emitd.port });
  await withTimeout(new Promise((resolve) => stalled.once('connect', resolve)), 5000, 'the TCP connect');
  stalled.write('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n');
  let reply = '';
  stalled.on('data', (d) => { reply += d.toString('latin1'); });
  const stalledClosed = new Promise((resolve) => stalled.once('close', () => resolve(Date.now())));
  stalled.on('error', () => {});
  const t0 = Date.now();

  const closedAt = await withTimeout(stalledClosed, 45000, 'the stalled head to be closed');
  assert.ok(closedAt - t0 >= 25000, `closed too early: ${closedAt - t0} ms`);
  assert.match(reply, /^HTTP\/1\.1 408 /, 'the stalled client is told why');
  /* Wait past the timeout plus a margin, then check the WebSocket. */
  await delay(Math.max(0, t0 + 33000 - Date.now()));
  assert.equal(wsClosedAt, null, 'the quiet WebSocket was closed');
  /* And it still works: a Socket.IO CONNECT is answered. */
  conn.ws.send('40');
  const reply40 = await conn.queue.next(5000, 'the CONNECT reply');
  assert.match(String(reply40), /^40\{"sid":"/);
  conn.ws.close();
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
  emitd = null;
});
