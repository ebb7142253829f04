'use strict';
/*
 * Rooms across workers through the broker: 2 workers, clients spread over
 * both by the master's least-loaded placement and over the three
 * transports. Every member gets each broadcast exactly once and in the order
 * the sender emitted it; the sender is skipped where asked. A broker killed
 * with SIGKILL during traffic is restarted by the master and no broadcast is
 * lost: the rings it relays through live in memory the master keeps.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const {
  startEmitd, stopAndCheck, childrenOf, processArgs, delay, isReference,
} = require('./lib/harness');
const { connect, ack, closeAll, TRANSPORTS } = require('./lib/clients');

const noWorkers = isReference() && 'reference server has no workers';
const TRANSPORT_NAMES = Object.keys(TRANSPORTS);

let emitd;
test.before(async () => { emitd = await startEmitd(); });
test.after(async () => { if (emitd) await emitd.stop(); });

/*
 * n clients (n >= 2), cycling transports, on both workers. Placement is by
 * load, and clients of earlier tests may still be closing, so keep opening
 * (bounded) until both workers hold some; close the extras.
 */
async function spread(n) {
  const kept = [];
  const extra = [];
  try {
    for (let i = 0; i < 8 * n && kept.length < n; i++) {
      const s = await connect(emitd.url, '/', TRANSPORT_NAMES[i % TRANSPORT_NAMES.length]);
      const [who] = await ack(s, 'whoami');
      s.worker = who.worker;
      const workers = new Set(kept.map((k) => k.worker));
      /* The last place goes to a client of a worker not yet present. */
      if (kept.length === n - 1 && workers.size === 1 && workers.has(s.worker)) {
        extra.push(s);
        /* Let the master see the new load (slow under Valgrind). */
        await delay(50);
      } else {
        kept.push(s);
      }
    }
  } finally {
    closeAll(extra);
  }
  assert.equal(kept.length, n, 'could not place clients on both workers');
  return kept;
}

/* Wait (bounded) until every socket has `count` events named `event`. */
async function waitCount(sockets, event, count, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const counts = sockets.map((s) => s.seen.filter((e) => e[0] === event).length);
    if (counts.every((c) => c >= count)) return;
    if (Date.now() > deadline) {
      throw new Error(`"${event}": expected ${count} each, got ${JSON.stringify(counts)}`);
    }
    await delay(20);
  }
}

/* A round trip on every socket: what was sent before has arrived. */
async function barrier(sockets) {
  await Promise.all(sockets.map((s) => ack(s, 'echo', 'barrier')));
}

function payloads(socket, event) {
  return socket.seen.filter((e) => e[0] === event).map((e) => e[1]);
}

function brokerPid() {
  return childrenOf(emitd.pid).find((pid) => /^emitd: broker\b/.test(processArgs(pid) || ''));
}

test('ps shows "emitd: broker" beside the workers', { skip: noWorkers }, async () => {
  const deadline = Date.now() + 5000;
  while (!brokerPid() && Date.now() < deadline) await delay(20);
  assert.ok(brokerPid(), 'no "emitd: broker" child');
});

test('socket:to(room) reaches members on every worker once, in order, not the sender', { skip: noWorkers }, async () => {
  const sockets = await spread(6);
  try {
    for (const s of sockets) await ack(s, 'join', 'xw');
    const [sender, ...others] = sockets;
    for (let k = 0; k < 40; k++) sender.emit('to_room', 'xw', 'tick', k);
    await waitCount(others, 'tick', 40);
    await barrier(sockets);
    const expected = [...Array(40).keys()];
    for (const s of others) assert.deepEqual(payloads(s, 'tick'), expected, `worker ${s.worker}`);
    assert.deepEqual(payloads(sender, 'tick'), []);
  } finally {
    closeAll(sockets);
  }
});

test('nsp:to(room) reaches every member, broadcast skips the sender, except skips a room, across workers', { skip: noWorkers }, async () => {
  const sockets = await spread(4);
  try {
    const [a, b, c, d] = sockets;
    for (const s of [a, b, c]) await ack(s, 'join', 'team');
    await ack(d, 'join', 'quiet');
    await ack(a, 'nsp_to_room', 'team', 'all');
    await ack(a, 'broadcast', 'bc');
    await ack(b, 'except_room', 'quiet', 'ex');
    await waitCount([a, b, c], 'all', 1);
    await waitCount([b, c, d], 'bc', 1);
    await waitCount([a, c], 'ex', 1);
    await barrier(sockets);
    assert.deepEqual(sockets.map((s) => payloads(s, 'all').length), [1, 1, 1, 0]);
    assert.deepEqual(sockets.map((s) => payloads(s, 'bc').length), [0, 1, 1, 1]);
    assert.deepEqual(sockets.map((s) => payloads(s, 'ex').length), [1, 0, 1, 0]);
  } finally {
    closeAll(sockets);
  }
});

