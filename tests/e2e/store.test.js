'use strict';
/*
 * emitd.store: the scripts' key/value store and lists are the same on
 * every worker (values set on one are read on the other, increments from
 * both add up, a capped list keeps the newest), expire with their ttl,
 * refuse what is too large with an error, and survive a worker killed
 * with kill -9. Real clients, 2 workers. Handlers: store.lua.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { startEmitd, handler, delay, childrenOf, processArgs, isAlive, isReference } = require('./lib/harness');
const { io, ack, closeAll, waitConnected } = require('./lib/clients');

const skip = isReference() && 'emitd-only: emitd.store is an emitd API';

let emitd;
test.before(async () => {
  if (skip) return;
  emitd = await startEmitd({
    config: {
      store: { entries: 1000 },
      namespaces: [{ name: '/s', script: handler('store.lua') }],
      engineio: undefined,
    },
  });
});
test.after(async () => { if (emitd) await emitd.stop(); });

async function client() {
  const s = io(`${emitd.url}/s`, { forceNew: true, transports: ['websocket'], reconnection: false, timeout: 5000 });
  await waitConnected(s);
  [s.worker] = (await ack(s, 'whoami')).map((w) => w.worker);
  return s;
}

/* One client on each worker (placement is by load: bounded retries). */
async function onBoth() {
  const all = [];
  for (let i = 0; i < 12; i++) {
    all.push(await client());
    const w1 = all.find((c) => c.worker === 1);
    const w2 = all.find((c) => c.worker === 2);
    if (w1 && w2) {
      closeAll(all.filter((c) => c !== w1 && c !== w2));
      return [w1, w2];
    }
  }
  closeAll(all);
  throw new Error('could not place clients on both workers');
}

async function call(s, ...args) {
  return (await ack(s, ...args))[0];
}

test('a value set on one worker is read on the other; increments from both add up', { skip }, async () => {
  const [a, b] = await onBoth();
  try {
    assert.equal(await call(a, 'set', 'user:1', { name: 'Ann', tags: ['x', 1, true, null] }, null), true);
    assert.deepEqual(await call(b, 'get', 'user:1'), { name: 'Ann', tags: ['x', 1, true, null] });
    assert.equal(await call(b, 'get', 'nobody'), null);
    const [x, y] = await Promise.all([call(a, 'incr', 'hits', 1, 200), call(b, 'incr', 'hits', 1, 200)]);
    assert.equal(Math.max(x, y), 400, 'no increment lost between the workers');
    assert.equal(await call(a, 'get', 'hits'), 400);
    assert.equal(await call(b, 'del', 'user:1'), true);
    assert.equal(await call(a, 'get', 'user:1'), null);
    assert.equal(await call(a, 'del', 'user:1'), false);
  } finally {
    closeAll(a, b);
  }
});

test('a capped list pushed from both workers keeps the newest, in order', { skip }, async () => {
  const [a, b] = await onBoth();
  try {
    for (let i = 0; i < 8; i++) {
      const n = await call(i % 2 ? b : a, 'push', 'chat:1:messages', { id: i, text: `m${i}` }, 5);
      assert.equal(n, Math.min(i + 1, 5));
    }
    assert.deepEqual((await call(a, 'range', 'chat:1:messages', 0, -1)).map((m) => m.id), [3, 4, 5, 6, 7]);
    assert.deepEqual((await call(b, 'range', 'chat:1:messages', -2, -1)).map((m) => m.text), ['m6', 'm7']);
    assert.equal(await call(b, 'len', 'chat:1:messages'), 5);
    assert.deepEqual(await call(a, 'range', 'no-list', 0, -1), []);
  } finally {
    closeAll(a, b);
  }
});

test('a ttl expires a key for every worker; too large or odd values are refused with an error', { skip }, async () => {
  const [a, b] = await onBoth();
  try {
    assert.equal(await call(a, 'set', 'typing:u1', true, 300), true);
    assert.equal(await call(b, 'get', 'typing:u1'), true);
    await delay(400);
    assert.equal(await call(b, 'get', 'typing:u1'), null);
    for (const [what, re] of [['key', /1 to 200 bytes/], ['value', /over 2048/], ['fn', /cannot be JSON/],
                              ['incr', /other than an integer/]]) {
      const r = await call(a, 'bad', what);
      if (what === 'incr') {
        assert.equal(r.ok, true);
        continue;
      }
      assert.equal(r.ok, false, what);
      assert.match(r.err, re, what);
    }
    const st = await call(b, 'stats');
    assert.equal(st.capacity, 1000);
    assert.ok(st.entries >= 1);
  } finally {
    closeAll(a, b);
  }
});

test('the store survives kill -9 of a worker: what it wrote stays, and its successor sees it', { skip }, async () => {
  let [a, b] = await onBoth();
  try {
    assert.equal(await call(a, 'set', 'kept', 'from worker 1', null), true);
    await call(a, 'incr', 'count', 1, 50);
    const pid = childrenOf(emitd.pid).find((p) => processArgs(p) === `emitd: worker ${a.worker}`);
    assert.ok(pid, 'the worker\'s pid');
    /* killed in the middle of its own increments */
    a.emit('incr', 'count', 1, 100000, () => {});
    await delay(30);
    process.kill(pid, 'SIGKILL');
    const n = await call(b, 'incr', 'count', 1, 10);
    assert.ok(n >= 60, `the other worker goes on counting (${n})`);
    assert.equal(await call(b, 'get', 'kept'), 'from worker 1');
    /* a new worker in that slot reads the same store */
    for (let i = 0; i < 100; i++) {
      const p = childrenOf(emitd.pid).find((x) => processArgs(x) === `emitd: worker ${a.worker}`);
      if (p && p !== pid && isAlive(p)) break;
      await delay(50);
    }
    closeAll(a);
    let fresh = null;
    const extra = [];
    for (let i = 0; i < 12 && !fresh; i++) {
      const c = await client();
      if (c.worker === a.worker) fresh = c; else extra.push(c);
    }
    closeAll(extra);
    assert.ok(fresh, 'a client on the restarted worker');
    assert.equal(await call(fresh, 'get', 'kept'), 'from worker 1');
    const m = await call(fresh, 'incr', 'count', 1, 1);
    assert.equal(m, await call(b, 'get', 'count'));
    closeAll(fresh);
  } finally {
    closeAll(a, b);
  }
});
