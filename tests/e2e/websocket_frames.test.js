'use strict';
/*
 * WebSocket framing as clients may send it, against the raw Engine.IO echo
 * endpoint: messages fragmented over several frames, client pings, a
 * message whose frame arrives a few bytes at a time, and one large frame.
 * The worker hands wslay only whole frames and keeps no wslay state while a
 * connection is idle, so every one of these crosses that boundary.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('net');
const crypto = require('crypto');
const { startEmitd, stopAndCheck, handler, delay } = require('./lib/harness');
const { openWs, withTimeout, WAIT_MS } = require('./lib/clients');

const MAX = 600000;
let emitd;
test.before(async () => {
  emitd = await startEmitd({
    config: {
      engineio: [{
        path: '/engine.io/', script: handler('eio_echo.lua'), ping_interval: 25000,
        ping_timeout: 20000, max_payload: MAX,
      }],
    },
  });
});
test.after(async () => { if (emitd) await emitd.stop(); });

async function openEcho() {
  const conn = await openWs(`ws://127.0.0.1:${emitd.port}/engine.io/?EIO=4&transport=websocket`);
  const open = await conn.queue.next();
  assert.match(open, /^0\{"sid"/);
  return conn;
}

test('a message fragmented over three frames is echoed whole', async () => {
  const { ws, queue } = await openEcho();
  try {
    ws.send('4he', { fin: false });
    ws.send('ll', { fin: false });
    ws.send('o', { fin: true });
    assert.equal(await queue.next(), '4hello');
    ws.send('4after');
    assert.equal(await queue.next(), '4after');
  } finally {
    ws.terminate();
  }
});

test('a client ping gets a pong with the same data, then messages still flow', async () => {
  const { ws, queue } = await openEcho();
  try {
    const pong = withTimeout(new Promise((resolve) => ws.once('pong', resolve)), WAIT_MS, 'the pong');
    ws.ping(Buffer.from('are-you-there'));
    assert.equal((await pong).toString(), 'are-you-there');
    ws.send('4still');
    assert.equal(await queue.next(), '4still');
  } finally {
    ws.terminate();
  }
});

test('a large message in one frame (400 kB, more than the default read bound) is echoed intact', async () => {
  const { ws, queue } = await openEcho();
  try {
    const big = Buffer.alloc(400000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    ws.send(big, { binary: true });
    const back = await queue.next(10000, 'the large echo');
    assert.ok(Buffer.isBuffer(back));
    assert.equal(back.length, big.length);
    assert.ok(back.equals(big));
  } finally {
    ws.terminate();
  }
});

/* A masked client frame, by hand. */
function clientFrame(opcode, payload, fin = true) {
  const mask = crypto.randomBytes(4);
  const body = Buffer.from(payload);
  const head = [(fin ? 0x80 : 0) | opcode];
  if (body.length < 126) head.push(0x80 | body.length);
  else head.push(0x80 | 126, body.length >> 8, body.length & 0xff);
  const masked = Buffer.from(body.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([Buffer.from(head), mask, masked]);
}

test('frames that arrive a few bytes at a time are assembled', async () => {
  const sock = net.connect(emitd.port, '127.0.0.1');
  let got = Buffer.alloc(0);
  sock.on('data', (d) => { got = Buffer.concat([got, d]); });
  try {
    await withTimeout(new Promise((r) => sock.once('connect', r)), WAIT_MS, 'connect');
    const key = crypto.randomBytes(16).toString('base64');
    sock.write(`GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n`
      + `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    const text = '4' + 'piecewise-'.repeat(20);   /* 201 bytes: a 16-bit length */
    const frames = Buffer.concat([clientFrame(1, text.slice(0, 50), false), clientFrame(0, text.slice(50))]);
    for (let i = 0; i < frames.length; i += 7) {
      sock.write(frames.subarray(i, i + 7));
      await delay(2);
    }
    const deadline = Date.now() + WAIT_MS;
    while (!got.includes(Buffer.from(text)) && Date.now() < deadline) await delay(20);
    assert.ok(got.includes(Buffer.from(text)), 'the echo of the reassembled message');
    assert.match(got.toString('latin1'), /^HTTP\/1\.1 101 /);
  } finally {
    sock.destroy();
  }
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
