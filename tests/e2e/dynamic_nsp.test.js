'use strict';
/*
 * A parameterised namespace ("/dev/:id"): each concrete name is its own
 * namespace with socket.params, and nsp:to(room) in its script reaches the
 * room's members in every instance, on every worker, each framed with its
 * own namespace name.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { startEmitd, stopAndCheck, handler, delay } = require('./lib/harness');
const { connect, ack, closeAll } = require('./lib/clients');

let emitd;
test.before(async () => {
  emitd = await startEmitd({
    config: {
      namespaces: [
        { name: '/', script: handler('main.lua') },
        { name: '/dev/:id', script: handler('main.lua') },
      ],
    },
  });
});
test.after(async () => { if (emitd) await emitd.stop(); });

async function waitFor(cond, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

/* First, on a fresh server: no instance of the pattern exists anywhere yet. */
test('a broadcast to every instance skips a worker that has none', async () => {
  const sockets = [];
  try {
    const d = await connect(emitd.url, '/dev/9', 'websocket');
    const [dw] = await ack(d, 'whoami');
    sockets.push(d);
    /* A "/" client on the other worker, to read that worker's counts. */
    let other = null;
    for (let i = 0; i < 8 && !other; i++) {
      const s = await connect(emitd.url, '/', 'websocket');
      sockets.push(s);
      const [w] = await ack(s, 'whoami');
      if (w.worker !== dw.worker) other = s;
    }
    assert.ok(other, 'a client on the other worker');
    await ack(d, 'join', 'fleet');
    const [before] = await ack(other, 'broker_counts');
    for (let k = 0; k < 5; k++) await ack(d, 'nsp_to_room', 'fleet', 'ping', k);
    await waitFor(() => d.seen.filter((e) => e[0] === 'ping').length === 5, 'the local deliveries');
    const [after] = await ack(other, 'broker_counts');
    assert.equal(after.received, before.received, 'the worker with no /dev instance got no record');
  } finally {
    closeAll(sockets);
  }
});

test('socket.params and nsp:to(room) across instances and workers', async () => {
  const sockets = [];
  try {
    /* Instances /dev/1 .. /dev/4; least-loaded placement spreads them. */
    for (let i = 1; i <= 4; i++) {
      const s = await connect(emitd.url, `/dev/${i}`, i % 2 ? 'websocket' : 'polling');
      const [who] = await ack(s, 'whoami');
      assert.equal(who.nsp, `/dev/${i}`);
      assert.deepEqual(who.params, { id: String(i) });
      s.worker = who.worker;
      sockets.push(s);
    }
    assert.equal(new Set(sockets.map((s) => s.worker)).size, 2, 'instances on both workers');
    const [a, b, c] = sockets;   /* sockets[3] joins nothing */
    for (const s of [a, b, c]) await ack(s, 'join', 'fleet');
    await ack(a, 'nsp_to_room', 'fleet', 'all', 'go');
    const got = (s) => s.seen.filter((e) => e[0] === 'all');
    await waitFor(() => [a, b, c].every((s) => got(s).length === 1), 'the broadcast');
    await Promise.all(sockets.map((s) => ack(s, 'echo', 'barrier')));
    assert.deepEqual(sockets.map((s) => got(s).length), [1, 1, 1, 0]);
    assert.deepEqual(got(b)[0], ['all', 'go']);
  } finally {
    closeAll(sockets);
  }
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
