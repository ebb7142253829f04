'use strict';
/*
 * Socket.IO packets spoken by hand over a raw WebSocket, on a daemon with
 * small timers (ping_interval 300 ms, ping_timeout 200 ms, connect_timeout
 * 800 ms): the connect timeout, CONNECT forms, malformed packets, packets
 * for a namespace that was not joined. Expected answers are those of Node's
 * socket.io 4.8.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { startEmitd, stopAndCheck } = require('./lib/harness');
const {
  connect, ack, once, closeAll, openWs, waitClosed, parseOpen, httpRequest, splitPayload, TRANSPORTS,
} = require('./lib/clients');

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
const CONNECT_TIMEOUT = 800;

let emitd;
test.before(async () => {
  emitd = await startEmitd({
    config: { ping_interval: PING_INTERVAL, ping_timeout: PING_TIMEOUT, connect_timeout: CONNECT_TIMEOUT },
  });
});
test.after(async () => { if (emitd) await emitd.stop(); });

function wsUrl() {
  return `ws://127.0.0.1:${emitd.port}/socket.io/?EIO=4&transport=websocket`;
}

/*
 * Open a raw Engine.IO WebSocket that answers pings by itself; next() gives
 * the other messages.
 */
async function rawSocket() {
  const c = await openWs(wsUrl());
  const open = parseOpen(await c.queue.next());
  const origNext = c.queue.next.bind(c.queue);
  c.next = async (ms, what) => {
    for (let i = 0; i < 100; i++) {
      const m = await origNext(ms, what);
      if (m === '2') { if (c.ws.readyState === 1) c.ws.send('3'); continue; }
      return m;
    }
    throw new Error('only pings');
  };
  c.open = open;
  return c;
}

/* Wait for the close of a raw socket, answering pings meanwhile. */
async function closedWithin(c, ms) {
  const deadline = Date.now() + ms;
  for (let i = 0; i < 1000; i++) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    let m;
    try { m = await c.next(left, 'the close'); } catch (_) { break; }
    if (m && m.closed) return m.closed;
  }
  throw new Error(`the connection was not closed within ${ms} ms`);
}

for (const transport of Object.keys(TRANSPORTS)) {
  test(`${transport}: socket.io-client stays connected across ping cycles (300 ms / 200 ms)`, async () => {
    const s = await connect(emitd.url, '/', transport);
    try {
      let dropped = null;
      s.on('disconnect', (r) => { dropped = r; });
      for (let i = 0; i < 4; i++) await once(s.io.engine, 'ping', 3000);
      assert.equal(dropped, null);
      assert.deepEqual(await ack(s, 'echo', 'alive'), ['alive']);
    } finally {
      closeAll(s);
    }
  });
}

test('a websocket that never sends CONNECT is closed after connect_timeout', async () => {
  /* from before the handshake: the session cannot have opened earlier, and
   * its OPEN may take a while to reach us (under Valgrind) */
  const t0 = Date.now();
  const c = await rawSocket();
  try {
    const closed = await closedWithin(c, CONNECT_TIMEOUT + 4000);
    const waited = closed.at - t0;
    assert.ok(waited >= CONNECT_TIMEOUT - 200, `closed after ${waited} ms, connect_timeout is ${CONNECT_TIMEOUT}`);
  } finally {
    c.ws.terminate();
  }
});

test('a polling session that never sends CONNECT is closed after connect_timeout', async () => {
  const base = '/socket.io/?EIO=4&transport=polling';
  const t0 = Date.now();
  const hs = await httpRequest(emitd.port, 'GET', base);
  const { sid } = parseOpen(hs.body);
  let closedAt = null;
  for (let i = 0; i < 30 && closedAt === null; i++) {
    const r = await httpRequest(emitd.port, 'GET', `${base}&sid=${sid}`, { ms: 3000 });
    if (r.status === 400) { closedAt = Date.now(); break; }
    const pkts = splitPayload(r.body);
    if (pkts.includes('1')) { closedAt = Date.now(); break; }
    if (pkts.includes('2')) await httpRequest(emitd.port, 'POST', `${base}&sid=${sid}`, { body: '3' });
  }
  assert.ok(closedAt !== null, 'the session was closed');
  assert.ok(closedAt - t0 >= CONNECT_TIMEOUT - 200, `closed after ${closedAt - t0} ms`);
});

