'use strict';
/*
 * Script timers, with the real socket.io-client and 2 workers:
 * emitd.after / emitd.every with cancel, socket:after / socket:every that
 * never fire once their socket is gone, errors inside a timer, bad
 * arguments. Handlers: handlers/timers.lua.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startEmitd, stopAndCheck, handler, delay, runEmitd } = require('./lib/harness');
const { connect, ack, once, closeAll } = require('./lib/clients');

let emitd;
test.before(async () => {
  emitd = await startEmitd({ config: { namespaces: [{ name: '/', script: handler('timers.lua') }] } });
});
test.after(async () => { if (emitd) await emitd.stop(); });

test('emitd.after runs its function once, not before its time', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  try {
    const fired = [];
    s.on('fired', (v) => fired.push(v));
    const firing = once(s, 'fired');
    assert.deepEqual(await ack(s, 'after', 300), [true]);
    const [v] = await firing;
    /* emitd.now() is read inside the handler, after the loop took its time */
    assert.ok(v.waited >= 250, `fired after ${v.waited} ms`);
    await delay(400);
    assert.equal(fired.length, 1, 'fired more than once');
  } finally {
    closeAll(s);
  }
});

test('emitd.every ticks until the timer cancels itself', async () => {
  const s = await connect(emitd.url, '/', 'polling');
  try {
    const ticks = [];
    s.on('tick', (n) => ticks.push(n));
    const stopped = once(s, 'stopped');
    assert.deepEqual(await ack(s, 'every', 50, 4), [true]);
    /* cancel() of the pending timer -> true, then pending() -> false */
    assert.deepEqual(await stopped, [true, false]);
    await delay(300);
    assert.deepEqual(ticks, [1, 2, 3, 4]);
  } finally {
    closeAll(s);
  }
});

test('a cancelled timer never fires', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  try {
    let fired = 0;
    s.on('fired', () => { fired++; });
    /* cancel() -> true, then pending() -> false, a second cancel() -> false */
    assert.deepEqual(await ack(s, 'cancel', 100), [true, false, false]);
    await delay(400);
    assert.equal(fired, 0);
  } finally {
    closeAll(s);
  }
});

/* A client on the given worker (placement is by load; bounded). */
async function onWorker(worker) {
  const extra = [];
  try {
    for (let i = 0; i < 8; i++) {
      const s = await connect(emitd.url, '/', 'websocket');
      const [who] = await ack(s, 'whoami');
      if (who.worker === worker) return s;
      extra.push(s);
    }
  } finally {
    closeAll(extra);
  }
  throw new Error(`no client placed on worker ${worker} in 8 tries`);
}

test('socket:after and socket:every never fire once their socket is gone', async () => {
  /* while the socket lives they run */
  const live = await connect(emitd.url, '/', 'websocket');
  const [who] = await ack(live, 'whoami');
  const tiedEvent = once(live, 'tied');
  assert.deepEqual(await ack(live, 'tied', 50), [true]);
  await tiedEvent;
  closeAll(live);
  await delay(200);
  const observer = await onWorker(who.worker);
  try {
    const [runsBefore] = await ack(observer, 'tied_runs');
    assert.ok(runsBefore >= 1, `the tied timers ran ${runsBefore} times while their socket lived`);
    /* a socket that goes before its timers are due */
    const doomed = await onWorker(who.worker);
    assert.deepEqual(await ack(doomed, 'tied', 300), [true]);
    closeAll(doomed);
    await delay(1000);
    const [runsAfter, worker] = await ack(observer, 'tied_runs');
    assert.equal(worker, who.worker);
    assert.equal(runsAfter, runsBefore, 'a timer of a gone socket fired');
  } finally {
    closeAll(observer);
  }
});

test('an error inside a timer is logged and the next timer still runs', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  try {
    const fired = once(s, 'fired');
    assert.deepEqual(await ack(s, 'failing', 50), [true]);
    const [v] = await fired;
    assert.equal(v.afterError, true);
    await emitd.waitLog(/script error in a timer of emitd\.after: .*boom from a timer/);
    assert.deepEqual(await ack(s, 'whoami').then(([w]) => typeof w.worker), 'number');
  } finally {
    closeAll(s);
  }
});

test('bad intervals are refused with an error the script can catch', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  try {
    for (const ms of [0, -1, 2 ** 31]) {
      const [ok, err] = await ack(s, 'bad', ms);
      assert.equal(ok, false, `every(${ms}) was accepted`);
      assert.match(err, /every: ms must be an integer from 1 to 2147483647/);
    }
  } finally {
    closeAll(s);
  }
});

test('emitd -t accepts a script whose top level makes timers (they never fire there)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-t-'));
  const script = path.join(dir, 'top.lua');
  fs.writeFileSync(script, [
    'local t = emitd.every(10, function() error("must not run") end)',
    'emitd.after(0, function() error("must not run") end)',
    'assert(t:pending() == false)',
    'function on_connect(socket) end',
    '',
  ].join('\n'));
  const conf = path.join(dir, 'emitd.conf');
  fs.writeFileSync(conf, `listen = "127.0.0.1:39999";\nnamespaces = ( { name = "/"; script = "${script}"; } );\n`);
  const r = await runEmitd(['-t', '-c', conf]);
  assert.equal(r.code, 0, r.out);
  assert.doesNotMatch(r.out, /must not run/);
});

test('emitd exits cleanly on SIGTERM with timers pending', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  await ack(s, 'every', 1000, 1000);
  closeAll(s);
  assert.deepEqual(await stopAndCheck(emitd), []);
});
