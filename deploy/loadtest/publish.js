#!/usr/bin/env node
'use strict';
/*
 * publish.js - the publish API's throughput: a backend POSTs events over
 * HTTP (keep-alive, a few requests in flight) and every one goes to N
 * subscribers; measured against emitd's backend API (POST /v1/emit on the
 * admin listener) and against Node's socket.io with the endpoint a Node
 * application would write (node/server.js: POST /v1/emit calling
 * io.emit()), each server started fresh in the same run, on 127.0.0.1.
 *
 *   node deploy/loadtest/publish.js [--subscribers 1000] [--duration 8]
 *        [--inflight 8] [--payload 64] [--emitd-workers 1] [--redis 1]
 *        [--json FILE]
 *
 * With --redis 1, two hosts of each kind share a redis-server (Debian's,
 * started here on a free loopback port): two emitd with redis = { url }
 * against two Node servers with @socket.io/redis-adapter. Half the
 * subscribers are on each host, the events are published to the first, so
 * half the deliveries cross Redis; the server CPU is both hosts' (and
 * Redis's is reported beside it).
 *
 * The subscribers are raw Engine.IO v4 / Socket.IO v5 WebSocket clients
 * (the ws package; they count EVENT frames and answer pings, nothing
 * more), spread over two child processes so that the client side costs
 * little. Figures: events published per second, deliveries per second,
 * and both per server core-second (CPU seconds of the server's processes
 * while measuring, from /proc), and the share of deliveries that arrived.
 * Every loop is bounded in count and time; servers are stopped by PID.
 */
const { spawn, fork } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const EMITD = process.env.EMITD_BIN || path.join(ROOT, 'build', 'emitd');
const NODE_SERVER = path.join(__dirname, 'node', 'server.js');
const KEY = 'publish-bench-key-0123456789';
const CLK_TCK = 100;

/* ---- a subscriber process (forked with --child) ---- */

function child() {
  const WebSocket = require(path.join(__dirname, 'node', 'node_modules', 'ws'));
  let received = 0;
  let open = 0;
  const socks = [];
  process.on('message', (m) => {
    if (m.cmd === 'connect') {
      let pending = m.n;
      const deadline = setTimeout(() => process.send({ ready: open, error: 'connect timeout' }), 30000);
      for (let i = 0; i < m.n; i++) {
        const ws = new WebSocket(`ws://127.0.0.1:${m.port}/socket.io/?EIO=4&transport=websocket`);
        socks.push(ws);
        ws.on('message', (data) => {
          const s = data.toString();
          if (s.startsWith('42')) {
            received++;
          } else if (s === '2') {
            ws.send('3');
          } else if (s[0] === '0') {
            ws.send('40');
          } else if (s.startsWith('40')) {
            open++;
            if (--pending === 0) {
              clearTimeout(deadline);
              process.send({ ready: open });
            }
          }
        });
        ws.on('error', () => {});
      }
    } else if (m.cmd === 'count') {
      process.send({ received });
    } else if (m.cmd === 'close') {
      for (const ws of socks) ws.terminate();
      process.exit(0);
    }
  });
}

/* ---- the parent ---- */

function args() {
  const o = { subscribers: 1000, duration: 8, inflight: 8, payload: 64, emitdWorkers: 1, redis: 0, json: null };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    const k = a[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(k in o)) throw new Error(`unknown option ${a[i]}`);
    o[k] = k === 'json' ? a[++i] : Number(a[++i]);
  }
  return o;
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitPort(port, seconds = 15) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

/* CPU seconds of pid and its descendants. */
function cpuSeconds(pid) {
  let total = 0;
  const seen = new Set();
  const walk = (p) => {
    if (seen.has(p) || seen.size > 256) return;
    seen.add(p);
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(f[11]) + Number(f[12])) / CLK_TCK;
      for (const t of fs.readdirSync(`/proc/${p}/task`)) {
        const kids = fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim();
        for (const k of kids ? kids.split(' ') : []) walk(Number(k));
      }
    } catch (e) { /* gone */ }
  };
  walk(pid);
  return total;
}

function ask(proc, msg, key) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer to ${msg.cmd}`)), 40000);
    const on = (m) => {
      if (key in m) {
        clearTimeout(t);
        proc.off('message', on);
        resolve(m);
      }
    };
    proc.on('message', on);
    proc.send(msg);
  });
}

async function startServer(kind, o, redisUrl) {
  const port = await freePort();
  const admin = await freePort();
  let proc;
  let target;
  if (kind === 'emitd') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-publish-'));
    const conf = path.join(dir, 'emitd.conf');
    fs.writeFileSync(conf, `listen = "127.0.0.1:${port}";\nworkers = ${o.emitdWorkers};\nlog_level = "warn";\naccess_log = "off";\n`
      + 'ping_interval = 25000;\nping_timeout = 20000;\n'
      + `admin = { listen = "127.0.0.1:${admin}"; keys = [ "${KEY}" ]; };\n`
      + (redisUrl ? `redis = { url = "${redisUrl}/0"; };\n` : '')
      + 'namespaces = ( { name = "/"; } );\n');
    proc = spawn(EMITD, ['-c', conf], { stdio: ['ignore', 'inherit', 'inherit'] });
    target = { port: admin, headers: { Authorization: `Bearer ${KEY}` } };
    await waitPort(admin);
  } else {
    const env = { ...process.env, ...(redisUrl ? { REDIS_URL: redisUrl } : {}) };
    proc = spawn(process.execPath, [NODE_SERVER, String(port)], { stdio: ['ignore', 'inherit', 'inherit'], env });
    target = { port, headers: {} };
  }
  await waitPort(port);
  if (redisUrl) await new Promise((r) => setTimeout(r, 500));      /* its subscriptions */
  return { proc, port, target };
}

/* A redis-server of our own on a free loopback port, nothing saved. */
async function startRedis() {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no'], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitPort(port);
  return { proc, url: `redis://127.0.0.1:${port}` };
}

