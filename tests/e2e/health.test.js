'use strict';
/*
 * health_path: GET /health answers for the whole cluster, from any worker,
 * in the shape of photo-events.md (status, timestamp, details.websocket
 * {status, connectedClients, activeRooms}) with each worker's and the
 * broker's state, and 503 while one is down. metrics_path: the same
 * figures in Prometheus's text format, checked with promtool. Real
 * clients, 2 workers. Handlers: cluster.lua.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const {
  startEmitd, stopAndCheck, handler, delay, childrenOf, processArgs, isAlive,
} = require('./lib/harness');
const { spawnSync } = require('node:child_process');
const { io, connect, connectError, ack, closeAll, httpRequest } = require('./lib/clients');

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

let emitd;
test.before(async () => {
  emitd = await startEmitd({
    config: {
      health_path: '/health',
      metrics_path: '/metrics',
      namespaces: [{ name: '/', script: handler('cluster.lua') }, { name: '/keyed', api_key: { keys: ['k'] } }],
    },
  });
});
test.after(async () => { if (emitd) await emitd.stop(); });

async function health() {
  const r = await httpRequest(emitd.port, 'GET', '/health');
  assert.match(r.headers['content-type'] || '', /^application\/json/);
  return { status: r.status, body: JSON.parse(r.body) };
}

/* Poll until the report's websocket figures are `want` (bounded). */
async function healthSettles(want) {
  let last;
  for (let i = 0; i < 100; i++) {
    last = await health();
    const ws = last.body.details.websocket;
    if (ws.connectedClients === want.connectedClients && ws.activeRooms === want.activeRooms) return last;
    await delay(20);
  }
  assert.fail(`the report stayed at ${JSON.stringify(last.body.details.websocket)}, not ${JSON.stringify(want)}`);
}

test('GET /health: the shape of photo-events.md, every worker up', async () => {
  const { status, body } = await health();
  assert.equal(status, 200);
  assert.deepEqual(Object.keys(body), ['status', 'timestamp', 'details']);
  assert.equal(body.status, 'ok');
  assert.match(body.timestamp, ISO);
  assert.deepEqual(body.details.websocket, { status: 'healthy', connectedClients: 0, activeRooms: 0 });
  assert.deepEqual(body.details.workers, [{ worker: 1, status: 'up' }, { worker: 2, status: 'up' }]);
  assert.deepEqual(body.details.broker, { status: 'up' });
});

test('connectedClients and activeRooms count every worker\'s sockets and rooms', async () => {
  const clients = [];
  for (let i = 0; i < 4; i++) clients.push(await connect(emitd.url, '/', i % 2 ? 'polling' : 'websocket'));
  try {
    const workers = new Set();
    for (const s of clients) workers.add((await ack(s, 'whoami'))[0].worker);
    assert.equal(workers.size, 2, 'the clients are on both workers');
    await ack(clients[0], 'join', 'a');
    await ack(clients[1], 'join', 'a');
    await ack(clients[2], 'join', 'b');
    await ack(clients[3], 'join', 'c');
    await ack(clients[3], 'leave', 'c');
    /* each request may be served by either worker: ask several times */
    for (let i = 0; i < 4; i++) await healthSettles({ connectedClients: 4, activeRooms: 2 });
    closeAll(clients[0], clients[2]);
    await healthSettles({ connectedClients: 2, activeRooms: 1 });
  } finally {
    closeAll(clients);
  }
  await healthSettles({ connectedClients: 0, activeRooms: 0 });
});