test('the broker forwards a room broadcast only to workers with members of the room', { skip: noWorkers }, async () => {
  const sockets = await spread(2);
  const [a, b] = sockets.sort((x, y) => x.worker - y.worker);
  try {
    assert.notEqual(a.worker, b.worker);
    /*
     * The broker's membership filter is a hash table (65,536 slots per
     * worker): a room name colliding with one of b's worker's rooms (every
     * socket id is one) is forwarded and dropped there, by design. So try up
     * to three room names: without the filter every one of them would reach
     * b's worker; with it, three collisions in a row are vanishingly rare.
     */
    let quiet = null;
    const forwarded = [];
    for (const room of ['solo', 'alone', 'single']) {
      await ack(a, 'join', room);
      await barrier(sockets);
      const [before] = await ack(b, 'broker_counts');
      for (let k = 0; k < 10; k++) await ack(a, 'nsp_to_room', room, `only_${room}`, k);
      await waitCount([a], `only_${room}`, 10);
      await barrier(sockets);
      const [after] = await ack(b, 'broker_counts');
      assert.deepEqual(payloads(b, `only_${room}`), [], `b is no member of "${room}"`);
      forwarded.push(after.received - before.received);
      if (after.received === before.received) { quiet = { room, after }; break; }
    }
    assert.ok(quiet, `b's worker has no member of the rooms, yet received ${JSON.stringify(forwarded)} records`);
    /* Once b joins, its worker gets them. */
    await ack(b, 'join', quiet.room);
    for (let k = 0; k < 5; k++) await ack(a, 'nsp_to_room', quiet.room, 'now', k);
    await waitCount([a, b], 'now', 5);
    const [later] = await ack(b, 'broker_counts');
    assert.equal(later.received - quiet.after.received, 5);
    assert.deepEqual(payloads(b, 'now'), [0, 1, 2, 3, 4]);
  } finally {
    closeAll(sockets);
  }
});

test('nsp:to(socket id) reaches that one socket on another worker', { skip: noWorkers }, async () => {
  const sockets = await spread(3);
  const a = sockets[0];
  const target = sockets.find((s) => s.worker !== a.worker);
  try {
    await ack(a, 'nsp_to_room', target.id, 'direct', 'hi');
    await waitCount([target], 'direct', 1);
    await barrier(sockets);
    assert.deepEqual(sockets.map((s) => payloads(s, 'direct').length),
      sockets.map((s) => (s === target ? 1 : 0)));
  } finally {
    closeAll(sockets);
  }
});

test('binary attachments cross workers intact', { skip: noWorkers }, async () => {
  const sockets = await spread(2);
  try {
    for (const s of sockets) await ack(s, 'join', 'bin');
    const bytes = Buffer.from([0, 1, 2, 254, 255]);
    await ack(sockets[0], 'to_room', 'bin', 'blob', { data: bytes, empty: Buffer.alloc(0) });
    await waitCount([sockets[1]], 'blob', 1);
    const [got] = payloads(sockets[1], 'blob');
    assert.ok(Buffer.isBuffer(got.data));
    assert.deepEqual([...got.data], [...bytes]);
    assert.equal(got.empty.length, 0);
  } finally {
    closeAll(sockets);
  }
});

test('kill -9 of the broker during traffic: it is restarted and no broadcast is lost', { skip: noWorkers }, async () => {
  const sockets = await spread(4);
  try {
    for (const s of sockets) await ack(s, 'join', 'storm');
    const [sender, ...others] = sockets;
    const old = brokerPid();
    assert.ok(old, 'no broker to kill');
    const total = 200;
    for (let k = 0; k < total; k++) {
      sender.emit('to_room', 'storm', 'n', k);
      if (k === 60) process.kill(old, 'SIGKILL');
      if (k % 20 === 0) await delay(5);
    }
    const deadline = Date.now() + 5000;
    while ((!brokerPid() || brokerPid() === old) && Date.now() < deadline) await delay(20);
    assert.ok(brokerPid() && brokerPid() !== old, 'the master did not start a new broker');
    await waitCount(others, 'n', total, 8000);
    await barrier(sockets);
    const expected = [...Array(total).keys()];
    for (const s of others) assert.deepEqual(payloads(s, 'n'), expected, `worker ${s.worker}`);
  } finally {
    closeAll(sockets);
  }
});

test('emitd exits cleanly on SIGTERM, broker included', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
