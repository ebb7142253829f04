'use strict';
/*
 * What an operator sees: errors in handler scripts are logged with the
 * script's file and line and hurt nobody; the processes carry their role in
 * their titles; a killed worker is restarted; the command line (-v, -t, no
 * arguments).
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  startEmitd, stopAndCheck, runEmitd, portIsFree, delay, isAlive, HANDLERS, isReference, processArgs,
} = require('./lib/harness');
const { connect, ack, once, closeAll, httpRequest, parseOpen } = require('./lib/clients');

let emitd;
test.before(async () => { emitd = await startEmitd(); });
test.after(async () => { if (emitd) await emitd.stop(); });

function lineOf(file, marker) {
  const lines = fs.readFileSync(path.join(HANDLERS, file), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(marker));
  assert.ok(i >= 0, `marker ${marker} in ${file}`);
  return i + 1;
}

/* The children of the master whose title matches re, polled (bounded). */
async function waitChildren(daemon, predicate, what, ms = 10000) {
  const deadline = Date.now() + ms;
  let kids = [];
  for (let i = 0; i < 500; i++) {
    kids = daemon.children();
    if (predicate(kids)) return kids;
    if (Date.now() > deadline) break;
    await delay(50);
  }
  throw new Error(`${what} within ${ms} ms; children: ${JSON.stringify(kids)}`);
}

test('an error in an event handler is logged with file:line; the worker and the client survive', async () => {
  for (const transport of ['websocket', 'polling']) {
    const s = await connect(emitd.url, '/', transport);
    try {
      let dropped = null;
      s.on('disconnect', (r) => { dropped = r; });
      const line = lineOf('main.lua', 'E2E-BOOM-LINE');
      s.emit('boom');
      await emitd.waitLog(new RegExp(`handlers/main\\.lua:${line}\\b`));
      /* the same client can still use other events */
      assert.deepEqual(await ack(s, 'echo', 'after boom'), ['after boom']);
      s.emit('boom');
      assert.deepEqual(await ack(s, 'echo', 'again'), ['again']);
      assert.equal(dropped, null, 'the client was not disconnected');
      assert.equal(s.connected, true);
    } finally {
      closeAll(s);
    }
  }
});

test('an error in on_connect is logged with file:line', async () => {
  const { io } = require('./lib/clients');
  const s = io(`${emitd.url}/crash`, { forceNew: true, reconnection: false, transports: ['websocket'] });
  try {
    await once(s, 'connect_error');
    const line = lineOf('crash.lua', 'E2E-CRASH-LINE');
    await emitd.waitLog(new RegExp(`handlers/crash\\.lua:${line}\\b`));
  } finally {
    closeAll(s);
  }
});

test('emitd.log() from a script reaches the log', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  try {
    const marker = `e2e-log-marker-${process.pid}-${Date.now()}`;
    await ack(s, 'log', 'warn', marker);
    await emitd.waitLog(new RegExp(marker));
  } finally {
    closeAll(s);
  }
});

test('ps shows "emitd: master", "emitd: worker 1" and "emitd: worker 2"', { skip: isReference() && 'reference server has no workers' }, async () => {
  const kids = await waitChildren(emitd, (k) => k.filter((c) => /emitd: worker [12]\b/.test(c.args || '')).length === 2,
    'two workers did not appear');
  const titles = kids.map((k) => k.args);
  assert.ok(titles.some((t) => /^emitd: worker 1\b/.test(t)), JSON.stringify(titles));
  assert.ok(titles.some((t) => /^emitd: worker 2\b/.test(t)), JSON.stringify(titles));
  assert.match(processArgs(emitd.pid), /^emitd: master\b/);
});