test('CONNECT "40" is answered with a Socket.IO sid distinct from the Engine.IO sid', async () => {
  const c = await rawSocket();
  try {
    c.ws.send('40');
    const m = await c.next();
    assert.match(m, /^40\{"sid":"[A-Za-z0-9_-]{20}"/);
    assert.notEqual(JSON.parse(m.slice(2)).sid, c.open.sid);
  } finally {
    c.ws.terminate();
  }
});

test('CONNECT "40/custom" without the trailing comma is accepted', async () => {
  const c = await rawSocket();
  try {
    c.ws.send('40/custom');
    const m = await c.next();
    assert.match(m, /^40\/custom,\{"sid":"[A-Za-z0-9_-]{20}"/);
  } finally {
    c.ws.terminate();
  }
});

test('CONNECT with auth on "/custom" and an event with an ack id', async () => {
  const c = await rawSocket();
  try {
    c.ws.send('40/custom,{"token":"x"}');
    assert.match(await c.next(), /^40\/custom,\{"sid":/);
    c.ws.send('42/custom,17["whoami"]');
    let m = await c.next();
    if (m.startsWith('42/custom,["welcome"')) m = await c.next();
    const mm = m.match(/^43\/custom,17(\[.*)$/s);
    assert.ok(mm, `ack packet: ${m}`);
    assert.deepEqual(JSON.parse(mm[1])[0].auth, { token: 'x' });
  } finally {
    c.ws.terminate();
  }
});

const MALFORMED = [
  ['42[bad', 'invalid JSON'],
  ['49', 'unknown packet type'],
  ['42["x"', 'unterminated JSON'],
  ['4', 'empty Socket.IO packet'],
  ['42{"a":1}', 'event payload not an array'],
  ['4x', 'garbage type'],
];

for (const [packet, why] of MALFORMED) {
  test(`a malformed packet ${JSON.stringify(packet)} (${why}) closes the connection`, async () => {
    const c = await rawSocket();
    try {
      c.ws.send('40');
      assert.match(await c.next(), /^40\{/);
      c.ws.send(packet);
      await closedWithin(c, 3000);
    } finally {
      c.ws.terminate();
    }
    /* the server still serves others */
    const s = await connect(emitd.url, '/', 'websocket');
    assert.deepEqual(await ack(s, 'echo', 1), [1]);
    closeAll(s);
  });
}

test('a text frame where a binary attachment is expected closes the connection', async () => {
  const c = await rawSocket();
  try {
    c.ws.send('40');
    assert.match(await c.next(), /^40\{/);
    c.ws.send('451-["echo",{"_placeholder":true,"num":0}]');
    c.ws.send('42["echo"]');
    await closedWithin(c, 3000);
  } finally {
    c.ws.terminate();
  }
});

test('a binary event by hand: placeholder plus one binary frame', async () => {
  const c = await rawSocket();
  try {
    c.ws.send('40');
    assert.match(await c.next(), /^40\{/);
    c.ws.send('451-3["echo",{"_placeholder":true,"num":0}]');
    c.ws.send(Buffer.from([1, 2, 3]));
    let m = await c.next();
    if (typeof m === 'string' && m.startsWith('42["welcome"')) m = await c.next();
    assert.equal(m, '461-3[{"_placeholder":true,"num":0}]');
    const bin = await c.next();
    assert.ok(Buffer.isBuffer(bin), 'attachment in a binary frame');
    assert.deepEqual([...bin], [1, 2, 3]);
  } finally {
    c.ws.terminate();
  }
});

test('an event for a namespace the socket has not joined closes the connection (as socket.io does)', async () => {
  const c = await rawSocket();
  try {
    c.ws.send('40');
    assert.match(await c.next(), /^40\{/);
    c.ws.send('42/custom,["echo","x"]');
    await closedWithin(c, 3000);
  } finally {
    c.ws.terminate();
  }
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
