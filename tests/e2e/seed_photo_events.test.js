'use strict';
/*
 * photo-events.md against deploy/examples/photo-events/ as shipped (2
 * workers): the handshake identities' client:/user:/session: rooms, every
 * photo.* event published by the backend through the API arriving with its
 * documented fields, GET /health on the clients' base URL, and
 * system.maintenance to every client on SIGTERM before it is disconnected.
 * The seed's own client example runs too. Real socket.io-client.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { stopAndCheck } = require('./lib/harness');
const { io, waitConnected, closeAll, httpRequest, waitUntil } = require('./lib/clients');
const { startExample, runSeedClient } = require('./lib/examples');

const EVENTS = ['photo.uploaded', 'photo.upload.failed', 'photo.processing.started',
  'photo.processing.completed', 'photo.processing.failed', 'photo.processing.progress',
  'system.maintenance'];

let emitd;
test.before(async () => { emitd = await startExample('photo-events'); });
test.after(async () => { if (emitd) await emitd.stop(); });

async function client(auth, transports) {
  const s = io(emitd.url, { forceNew: true, reconnection: false, transports, auth });
  s.got = [];
  for (const e of EVENTS) s.on(e, (data) => s.got.push([e, data]));
  s.on('disconnect', (reason) => s.got.push(['disconnect', reason]));
  await waitConnected(s);
  return s;
}

async function publish(to, event, data) {
  const r = await emitd.api('POST', '/v1/emit', { to, event, args: [data] });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { ok: true });
}

const ts = '2023-01-01T00:00:00.000Z';
const payloads = {
  'photo.uploaded': { photoId: 'p-1', filename: 'example.jpg', status: 'queued', jobId: 'j-1', timestamp: ts },
  'photo.upload.failed': { error: 'File too large', timestamp: ts },
  'photo.processing.started': { photoId: 'p-1', status: 'processing', timestamp: ts },
  'photo.processing.progress': { photoId: 'p-1', status: 'in_progress', progress: 50, timestamp: ts },
  'photo.processing.completed': { photoId: 'p-1', status: 'completed', results: { faces: 2, tags: ['beach'] }, timestamp: ts },
  'photo.processing.failed': { photoId: 'p-2', status: 'failed', error: 'Corrupt image', timestamp: ts },
};

for (const transports of [['websocket'], ['polling']]) {
  test(`${transports[0]}: the auth identities are rooms, and each photo.* event reaches exactly its room`, async () => {
    const a = await client({ clientId: 'c-1', userId: 'u-1', sessionId: 's-1' }, transports);
    const b = await client({ clientId: 'c-2', userId: 'u-1' }, transports);
    const c = await client({ userId: 'u-2' }, transports);
    const anon = await client(undefined, transports);
    try {
      const rooms = await emitd.api('GET', '/v1/rooms');
      assert.equal(rooms.status, 200, rooms.text);
      const count = Object.fromEntries(rooms.body.rooms.map((r) => [r.name, r.sockets]));
      assert.equal(count['client:c-1'], 1);
      assert.equal(count['client:c-2'], 1);
      assert.equal(count['user:u-1'], 2);
      assert.equal(count['user:u-2'], 1);
      assert.equal(count['session:s-1'], 1);
      assert.deepEqual(Object.keys(count).filter((r) => /^(client|user|session):$/.test(r)), [],
        'no room for an identity not sent');

      await publish('user:u-1', 'photo.uploaded', payloads['photo.uploaded']);
      await publish('client:c-1', 'photo.processing.started', payloads['photo.processing.started']);
      await publish('session:s-1', 'photo.processing.progress', payloads['photo.processing.progress']);
      await publish('user:u-1', 'photo.processing.completed', payloads['photo.processing.completed']);
      await publish('client:c-2', 'photo.upload.failed', payloads['photo.upload.failed']);
      await publish('user:u-2', 'photo.processing.failed', payloads['photo.processing.failed']);
      await waitUntil('every event', () => a.got.length === 4 && b.got.length === 3 && c.got.length === 1);
      assert.deepEqual(a.got, ['photo.uploaded', 'photo.processing.started', 'photo.processing.progress',
        'photo.processing.completed'].map((e) => [e, payloads[e]]));
      assert.deepEqual(b.got, ['photo.uploaded', 'photo.processing.completed', 'photo.upload.failed']
        .map((e) => [e, payloads[e]]));
      assert.deepEqual(c.got, [['photo.processing.failed', payloads['photo.processing.failed']]]);
      assert.deepEqual(anon.got, []);
    } finally {
      closeAll(a, b, c, anon);
    }
  });
}

test('GET /health on the clients\' base URL has the seed\'s websocket details', async () => {
  const a = await client({ clientId: 'h-1', userId: 'h-2' }, ['websocket']);
  const b = await client({ sessionId: 'h-3' }, ['polling']);
  try {
    const h = await waitUntil('the two clients in /health', async () => {
      const r = await httpRequest(emitd.port, 'GET', '/health');
      const v = JSON.parse(r.body);
      return r.status === 200 && v.details.websocket.connectedClients === 2 ? v : null;
    });
    assert.equal(h.status, 'ok');
    assert.match(h.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(h.details.websocket, { status: 'healthy', connectedClients: 2, activeRooms: 3 });
  } finally {
    closeAll(a, b);
  }
});

test('the seed\'s client example gets the backend\'s events, then system.maintenance on SIGTERM', async () => {
  const host = emitd.url.replace('http://', '');
  const seed = runSeedClient('photo-events.client.js', [['localhost:3000', host]]);
  const direct = await client({ userId: 'my-user-id', clientId: 'other-tab' }, ['polling']);
  try {
    await seed.waitLine(/^Connected to WebSocket server$/m);
    await waitUntil('the example\'s rooms', async () => {
      const r = await emitd.api('GET', '/v1/rooms');
      return r.body.rooms.some((x) => x.name === 'client:my-client-id');
    });
    await publish('client:my-client-id', 'photo.uploaded', payloads['photo.uploaded']);
    await seed.waitLine(/Photo uploaded: \{[^}]*photoId: 'p-1'[^}]*filename: 'example\.jpg'/);
    await publish('user:my-user-id', 'photo.processing.completed', payloads['photo.processing.completed']);
    await seed.waitLine(/Photo processing completed: \{[^]*status: 'completed'[^]*faces: 2/);
    await publish('user:my-user-id', 'photo.processing.failed', payloads['photo.processing.failed']);
    await seed.waitLine(/Photo processing failed: \{[^]*error: 'Corrupt image'/);

    const stopped = stopAndCheck(emitd);
    const m = await seed.waitLine(/System maintenance: \{[^}]*\}[^]*Disconnected from WebSocket server/, 15000);
    assert.match(m[0], /message: 'Server is shutting down for maintenance'/);
    assert.deepEqual(await stopped, []);
    /* the event, with the seed's fields, came before the disconnect */
    const i = direct.got.findIndex((e) => e[0] === 'system.maintenance');
    assert.ok(i >= 0, JSON.stringify(direct.got));
    assert.deepEqual(Object.keys(direct.got[i][1]).sort(), ['message', 'timestamp']);
    assert.equal(direct.got[i][1].message, 'Server is shutting down for maintenance');
    assert.ok(Math.abs(Date.parse(direct.got[i][1].timestamp) - Date.now()) < 60000);
    assert.equal(direct.got[direct.got.length - 1][0], 'disconnect');
    assert.ok(i < direct.got.length - 1);
  } finally {
    closeAll(direct);
    await seed.stop();
  }
});
