'use strict';
/*
 * Pipelined HTTP requests on one keep-alive connection: more than 64 are
 * all answered, and a request queued behind a long-polling GET runs only
 * after the send that answered the GET is over — here a binary broadcast
 * answers the GET and the queued request closes the session, which must
 * not pull the session out from under the broadcast (this crashed under
 * AddressSanitizer before).
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startEmitd, stopAndCheck, delay } = require('./lib/harness');
const { connect, ack, closeAll, httpRequest, withTimeout } = require('./lib/clients');

let emitd;
test.before(async () => { emitd = await startEmitd({ config: { workers: 1 } }); });
test.after(async () => { if (emitd) await emitd.stop(); });

/* Open a raw keep-alive connection collecting everything it receives. */
async function rawConn() {
  const sock = net.connect({ host: '127.0.0.1', port: emitd.port });
  await withTimeout(new Promise((resolve) => sock.once('connect', resolve)), 5000, 'connect');
  const c = { sock, data: '' };
  sock.on('data', (d) => { c.data += d.toString('latin1'); });
  sock.on('error', () => {});
  return c;
}

async function waitFor(what, fn, ms = 5000) {
  const deadline = Date.now() + ms;
  for (let i = 0; i < 1000; i++) {
    if (fn()) return;
    if (Date.now() > deadline) break;
    await delay(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('100 pipelined requests on one connection all get answers', async () => {
  const c = await rawConn();
  let reqs = '';
  for (let i = 0; i < 100; i++) reqs += 'GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n';
  c.sock.write(reqs);
  await waitFor('100 responses', () => (c.data.match(/HTTP\/1\.1 404 /g) || []).length === 100);
  c.sock.destroy();
});

test('a request pipelined behind a parked GET waits for the broadcast that answers the GET', async () => {
  /* A polling session connected to "/". */
  const hs = await httpRequest(emitd.port, 'GET', '/socket.io/?EIO=4&transport=polling');
  const sid = JSON.parse(hs.body.slice(1)).sid;
  const path = `/socket.io/?EIO=4&transport=polling&sid=${sid}`;
  await httpRequest(emitd.port, 'POST', path, { body: '40' });
  const first = await httpRequest(emitd.port, 'GET', path);
  assert.match(first.body, /^40\{"sid"/);

  /* GET (parks) and, behind it on the same connection, POST "1" (close). */
  const c = await rawConn();
  c.sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`
    + `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1`);
  await delay(200);
  /* Another client's binary broadcast answers the parked GET. */
  const other = await connect(emitd.url, '/', 'websocket');
  try {
    await ack(other, 'broadcast', 'blob', Buffer.from([1, 2, 3]));
    await waitFor('both answers', () => (c.data.match(/HTTP\/1\.1 200 /g) || []).length >= 2);
    assert.match(c.data, /blob/);
    /* The server is still whole. */
    assert.deepEqual(await ack(other, 'echo', 'still here'), ['still here']);
  } finally {
    closeAll(other);
    c.sock.destroy();
  }
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
  emitd = null;
});