test('kill -9 of a worker: the master starts a new one and clients are served', { skip: isReference() && 'reference server has no workers' }, async () => {
  const kids = await waitChildren(emitd, (k) => k.some((c) => /^emitd: worker 1\b/.test(c.args || '')), 'worker 1 is missing');
  const w1 = kids.find((c) => /^emitd: worker 1\b/.test(c.args)).pid;
  /* a client of worker 1 (connections alternate between the workers) */
  let victim = null;
  const others = [];
  for (let i = 0; i < 4 && !victim; i++) {
    const s = await connect(emitd.url, '/', 'websocket', { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
    const [who] = await ack(s, 'whoami');
    if (who.worker === 1) victim = s; else others.push(s);
  }
  assert.ok(victim, 'a client landed on worker 1');
  try {
    const dropped = once(victim, 'disconnect', 5000);
    /* listened for now: the reconnection may come before the new worker shows */
    const back = once(victim, 'connect', 8000);
    process.kill(w1, 'SIGKILL');
    const [reason] = await dropped;
    assert.equal(reason, 'transport close');
    const fresh = await waitChildren(emitd, (k) => k.some((c) => /^emitd: worker 1\b/.test(c.args || '') && c.pid !== w1),
      'no new worker 1 appeared');
    assert.ok(!isAlive(w1));
    assert.ok(fresh.filter((c) => /^emitd: worker [12]\b/.test(c.args || '')).length === 2);
    /* the client's own reconnection gets it served again */
    await back;
    assert.deepEqual(await ack(victim, 'echo', 'back'), ['back']);
    /* the clients of the other worker were not touched */
    for (const o of others) assert.deepEqual(await ack(o, 'echo', 'untouched'), ['untouched']);
    /* new clients are served by both workers again */
    const seen = new Set();
    const extra = [];
    for (let i = 0; i < 4 && seen.size < 2; i++) {
      const s = await connect(emitd.url, '/', 'websocket');
      extra.push(s);
      seen.add((await ack(s, 'whoami'))[0].worker);
    }
    closeAll(extra);
    assert.deepEqual([...seen].sort(), [1, 2]);
  } finally {
    closeAll(victim, others);
  }
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});

test('emitd -v prints the version', async () => {
  const mesonBuild = fs.readFileSync(path.join(__dirname, '..', '..', 'meson.build'), 'utf8');
  const version = mesonBuild.match(/version\s*:\s*'([^']+)'/)[1];
  const r = await runEmitd(['-v']);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /emitd/);
  assert.ok(r.out.includes(version), `"${r.out.trim()}" names version ${version}`);
});

test('emitd -t -c good.conf exits 0', { skip: isReference() && 'reference server has no -t' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-t-'));
  const good = path.join(dir, 'good.conf');
  fs.writeFileSync(good, [
    '# a good configuration',
    'listen = "127.0.0.1:39999";',
    'workers = 2;',
    'log_level = "warn";',
    `namespaces = ( { name = "/"; script = "${path.join(HANDLERS, 'main.lua')}"; } );`,
    '',
  ].join('\n'));
  const r = await runEmitd(['-t', '-c', good]);
  assert.equal(r.code, 0, r.out);
});

test('emitd -t -c bad.conf exits non-zero and names the line', { skip: isReference() && 'reference server has no -t' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-t-'));
  const bad = path.join(dir, 'bad.conf');
  fs.writeFileSync(bad, [
    '# line 1',
    'listen = "127.0.0.1:39999";',
    'workers = ;',
    'log_level = "info";',
    '',
  ].join('\n'));
  const r = await runEmitd(['-t', '-c', bad]);
  assert.notEqual(r.code, 0, r.out);
  assert.match(r.out, /(line\s*3\b|:3\b)/i, `the message names line 3: ${r.out.trim()}`);
  /* a well-formed file with a wrong value is refused too */
  const wrong = path.join(dir, 'wrong.conf');
  fs.writeFileSync(wrong, 'listen = "127.0.0.1:39999";\nworkers = "two";\n');
  const r2 = await runEmitd(['-t', '-c', wrong]);
  assert.notEqual(r2.code, 0, r2.out);
  assert.match(r2.out, /workers/, r2.out);
});

test('emitd -t without -c checks the embedded default and exits 0', { skip: isReference() && 'reference server has no -t' }, async () => {
  const r = await runEmitd(['-t']);
  assert.equal(r.code, 0, r.out);
});

test('emitd with no arguments listens on 127.0.0.1:3000', async (t) => {
  if (!(await portIsFree(3000))) {
    t.skip('port 3000 is in use on this machine');
    return;
  }
  const d = await startEmitd({ args: [], port: 3000 });
  try {
    const r = await httpRequest(3000, 'GET', '/socket.io/?EIO=4&transport=polling');
    assert.equal(r.status, 200);
    const { sid } = parseOpen(r.body);
    assert.match(sid, /^[A-Za-z0-9_-]{20}$/);
    /* The embedded default: "/" open, no script; the real client connects. */
    for (const transport of ['websocket', 'polling']) {
      const s = await connect('http://127.0.0.1:3000', '/', transport);
      assert.ok(s.connected);
      closeAll(s);
    }
  } finally {
    assert.deepEqual(await stopAndCheck(d), []);
  }
});
