'use strict';
/*
 * The per-client limits of the "limits" group with the real
 * socket.io-client and 2 workers: what fits is served whole (an event with
 * 1,000 arguments over every transport, regression test of the Lua stack
 * overrun), what does not closes that client with the limit logged and
 * counted (limitViolations) while the others go on; a script cannot send
 * more attachments than clients accept. Also: 20 workers (the broker's
 * descriptor list overflowed from 14) and `emitd -t` on a script whose top
 * level calls emitd.metrics() (it crashed).
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startEmitd, stopAndCheck, runEmitd, handler, toLibconfig } = require('./lib/harness');
const {
  connect, ack, once, closeAll, normalize, TRANSPORTS, openWs, waitClosed,
} = require('./lib/clients');

const LIMITS = { event_args: 1024, namespaces: 8, rooms: 5, pending_acks: 6, event_name: 64 };

let emitd;
test.before(async () => {
  emitd = await startEmitd({
    config: {
      namespaces: [{ name: '/', script: handler('limits.lua') }, { name: '/dyn/:id', script: handler('limits.lua') }],
      limits: LIMITS,
    },
  });
});
test.after(async () => { if (emitd) await emitd.stop(); });

/* n arguments of every JSON kind, with at most `buffers` binary ones. */
function manyArgs(n, buffers) {
  const args = [];
  for (let i = 0; i < n; i++) {
    switch (i % 7) {
      case 0: args.push(args.filter(Buffer.isBuffer).length < buffers ? Buffer.from([i & 255, 7]) : i); break;
      case 1: args.push(`s${i}\u00e9\u{1F600}`); break;
      case 2: args.push({ k: i, nested: [i, { deep: [true, null] }] }); break;
      case 3: args.push([i, -i, 0.5]); break;
      case 4: args.push(null); break;
      case 5: args.push(i % 2 === 0); break;
      default: args.push(Number.MAX_SAFE_INTEGER - i);
    }
  }
  return args;
}

async function violations(s) {
  const [n] = await ack(s, 'violations');
  return n;
}

for (const transport of Object.keys(TRANSPORTS)) {
  test(`${transport}: an event with 1,000 arguments (10 of them binary) comes back whole through its ack`, async () => {
    const s = await connect(emitd.url, '/', transport);
    try {
      const args = manyArgs(1000, 10);
      assert.equal(args.filter(Buffer.isBuffer).length, 10);
      const back = await ack(s, 'echo', ...args);
      assert.equal(back.length, 1000);
      assert.deepEqual(normalize(back), normalize(args));
      /* two handlers' worth of pushes (the overrun needed more than one) */
      const [n] = await ack(s, 'count', ...args);
      assert.equal(n, 1000);
      assert.equal(s.connected, true);
    } finally {
      closeAll(s);
    }
  });

  test(`${transport}: one argument over limits.event_args closes that client only, logged and counted`, async () => {
    const other = await connect(emitd.url, '/', 'websocket');
    const s = await connect(emitd.url, '/', transport);
    try {
      const before = await violations(other);
      const gone = once(s, 'disconnect', 10000);
      s.emit('echo', ...manyArgs(LIMITS.event_args + 1, 0), () => {});
      const [reason] = await gone;
      assert.equal(reason, 'transport close');
      await emitd.waitLog(/closing client 127\.0\.0\.1 session \S+: an event with 1025 arguments \(limit 1024\) \(limit "event_args"\)/);
      assert.equal(await violations(other), before + 1);
      assert.equal(other.connected, true);
      const [echoed] = await ack(other, 'echo', 'still here');
      assert.equal(echoed, 'still here');
    } finally {
      closeAll(s, other);
    }
  });
}

test('more attachments than limits.attachments (10, as socket.io-parser) close the client; 10 pass', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  try {
    const ten = Array.from({ length: 10 }, (_, i) => Buffer.from([i]));
    const back = await ack(s, 'echo', ...ten);
    assert.deepEqual(normalize(back), normalize(ten));
    const gone = once(s, 'disconnect', 10000);
    s.emit('echo', ...ten, Buffer.from([10]), () => {});
    await gone;
    await emitd.waitLog(/a packet announcing 11 attachments \(limit 10\) \(limit "attachments"\)/);
  } finally {
    closeAll(s);
  }
});

test('a script cannot send more attachments than clients accept: its error, the client stays', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  try {
    const [ok10] = await ack(s, 'send_buffers', 10);
    assert.equal(ok10, true);
    const [ok11, err] = await ack(s, 'send_buffers', 11);
    assert.equal(ok11, false);
    assert.match(err, /11 binary arguments in one packet: more than limits\.attachments \(10\)/);
    const got = s.seen.filter((e) => e[0] === 'buffers');
    assert.equal(got.length, 1, 'only the packet with 10 arrived');
    assert.equal(got[0].length, 11);
    assert.equal(s.connected, true);
  } finally {
    closeAll(s);
  }
});

test('an event name over limits.event_name closes the client', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  try {
    const [n] = await ack(s, 'count', 'x'.repeat(10));
    assert.equal(n, 1);
    const gone = once(s, 'disconnect', 10000);
    s.emit('e'.repeat(LIMITS.event_name + 1), 1);
    await gone;
    await emitd.waitLog(/an event name of 65 bytes \(limit 64\) \(limit "event_name"\)/);
  } finally {
    closeAll(s);
  }
});