async function stopProc(proc) {
  proc.kill('SIGTERM');
  await new Promise((r) => { if (proc.exitCode !== null) r(); proc.once('exit', r); setTimeout(r, 5000); });
}

/* POST events for `ms`, `inflight` at a time on keep-alive connections. */
async function publish(target, o, ms) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.inflight });
  const pad = 'x'.repeat(o.payload);
  let sent = 0;
  let failed = 0;
  let seq = 0;
  const end = Date.now() + ms;
  const one = () => new Promise((resolve) => {
    const body = JSON.stringify({ event: 'tick', args: [{ seq: seq++, pad }] });
    const req = http.request({
      host: '127.0.0.1', port: target.port, method: 'POST', path: '/v1/emit', agent,
      headers: { ...target.headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      res.resume();
      res.on('end', () => { if (res.statusCode === 200) sent++; else failed++; resolve(); });
    });
    req.on('error', () => { failed++; resolve(); });
    req.end(body);
  });
  const lane = async () => {
    for (let i = 0; i < 10000000 && Date.now() < end; i++) await one();
  };
  await Promise.all(Array.from({ length: o.inflight }, lane));
  agent.destroy();
  return { sent, failed };
}

async function run(kind, o) {
  const redis = o.redis ? await startRedis() : null;
  const hosts = [];
  const kids = [fork(__filename, ['--child']), fork(__filename, ['--child'])];
  try {
    hosts.push(await startServer(kind, o, redis && redis.url));
    if (redis) hosts.push(await startServer(kind, o, redis.url));
    const per = [Math.ceil(o.subscribers / 2), Math.floor(o.subscribers / 2)];
    const ready = await Promise.all(kids.map((k, i) => ask(k, { cmd: 'connect', n: per[i], port: hosts[i % hosts.length].port }, 'ready')));
    const open = ready.reduce((a, r) => a + r.ready, 0);
    if (open !== o.subscribers) throw new Error(`${kind}: ${open} of ${o.subscribers} subscribers connected`);
    const srv = hosts[0];
    const serverCpu = () => hosts.reduce((a, h) => a + cpuSeconds(h.proc.pid), 0);
    await publish(srv.target, { ...o, inflight: 2 }, 500);      /* warm up */
    await new Promise((r) => setTimeout(r, 500));
    const before = (await Promise.all(kids.map((k) => ask(k, { cmd: 'count' }, 'received')))).reduce((a, r) => a + r.received, 0);
    const cpu0 = serverCpu();
    const rcpu0 = redis ? cpuSeconds(redis.proc.pid) : 0;
    const t0 = process.hrtime.bigint();
    const pub = await publish(srv.target, o, o.duration * 1000);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = serverCpu() - cpu0;
    const rcpu = redis ? cpuSeconds(redis.proc.pid) - rcpu0 : 0;
    /* what is still on its way arrives (bounded wait) */
    let got = 0;
    for (let i = 0; i < 50; i++) {
      got = (await Promise.all(kids.map((k) => ask(k, { cmd: 'count' }, 'received')))).reduce((a, r) => a + r.received, 0) - before;
      if (got >= pub.sent * o.subscribers) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return {
      server: kind, subscribers: o.subscribers, hosts: hosts.length, seconds: secs, published: pub.sent, failed: pub.failed,
      published_per_sec: pub.sent / secs, deliveries_per_sec: got / secs,
      server_cpu_sec: cpu, redis_cpu_sec: rcpu, published_per_server_core_sec: pub.sent / cpu,
      deliveries_per_server_core_sec: got / cpu, delivered_share: got / Math.max(1, pub.sent * o.subscribers),
    };
  } finally {
    for (const k of kids) { try { k.send({ cmd: 'close' }); } catch (e) { /* gone */ } }
    for (const h of hosts) await stopProc(h.proc);
    if (redis) await stopProc(redis.proc);
  }
}

async function main() {
  const o = args();
  const results = [];
  for (const kind of ['emitd', 'node']) results.push(await run(kind, o));
  const [e, n] = results;
  const rows = [
    ['published events/s', 'published_per_sec'],
    ['deliveries/s', 'deliveries_per_sec'],
    ['published per server core-s', 'published_per_server_core_sec'],
    ['deliveries per server core-s', 'deliveries_per_server_core_sec'],
    ['delivered share', 'delivered_share'],
    ...(o.redis ? [['redis-server CPU seconds', 'redis_cpu_sec']] : []),
  ];
  console.log(`publish API, ${o.subscribers} subscribers, ${o.duration} s, ${o.inflight} requests in flight, `
    + `emitd with ${o.emitdWorkers} worker(s)${o.redis ? ', two hosts of each through Redis' : ''}`);
  console.log(`${'figure'.padEnd(32)}${'emitd'.padStart(14)}${'node'.padStart(14)}${'emitd/node'.padStart(12)}`);
  for (const [label, k] of rows) {
    const fmt = (v) => (k === 'delivered_share' || k === 'redis_cpu_sec' ? v.toFixed(3) : Math.round(v).toString());
    console.log(`${label.padEnd(32)}${fmt(e[k]).padStart(14)}${fmt(n[k]).padStart(14)}${(e[k] / n[k]).toFixed(2).padStart(11)}x`);
  }
  if (o.json) fs.writeFileSync(o.json, JSON.stringify(results, null, 2));
}

if (process.argv[2] === '--child') {
  child();
} else {
  main().catch((err) => { console.error(err.message); process.exit(1); });
}
