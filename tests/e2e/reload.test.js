'use strict';
/*
 * SIGHUP reloads the configuration without a restart: new workers start
 * on it and take every new connection, the old ones close their sessions
 * (the clients reconnect, and with recovery on recover every event they
 * missed) and exit; a configuration that does not load leaves the running
 * one serving; the listeners change without closing the kept ones; a
 * changed script serves the new connections; a reload asked during a
 * reload follows it.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const os = require('node:os');
const { startEmitd, stopAndCheck, handler, toLibconfig, freePort, isReference, childrenOf, delay, timeMs } = require('./lib/harness');
const { io, waitConnected, waitUntil, httpRequest, closeAll } = require('./lib/clients');

const skip = isReference() && 'emitd-only: SIGHUP reload';
const KEY = 'backend-key-0123456789abcdef';

/* A daemon whose configuration and script the test rewrites. */
async function startReloadable(extra = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-reload-'));
  const script = path.join(dir, 'reload.lua');
  fs.copyFileSync(handler('reload.lua'), script);
  const admin = await freePort();
  const settings = {
    workers: 2,
    log_level: 'info',
    recovery: { max_disconnection: 60000 },
    admin: { listen: `127.0.0.1:${admin}`, keys: [KEY], timeout: 5000 },
    namespaces: [{ name: '/', script }],
    engineio: undefined,
    ...extra,
  };
  const d = await startEmitd({ config: settings });
  const conf = JSON.parse(fs.readFileSync(`${d.confPath}.json`, 'utf8'));
  return {
    d, dir, script, admin, conf,
    /* Write the configuration (the running one changed by `change`). */
    write(change = {}) {
      const next = { ...conf, ...change };
      for (const k of Object.keys(next)) if (next[k] === undefined) delete next[k];
      fs.writeFileSync(d.confPath, toLibconfig(next));
    },
    hup() { process.kill(d.pid, 'SIGHUP'); },
    count(re) { return (d.log().match(new RegExp(re.source, 'g')) || []).length; },
    /* Stops by itself on SIGTERM, with no sanitizer report. */
    async check() { assert.deepEqual(await stopAndCheck(d), []); },
    async stop() { await d.stop(); fs.rmSync(dir, { recursive: true, force: true }); },
  };
}

/* The workers the health report lists: [[number, status]]. */
async function workers(r) {
  /* A connection of its own: an idle keep-alive one to an old worker closes
   * when that worker exits, and a request sent at that moment is lost. */
  const h = await httpRequest(r.admin, 'GET', '/health', { headers: { Connection: 'close' }, ms: timeMs(3000) });
  return JSON.parse(h.body).details.workers.map((w) => [w.worker, w.status]);
}

/* Wait until the log says `re` `n` times (a reload's steps). */
function logged(r, re, n = 1, ms = 20000) {
  return waitUntil(`${n} x ${re} in the log`, () => r.count(re) >= n, timeMs(ms));
}

async function apiEmit(r, seq) {
  const res = await httpRequest(r.admin, 'POST', '/v1/emit', {
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json', Connection: 'close' },
    body: JSON.stringify({ to: 'all', event: 'tick', args: [seq] }), ms: timeMs(10000),
  }).catch((e) => { throw new Error(`emit ${seq} at ${new Date().toISOString()}: ${e.message}`); });
  assert.equal(res.status, 200, `emit ${seq}: ${res.body}`);
}