test('data nested deeper than limits.json_depth (64) closes the client; 64 levels pass', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  try {
    const nest = (d) => { let v = 'leaf'; for (let i = 0; i < d; i++) v = [v]; return v; };
    /* the argument array is level 1: an argument may nest 63 more */
    const [back] = await ack(s, 'echo', nest(63));
    assert.deepEqual(back, nest(63));
    const gone = once(s, 'disconnect', 10000);
    s.emit('echo', nest(64), () => {});
    await gone;
    await emitd.waitLog(/packet data nested deeper than 64 \(limit "json_depth"\)/);
  } finally {
    closeAll(s);
  }
});

test('a client that answers no acks is closed past limits.pending_acks; one that answers is not', async () => {
  const good = await connect(emitd.url, '/', 'websocket');
  good.on('need_ack', (i, cb) => cb(i));
  const bad = await connect(emitd.url, '/', 'websocket');   /* no handler: never acks */
  try {
    for (let round = 0; round < 3; round++) {
      const [taken] = await ack(good, 'ask_acks', LIMITS.pending_acks);
      assert.equal(taken, LIMITS.pending_acks, 'answered acks do not count against the limit');
    }
    const [first] = await ack(bad, 'ask_acks', LIMITS.pending_acks);
    assert.equal(first, LIMITS.pending_acks);
    const gone = once(bad, 'disconnect', 10000);
    bad.emit('ask_acks', 1);
    await gone;
    await emitd.waitLog(/6 acks asked for and not answered \(limit 6\) \(limit "pending_acks"\)/);
    assert.equal(good.connected, true);
  } finally {
    closeAll(good, bad);
  }
});

test('a join past limits.rooms closes the client', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  try {
    /* "all" is joined at connect: 4 more fit into 5 (the own id does not count) */
    const [n] = await ack(s, 'join_rooms', 4);
    assert.equal(n, 6, 'own id + all + room1..room4');
    const gone = once(s, 'disconnect', 10000);
    s.emit('join_rooms', 5);
    await gone;
    await emitd.waitLog(/a join beyond 5 rooms \(limit "rooms"\)/);
  } finally {
    closeAll(s);
  }
});

test('namespaces past limits.namespaces on one connection close it', async () => {
  const c = await openWs(`ws://127.0.0.1:${emitd.port}/socket.io/?EIO=4&transport=websocket`);
  try {
    assert.match(await c.queue.next(), /^0\{/);
    for (let i = 1; i <= LIMITS.namespaces; i++) c.ws.send(`40/dyn/${i},`);
    for (let i = 1; i <= LIMITS.namespaces; i++) {
      assert.match(await c.queue.next(), /^40\/dyn\/\d+,\{"sid":/);
    }
    c.ws.send(`40/dyn/${LIMITS.namespaces + 1},`);
    const closed = await waitClosed(c, 10000);
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, 'namespaces');
    await emitd.waitLog(/a CONNECT to a namespace beyond 8 at once \(limit "namespaces"\)/);
  } finally {
    c.ws.terminate();
  }
});

test('emitd stops cleanly after the limit tests', async () => {
  const problems = await stopAndCheck(emitd);
  emitd = null;
  assert.deepEqual(problems, []);
});

test('20 workers: the broker starts and a broadcast reaches every worker', async () => {
  const d = await startEmitd({
    config: { workers: 20, namespaces: [{ name: '/', script: handler('limits.lua') }] },
  });
  const sockets = [];
  try {
    const workers = new Set();
    for (let i = 0; i < 40 && workers.size < 3; i++) {
      const s = await connect(d.url, '/', 'websocket');
      sockets.push(s);
      const [w] = await ack(s, 'worker');
      workers.add(w);
    }
    assert.ok(workers.size >= 3, `sockets on ${workers.size} workers`);
    assert.ok(d.children().some((c) => c.args === 'emitd: broker'), 'the broker runs');
    const [sender, ...rest] = sockets;
    const got = rest.map((s) => once(s, 'shouted', 10000));
    await ack(sender, 'shout', 'hello all');
    for (const [value] of await Promise.all(got)) assert.equal(value, 'hello all');
    assert.doesNotMatch(d.log(), /the broker \(pid \d+\) exited/);
  } finally {
    closeAll(sockets);
    const problems = await stopAndCheck(d);
    assert.deepEqual(problems, []);
  }
});

test('emitd -t runs a script whose top level calls emitd.metrics() and emitd.limit()', async () => {
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'emitd-t-'));
  const script = path.join(dir, 'top.lua');
  fs.writeFileSync(script, [
    'local m = emitd.metrics()',
    'assert(m.totalConnections == 0 and m.limitViolations == 0)',
    'assert(emitd.limit("boot", 5, 1000))',
    'function on_connect(socket) end',
  ].join('\n'));
  const conf = path.join(dir, 'emitd.conf');
  fs.writeFileSync(conf, toLibconfig({
    namespaces: [{ name: '/', script }, { name: '/l', script: handler('limits.lua') }],
  }));
  const r = await runEmitd(['-t', '-c', conf]);
  assert.equal(r.signal, null, r.out);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /test is successful/);
});
