'use strict';
/*
 * When emitd is told to stop (SIGTERM), every client hears the last word
 * before it is disconnected, once: the script's on_shutdown(nsp) and a
 * namespace's configured shutdown_event (photo-events.md's
 * system.maintenance), on both workers and both transports, on every
 * instance of a parameterised namespace. Handlers: handlers/shutdown.lua.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { startEmitd, stopAndCheck, handler, delay } = require('./lib/harness');
const { connect, ack, closeAll } = require('./lib/clients');

const MAINTENANCE = { name: 'system.maintenance', message: 'Server is shutting down for maintenance' };
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

let emitd;
test.before(async () => {
  emitd = await startEmitd({
    config: {
      namespaces: [
        { name: '/', script: handler('shutdown.lua') },
        { name: '/photos', shutdown_event: MAINTENANCE },
        { name: '/device/:id', shutdown_event: { name: 'state', message: 'restarting' } },
      ],
    },
  });
});
test.after(async () => { if (emitd) await emitd.stop(); });

/* Every event a client gets until it is disconnected. */
function record(s) {
  s.got = [];
  s.onAny((event, ...args) => { if (!s.gone) s.got.push([event, ...args]); });
  s.on('disconnect', () => { s.gone = true; });
  return s;
}

test('SIGTERM: on_shutdown and shutdown_event reach every client once, then it is disconnected', async () => {
  const root = [];
  for (const transport of ['websocket', 'polling', 'websocket', 'polling']) {
    root.push(record(await connect(emitd.url, '/', transport)));
  }
  const workers = [];
  for (const s of root) workers.push((await ack(s, 'whoami'))[0].worker);
  assert.equal(new Set(workers).size, 2, `the "/" clients are on both workers: ${workers}`);
  const photos = [await connect(emitd.url, '/photos', 'websocket'), await connect(emitd.url, '/photos', 'polling')]
    .map(record);
  const devices = [await connect(emitd.url, '/device/1', 'websocket'), await connect(emitd.url, '/device/2', 'websocket')]
    .map(record);
  const all = [...root, ...photos, ...devices];
  try {
    assert.deepEqual(await stopAndCheck(emitd), []);
    for (let i = 0; i < 100 && !all.every((s) => s.gone); i++) await delay(20);
    root.forEach((s, i) => {
      assert.equal(s.gone, true, `"/" client ${i} was not disconnected`);
      assert.deepEqual(s.got, [['bye', { worker: workers[i], same: true }]], `"/" client ${i}`);
    });
    photos.forEach((s, i) => {
      assert.equal(s.gone, true, `/photos client ${i} was not disconnected`);
      assert.equal(s.got.length, 1, `/photos client ${i} got ${JSON.stringify(s.got)}`);
      const [event, data] = s.got[0];
      assert.equal(event, 'system.maintenance');
      assert.deepEqual(Object.keys(data), ['message', 'timestamp']);
      assert.equal(data.message, MAINTENANCE.message);
      assert.match(data.timestamp, ISO);
    });
    devices.forEach((s, i) => {
      assert.equal(s.got.length, 1, `/device/${i + 1} client got ${JSON.stringify(s.got)}`);
      assert.equal(s.got[0][0], 'state');
      assert.equal(s.got[0][1].message, 'restarting');
    });
  } finally {
    closeAll(all);
  }
});

test('SIGTERM: a polling client between two GETs fetches its goodbye on a new connection; new sessions get 503', async () => {
  const { httpRequest, splitPayload, parseOpen } = require('./lib/clients');
  const d = await startEmitd({ config: { workers: 1, namespaces: [{ name: '/photos', shutdown_event: MAINTENANCE }] } });
  try {
    const base = '/socket.io/?EIO=4&transport=polling';
    const open = parseOpen((await httpRequest(d.port, 'GET', base)).body);
    const url = `${base}&sid=${open.sid}`;
    assert.equal((await httpRequest(d.port, 'POST', url, { body: '40/photos,' })).status, 200);
    assert.match((await httpRequest(d.port, 'GET', url)).body, /^40\/photos,\{"sid":/);
    /* no GET is waiting when the signal comes */
    process.kill(d.pid, 'SIGTERM');
    await delay(50);
    const bye = await httpRequest(d.port, 'GET', url);
    assert.equal(bye.status, 200);
    const pkts = splitPayload(bye.body);
    const ev = pkts.find((p) => p.startsWith('42/photos,'));
    assert.ok(ev, `the goodbye is in ${JSON.stringify(bye.body)}`);
    const [name, data] = JSON.parse(ev.slice('42/photos,'.length));
    assert.equal(name, 'system.maintenance');
    assert.equal(data.message, MAINTENANCE.message);
    const late = await httpRequest(d.port, 'GET', base);
    assert.equal(late.status, 503, 'a handshake while stopping is refused');
    assert.deepEqual(await stopAndCheck(d), []);
  } finally {
    await d.stop();
  }
});