test('SIGHUP under traffic: no connection refused, no ack lost, every broadcast recovered in order', { skip, timeout: timeMs(120000) }, async () => {
  const r = await startReloadable();
  const clients = [];
  const stats = [];
  let stop = false;
  try {
    for (let i = 0; i < 6; i++) {
      const polling = i % 2 === 1;
      const s = io(r.d.url, {
        forceNew: true, transports: polling ? ['polling'] : ['websocket'], upgrade: false,
        reconnectionDelay: 50, reconnectionDelayMax: 200, randomizationFactor: 0,
        /* at-least-once for the emits in flight when a transport closes */
        retries: 20, ackTimeout: timeMs(3000),
      });
      const st = { ticks: [], connects: 0, recovered: 0, errors: 0, acks: 0, lost: 0, wrong: 0, polling };
      s.on('tick', (n) => st.ticks.push(n));
      s.on('connect', () => { st.connects++; if (s.recovered) st.recovered++; });
      s.on('connect_error', () => { st.errors++; });
      clients.push(s);
      stats.push(st);
      await waitConnected(s);
    }
    const before = (await workers(r)).map(([n]) => n).sort();
    assert.deepEqual(before, [1, 2]);

    /* Echoes with acks on every client, without a pause. */
    const echo = clients.map(async (s, i) => {
      for (let k = 0; !stop && k < 100000; k++) {
        try {
          const { x } = await s.emitWithAck('echo', k);
          if (x === k) stats[i].acks++; else stats[i].wrong++;
        } catch (e) {
          stats[i].lost++;
        }
      }
    });
    /* Broadcasts to every client through the backend API. */
    let sent = 0;
    const bcast = (async () => {
      for (let k = 1; !stop && k <= 100000; k++) {
        await apiEmit(r, k);
        sent = k;
        await delay(20);
      }
    })();
    /* New connections all along: not one may be refused (no error). One
     * whose handshake reached an old worker as it drained is closed at
     * once and reconnects, as after any transport close. */
    const probes = { ok: 0, refused: 0, why: [] };
    const probe = (async () => {
      for (let k = 0; !stop && k < 1000; k++) {
        const p = io(r.d.url, { forceNew: true, reconnectionDelay: 50, transports: k % 2 ? ['polling'] : ['websocket'] });
        p.on('connect_error', (e) => { probes.refused++; probes.why.push(`connect_error: ${e.message}`); });
        try {
          await waitConnected(p, timeMs(5000));
          probes.ok++;
        } catch (e) {
          probes.refused++;
          probes.why.push(`${k % 2 ? 'polling' : 'websocket'} at ${new Date().toISOString()}: ${e.message}`);
        } finally {
          p.close();
        }
        await delay(50);
      }
    })();

    await delay(timeMs(800));
    r.write();
    r.hup();
    await logged(r, /reload: done/);
    assert.deepEqual((await workers(r)).map(([n]) => n).sort(), [3, 4], 'new workers in the other slots');
    await delay(timeMs(800));
    r.hup();
    await logged(r, /reload: done/, 2);
    assert.deepEqual((await workers(r)).map(([n]) => n).sort(), [1, 2], 'and back');
    await delay(timeMs(800));
    stop = true;
    await Promise.all([...echo, bcast, probe]);

    /* Every client has every broadcast once, in order. */
    const want = Array.from({ length: sent }, (_, k) => k + 1);
    for (const [i, st] of stats.entries()) {
      await waitUntil(`client ${i} has ${sent} ticks`, () => st.ticks.length >= sent, timeMs(10000)).catch(() => {});
      assert.deepEqual(st.ticks, want, `client ${i} (${st.polling ? 'polling' : 'websocket'}): every broadcast once, in order`);
      assert.ok(st.connects >= 3, `client ${i} reconnected after each reload (${st.connects} connects)`);
      assert.equal(st.recovered, st.connects - 1, `client ${i}: every reconnection recovered its session`);
      assert.equal(st.errors, 0, `client ${i}: no connection refused`);
      assert.equal(st.lost, 0, `client ${i}: no ack lost`);
      assert.equal(st.wrong, 0, `client ${i}: every ack answers its emit`);
      assert.ok(st.acks > 0);
    }
    assert.ok(sent > 20, `${sent} broadcasts`);
    assert.equal(probes.refused, 0, `new connections refused during the reloads (${probes.ok} made): ${probes.why.join('; ')}`);
    assert.ok(probes.ok > 10);
    assert.doesNotMatch(r.d.log(), /\[(error|crit|alert|emerg)\]/, 'no error in the log');
    await r.check();
  } finally {
    stop = true;
    closeAll(clients);
    await r.stop();
  }
});

test('a configuration that does not load leaves the running one serving, and the log says why', { skip, timeout: timeMs(60000) }, async () => {
  const r = await startReloadable();
  const s = io(r.d.url, { forceNew: true, transports: ['websocket'] });
  const blocker = net.createServer();
  try {
    await waitConnected(s);
    let disconnects = 0;
    s.on('disconnect', () => { disconnects++; });
    const kids = childrenOf(r.d.pid).sort();

    /* A syntax error, with its file and line. */
    fs.writeFileSync(r.d.confPath, 'workers = 2;\nlisten = [ "127.0.0.1:1" \n');
    r.hup();
    await logged(r, /reload failed: .*emitd\.conf:3: syntax error; still serving the previous configuration/);
    /* A script that does not compile. */
    fs.writeFileSync(r.script, 'function on_connect(socket)\n  socket:on("x", function() end\nend\n');
    r.write();
    r.hup();
    await logged(r, /reload failed: .*reload\.lua:3:.*; still serving/);
    fs.copyFileSync(handler('reload.lua'), r.script);
    /* A key file that cannot be read. */
    r.write({ namespaces: [{ name: '/', script: r.script, jwt: { public_key: path.join(r.dir, 'missing.pem'), algorithms: ['RS256'] } }] });
    r.hup();
    await logged(r, /reload failed: .*missing\.pem.*; still serving/);
    /* A script that compiles but fails when it runs: the new workers exit
     * before they serve, and the reload is cancelled. */
    fs.writeFileSync(r.script, 'error("boom at load")\n');
    r.write();
    r.hup();
    await logged(r, /reload failed: a new worker exited before it served \(see above\); still serving/);
    await logged(r, /reload: cancelled, its new workers are gone/);
    assert.match(r.d.log(), /boom at load/);
    fs.copyFileSync(handler('reload.lua'), r.script);
    /* A listener that cannot be bound. */
    const busy = await freePort();
    await new Promise((resolve) => blocker.listen(busy, '127.0.0.1', resolve));
    r.write({ listen: [r.conf.listen, `127.0.0.1:${busy}`] });
    r.hup();
    await logged(r, /reload failed: a listener cannot be bound/);
    assert.match(r.d.log(), new RegExp(`bind\\(\\) to 127\\.0\\.0\\.1:${busy} failed`));

    /* Through all of it: the same workers, the client still connected. */
    assert.deepEqual(childrenOf(r.d.pid).sort(), kids, 'the same processes');
    assert.equal(disconnects, 0);
    assert.equal(s.connected, true);
    assert.deepEqual(await s.timeout(timeMs(3000)).emitWithAck('echo', 7), { x: 7, version: 'one', worker: 1 });
    const t = io(r.d.url, { forceNew: true, transports: ['polling'] });
    await waitConnected(t);
    t.close();
    await r.check();
  } finally {
    blocker.close();
    s.close();
    await r.stop();
  }
});