/* The samples of a metrics text: {"name{labels}": value} */
function samples(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = line.match(/^(\S+) (\S+)$/);
    assert.ok(m, `not a sample line: ${line}`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}

test('GET /metrics: Prometheus text that promtool accepts, with the cluster\'s figures', async () => {
  const a = await connect(emitd.url, '/', 'websocket');
  const b = await connect(emitd.url, '/', 'polling');
  const refused = io(`${emitd.url}/keyed`, { forceNew: true, reconnection: false });
  try {
    assert.equal((await connectError(refused)).message, 'API key is required');
    await ack(a, 'join', 'm');
    await ack(b, 'join', 'm');
    let r;
    let s;
    for (let i = 0; i < 100; i++) {
      r = await httpRequest(emitd.port, 'GET', '/metrics');
      s = samples(r.body);
      if (s.emitd_sockets === 2 && s.emitd_rooms === 1) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    const check = spawnSync('promtool', ['check', 'metrics'], { input: r.body, encoding: 'utf8', timeout: 20000 });
    assert.equal(check.error, undefined, `promtool: ${check.error} (deploy/install-deps.sh installs it)`);
    assert.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
    assert.equal(s.emitd_sockets, 2);
    assert.equal(s.emitd_rooms, 1);
    assert.equal(s['emitd_namespace_sockets{path="/socket.io/",namespace="/"}'], 2);
    assert.equal(s['emitd_namespace_sockets{path="/socket.io/",namespace="/keyed"}'], 0);
    assert.ok(s.emitd_socket_connects_total >= 2);
    assert.ok(s.emitd_socket_refusals_total >= 1);
    assert.equal(s['emitd_worker_up{worker="1"}'], 1);
    assert.equal(s['emitd_worker_up{worker="2"}'], 1);
    assert.equal(s.emitd_broker_up, 1);
  } finally {
    closeAll(a, b, refused);
  }
});

/* The sum over the workers of a per-worker series (labels besides worker). */
function perWorker(s, name, labels = '') {
  let sum = 0;
  let n = 0;
  for (const [k, v] of Object.entries(s)) {
    const m = k.match(/^([a-z_]+)\{worker="(\d+)"(?:,(.*))?\}$/);
    if (m && m[1] === name && (m[3] || '') === labels) {
      sum += v;
      n++;
    }
  }
  assert.equal(n, 2, `${name}{${labels}} for both workers`);
  return sum;
}

async function metrics() {
  const r = await httpRequest(emitd.port, 'GET', '/metrics');
  const check = spawnSync('promtool', ['check', 'metrics'], { input: r.body, encoding: 'utf8', timeout: 20000 });
  assert.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
  return samples(r.body);
}

test('GET /metrics: each worker\'s figures follow what the clients did', async () => {
  const before = await metrics();
  const a = await connect(emitd.url, '/', 'websocket');
  const b = await connect(emitd.url, '/', 'polling');
  const refused = io(`${emitd.url}/keyed`, { forceNew: true, reconnection: false });
  try {
    await connectError(refused);
    await ack(a, 'join', 'fig');
    await ack(b, 'join', 'fig');
    await ack(a, 'to_room', 'fig', 'note', 'hello');     /* one broadcast, to both members */
    a.emit('presence:update-status', {});                /* a script error (no status) */
    await ack(a, 'whoami');
    let s;
    for (let i = 0; i < 100; i++) {
      s = await metrics();
      if (perWorker(s, 'emitd_script_errors_total') > perWorker(before, 'emitd_script_errors_total')) break;
      await delay(20);
    }
    const d = (name, labels) => perWorker(s, name, labels) - perWorker(before, name, labels);
    assert.equal(perWorker(s, 'emitd_connections', 'transport="websocket"'), 1);
    assert.equal(perWorker(s, 'emitd_connections', 'transport="polling"'), 1);
    assert.ok(d('emitd_handshakes_total') >= 3, 'two clients and the refused one');
    assert.equal(d('emitd_connect_refusals_total', 'reason="auth"'), 1);
    assert.equal(d('emitd_connect_refusals_total', 'reason="rate_limit"'), 0);
    assert.equal(d('emitd_broadcasts_total'), 1);
    assert.equal(d('emitd_deliveries_total'), 2);
    assert.equal(d('emitd_script_errors_total'), 1);
    assert.ok(d('emitd_messages_received_total') >= 8, 'CONNECTs, joins, events');
    assert.ok(d('emitd_messages_sent_total') >= 6);
    assert.ok(d('emitd_received_bytes_total') > 300);
    assert.ok(d('emitd_sent_bytes_total') > 300);
    assert.ok(s['emitd_ring_records_total{worker="1",direction="up"}'] >= 0);
    assert.ok('emitd_ring_full_total{worker="2",direction="down"}' in s);
    assert.ok(s.emitd_store_capacity > 0);
    assert.equal(s['emitd_webhook_duration_seconds_bucket{worker="1",le="+Inf"}'],
                 s['emitd_webhook_duration_seconds_count{worker="1"}']);
  } finally {
    closeAll(a, b, refused);
  }
  /* the gauges go back down */
  let s;
  for (let i = 0; i < 100; i++) {
    s = await metrics();
    if (perWorker(s, 'emitd_connections', 'transport="websocket"') === 0
        && perWorker(s, 'emitd_connections', 'transport="polling"') === 0) break;
    await delay(20);
  }
  assert.equal(perWorker(s, 'emitd_connections', 'transport="websocket"'), 0);
  assert.equal(perWorker(s, 'emitd_connections', 'transport="polling"'), 0);
});

test('anything but GET is refused with 405; other paths are not the report', async () => {
  const post = await httpRequest(emitd.port, 'POST', '/health', { body: '{}' });
  assert.equal(post.status, 405);
  assert.equal((await httpRequest(emitd.port, 'DELETE', '/metrics')).status, 405);
  const other = await httpRequest(emitd.port, 'GET', '/healthz');
  assert.equal(other.status, 404);
  assert.equal((await health()).status, 200, 'and the report is still served');
});

/* Kill the process titled `title` three times in a row, each soon after
 * its start: the master then waits 1 s before the next start. */
async function killRepeatedly(title) {
  const pidOf = () => childrenOf(emitd.pid).find((p) => processArgs(p) === title);
  /* deaths within two seconds of starting, twice in a row: the master waits
   * 1 s before the next start (three kills: the first may come later than
   * two seconds after emitd started) */
  for (let k = 0; k < 3; k++) {
    let pid;
    for (let i = 0; i < 250 && !(pid = pidOf()); i++) await delay(20);
    assert.ok(pid, `${title} is running`);
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 250 && isAlive(pid); i++) await delay(20);
    if (k < 2) for (let i = 0; i < 250 && (!pidOf() || pidOf() === pid); i++) await delay(20);
  }
}

/* The first 503 report (bounded), then the first 200 after it. */
async function degradedThenBack() {
  let degraded = null;
  for (let i = 0; i < 100 && !degraded; i++) {
    const h = await health();
    if (h.status === 503) degraded = h.body;
    else await delay(10);
  }
  assert.ok(degraded, 'no 503 while it was down');
  assert.equal(degraded.status, 'degraded');
  assert.equal(degraded.details.websocket.status, 'degraded');
  let back = null;
  for (let i = 0; i < 200 && !back; i++) {
    const h = await health();
    if (h.status === 200) back = h.body;
    else await delay(20);
  }
  assert.ok(back, 'still 503 after 4 s');
  assert.deepEqual(back.details.workers, [{ worker: 1, status: 'up' }, { worker: 2, status: 'up' }]);
  assert.deepEqual(back.details.broker, { status: 'up' });
  return degraded;
}

test('503 and the worker "down" while a worker that keeps dying waits for its restart', async () => {
  await killRepeatedly('emitd: worker 1');
  const degraded = await degradedThenBack();
  assert.deepEqual(degraded.details.workers, [{ worker: 1, status: 'down' }, { worker: 2, status: 'up' }]);
  assert.deepEqual(degraded.details.broker, { status: 'up' });
});

test('503 and the broker "down" while a broker that keeps dying waits for its restart', async () => {
  await killRepeatedly('emitd: broker');
  const degraded = await degradedThenBack();
  assert.deepEqual(degraded.details.broker, { status: 'down' });
  assert.deepEqual(degraded.details.workers, [{ worker: 1, status: 'up' }, { worker: 2, status: 'up' }]);
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