test('a reload: a changed script serves the new connections; listeners added and removed, the kept one never closed', { skip, timeout: timeMs(60000) }, async () => {
  const r = await startReloadable({ workers: 1 });
  const clients = [];
  try {
    const a = io(r.d.url, { forceNew: true, transports: ['websocket'], reconnectionDelay: 50 });
    clients.push(a);
    await waitConnected(a);
    assert.equal((await a.timeout(timeMs(3000)).emitWithAck('echo', 1)).version, 'one');

    /* A new version of the script and a second listener. */
    const port2 = await freePort();
    fs.writeFileSync(r.script, fs.readFileSync(handler('reload.lua'), 'utf8').replace('local VERSION = "one"', 'local VERSION = "two"'));
    r.write({ listen: [r.conf.listen, `127.0.0.1:${port2}`] });
    const reconnected = new Promise((resolve) => a.io.once('reconnect', resolve));
    r.hup();
    await logged(r, /reload: done/);
    await reconnected;
    await waitConnected(a);
    const { version: v, worker } = await a.timeout(timeMs(3000)).emitWithAck('echo', 2);
    assert.equal(v, 'two', 'the reconnected client is served by the new script');
    assert.equal(worker, 2, 'by the new worker (slot 2: one worker reloads beside the old one)');
    const b = io(`http://127.0.0.1:${port2}`, { forceNew: true, transports: ['polling'] });
    clients.push(b);
    await waitConnected(b);
    assert.equal((await b.timeout(timeMs(3000)).emitWithAck('echo', 3)).version, 'two', 'on the new listener');

    /* The first listener removed: it closes, the second stays. */
    r.write({ listen: [`127.0.0.1:${port2}`] });
    r.hup();
    await logged(r, /reload: done/, 2);
    await assert.rejects(httpRequest(r.d.port, 'GET', '/socket.io/?EIO=4&transport=polling', { ms: 2000 }),
      /ECONNREFUSED/, 'the removed listener is closed');
    const c = io(`http://127.0.0.1:${port2}`, { forceNew: true, transports: ['websocket'] });
    clients.push(c);
    await waitConnected(c);
    assert.deepEqual(await c.timeout(timeMs(3000)).emitWithAck('echo', 4), { x: 4, version: 'two', worker: 1 });
    await r.check();
  } finally {
    closeAll(clients);
    await r.stop();
  }
});

test('a SIGHUP during a reload is queued and follows it; a worker that does not drain in time is killed', { skip, timeout: timeMs(60000) }, async () => {
  const r = await startReloadable({ worker_shutdown_timeout: 1000 });
  const s = io(r.d.url, { forceNew: true, transports: ['websocket'], reconnectionDelay: 50 });
  try {
    await waitConnected(s);
    /* Hold the old worker that serves the client: it cannot drain. */
    const { worker: w } = await s.timeout(timeMs(3000)).emitWithAck('echo', 1);
    const stuck = (r.d.children().find((c) => new RegExp(`worker ${w}$`).test(c.args)) || {}).pid;
    assert.ok(stuck, `worker ${w}'s pid`);
    process.kill(stuck, 'SIGSTOP');
    r.hup();
    await logged(r, /reload: \d+ new workers serve/);
    r.hup();
    await logged(r, /a reload is in progress; this one follows it/);
    await logged(r, new RegExp(`worker ${w} did not drain within worker_shutdown_timeout: SIGKILL`));
    await logged(r, /reload: done/, 2);
    assert.deepEqual((await workers(r)).map(([n]) => n).sort(), [1, 2], 'two reloads: back in the first slots');
    await waitConnected(s);
    assert.equal((await s.timeout(timeMs(3000)).emitWithAck('echo', 2)).x, 2);
    await r.check();
  } finally {
    s.close();
    await r.stop();
  }
});
