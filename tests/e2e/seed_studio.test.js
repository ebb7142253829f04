'use strict';
/*
 * studio.md against deploy/examples/studio/ as shipped (2 workers, its
 * handlers): "/" with welcome, handshake and event authentication
 * (authenticated / authError), logout, joinRoom / leaveRoom with their
 * callbacks and events (no joining another user's room), getConnectionInfo,
 * ping, heartbeat with latency; "/media" with subscribeMedia and the
 * backend's media* events; "/notifications" with the backend's
 * notification events to one user; polling and WebSocket. The seed's
 * connection snippet and its complete client class run as they stand.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const jwt = require('jsonwebtoken');
const { stopAndCheck, delay } = require('./lib/harness');
const { io, waitConnected, connectError, closeAll, waitUntil, ack } = require('./lib/clients');
const { startExample, runSeedClient } = require('./lib/examples');

const SECRET = 'change-me-studio-jwt-secret-0123456789';   /* the shipped jwt.secret */
const token = (sub, extra = {}) => jwt.sign({ sub, ...extra }, SECRET, { algorithm: 'HS256', expiresIn: '1h' });
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const SERVER_EVENTS = ['welcome', 'authenticated', 'authError', 'loggedOut', 'roomJoined', 'roomLeft', 'pong',
  'heartbeatAck', 'notification', 'mediaProgress', 'mediaComplete', 'mediaError', 'projectUpdate'];

let emitd;
test.before(async () => { emitd = await startExample('studio'); });
test.after(async () => { if (emitd) await emitd.stop(); });

/* A client of nsp recording every server event in order, in s.got. */
function client(nsp, opts = {}) {
  const s = io(`${emitd.url}${nsp}`, { forceNew: true, reconnection: false, ...opts });
  s.got = [];
  for (const e of SERVER_EVENTS) s.on(e, (data) => s.got.push([e, data]));
  return s;
}
const got = (s, event) => s.got.filter((e) => e[0] === event).map((e) => e[1]);
const publish = async (body) => {
  const r = await emitd.api('POST', '/v1/emit', body);
  assert.equal(r.status, 200, r.text);
};

for (const transports of [['websocket'], ['polling']]) {
  const t = transports[0];

  test(`${t}: welcome, then authenticated from the handshake token; the user's room`, async () => {
    const s = client('/', { transports, auth: { token: token('user-1', { email: 'a@example.com' }) } });
    try {
      await waitConnected(s);
      await waitUntil('welcome and authenticated', () => s.got.length === 2);
      const [[e1, welcome], [e2, auth]] = s.got;
      assert.equal(e1, 'welcome');
      assert.deepEqual(Object.keys(welcome).sort(), ['message', 'serverTime', 'socketId']);
      assert.equal(welcome.message, 'Welcome to Slop Studios');
      assert.equal(welcome.socketId, s.id);
      assert.match(welcome.serverTime, ISO);
      assert.equal(e2, 'authenticated');
      assert.deepEqual(Object.keys(auth).sort(), ['authenticatedAt', 'email', 'userId']);
      assert.equal(auth.userId, 'user-1');
      assert.equal(auth.email, 'a@example.com');
      assert.match(auth.authenticatedAt, ISO);
      const [info] = await ack(s, 'getConnectionInfo');
      assert.deepEqual(Object.keys(info).sort(), ['authenticated', 'connected', 'connectedAt', 'rooms', 'socketId']);
      assert.equal(info.socketId, s.id);
      assert.equal(info.connected, true);
      assert.equal(info.authenticated, true);
      assert.match(info.connectedAt, ISO);
      assert.deepEqual(info.rooms.sort(), [s.id, 'user:user-1'].sort());
      await publish({ to: 'user:user-1', event: 'projectUpdate', args: [{ project: 'p1', status: 'rendered' }] });
      await waitUntil('the user event', () => got(s, 'projectUpdate').length === 1);
      assert.deepEqual(got(s, 'projectUpdate'), [{ project: 'p1', status: 'rendered' }]);
    } finally {
      closeAll(s);
    }
  });

  test(`${t}: a bad handshake token gets authError and the socket stays; authenticate by event; logout`, async () => {
    const s = client('/', { transports, auth: { token: 'not-a-token' } });
    try {
      await waitConnected(s);
      await waitUntil('authError', () => got(s, 'authError').length === 1);
      assert.deepEqual(got(s, 'authError'), [{ message: 'Invalid token' }]);
      assert.deepEqual(got(s, 'authenticated'), []);
      assert.equal((await ack(s, 'getConnectionInfo'))[0].authenticated, false);
      /* event authentication: failures */
      assert.deepEqual(await ack(s, 'authenticate', {}), [{ success: false, error: 'Token is required' }]);
      const expired = jwt.sign({ sub: 'x', exp: Math.floor(Date.now() / 1000) - 3600 }, SECRET);
      assert.deepEqual(await ack(s, 'authenticate', { token: expired }), [{ success: false, error: 'Token expired' }]);
      const forged = jwt.sign({ sub: 'x' }, 'some-other-secret-0123456789');
      assert.deepEqual(await ack(s, 'authenticate', { token: forged }), [{ success: false, error: 'Invalid token' }]);
      assert.deepEqual(got(s, 'authError').slice(1), [{ message: 'Token is required' }, { message: 'Token expired' },
        { message: 'Invalid token' }]);
      /* success */
      assert.deepEqual(await ack(s, 'authenticate', { token: token('user-2') }), [{ success: true, userId: 'user-2' }]);
      await waitUntil('authenticated', () => got(s, 'authenticated').length === 1);
      assert.equal(got(s, 'authenticated')[0].userId, 'user-2');
      assert.equal(got(s, 'authenticated')[0].email, undefined);
      let [info] = await ack(s, 'getConnectionInfo');
      assert.equal(info.authenticated, true);
      assert.ok(info.rooms.includes('user:user-2'));
      /* logout */
      assert.deepEqual(await ack(s, 'logout'), [{ success: true }]);
      await waitUntil('loggedOut', () => got(s, 'loggedOut').length === 1);
      assert.deepEqual(got(s, 'loggedOut'), [{ message: 'Logged out successfully' }]);
      [info] = await ack(s, 'getConnectionInfo');
      assert.equal(info.authenticated, false);
      assert.deepEqual(info.rooms, [s.id]);
      await publish({ to: 'user:user-2', event: 'projectUpdate', args: [{ after: 'logout' }] });
      await delay(150);
      assert.deepEqual(got(s, 'projectUpdate'), [], 'no more events of the user it was');
    } finally {
      closeAll(s);
    }
  });

  test(`${t}: joinRoom / leaveRoom with callbacks and events; not another user's room`, async () => {
    const s = client('/', { transports, auth: { token: token('user-3') } });
    const other = client('/', { transports });
    try {
      await Promise.all([waitConnected(s), waitConnected(other)]);
      assert.deepEqual(await ack(s, 'joinRoom', 'project-123'), [{ success: true, room: 'project-123' }]);
      assert.deepEqual(await ack(other, 'joinRoom', 'project-123'), [{ success: true, room: 'project-123' }]);
      await waitUntil('roomJoined', () => got(s, 'roomJoined').length === 1);
      assert.deepEqual(got(s, 'roomJoined'), [{ room: 'project-123', success: true }]);
      /* without a callback (the seed's socket.emit('joinRoom', 'project-124')) */
      s.emit('joinRoom', 'project-124');
      await waitUntil('the second roomJoined', () => got(s, 'roomJoined').length === 2);
      await publish({ to: 'project-123', event: 'projectUpdate', args: [{ id: 'project-123', v: 1 }] });
      await waitUntil('the room event', () => got(s, 'projectUpdate').length === 1 && got(other, 'projectUpdate').length === 1);
      /* refusals */
      assert.deepEqual(await ack(other, 'joinRoom', 'user:user-3'), [{ success: false, error: 'Cannot join another user\'s room' }]);
      assert.deepEqual(await ack(s, 'joinRoom', 'user:user-3'), [{ success: true, room: 'user:user-3' }], 'its own');
      assert.deepEqual(await ack(s, 'joinRoom', ''), [{ success: false, error: 'Room name must be a string of 1 to 128 characters' }]);
      assert.deepEqual(await ack(s, 'joinRoom', 42), [{ success: false, error: 'Room name must be a string of 1 to 128 characters' }]);
      assert.deepEqual(await ack(s, 'joinRoom', 'x'.repeat(129)), [{ success: false, error: 'Room name must be a string of 1 to 128 characters' }]);
      /* leave */
      assert.deepEqual(await ack(s, 'leaveRoom', 'project-123'), [{ success: true, room: 'project-123' }]);
      await waitUntil('roomLeft', () => got(s, 'roomLeft').length === 1);
      assert.deepEqual(got(s, 'roomLeft'), [{ room: 'project-123', success: true }]);
      assert.deepEqual(await ack(s, 'leaveRoom', 'user:user-3'), [{ success: false, error: 'Cannot leave your own user room' }]);
      await publish({ to: 'project-123', event: 'projectUpdate', args: [{ id: 'project-123', v: 2 }] });
      await waitUntil('the second room event', () => got(other, 'projectUpdate').length === 2);
      await delay(100);
      assert.equal(got(s, 'projectUpdate').length, 1, 'left: no more');
      const [info] = await ack(s, 'getConnectionInfo');
      assert.deepEqual(info.rooms.sort(), [s.id, 'project-124', 'user:user-3'].sort());
    } finally {
      closeAll(s, other);
    }
  });

  test(`${t}: ping and heartbeat answer with the server's time, by callback and event`, async () => {
    const s = client('/', { transports });
    try {
      await waitConnected(s);
      const before = Date.now();
      const [p] = await ack(s, 'ping');
      assert.deepEqual(Object.keys(p), ['timestamp']);
      assert.ok(Number.isInteger(p.timestamp) && Math.abs(p.timestamp - before) < 60000);
      await waitUntil('pong', () => got(s, 'pong').length === 1);
      assert.deepEqual(got(s, 'pong'), [p]);
      const sent = Date.now() - 250;
      const [h] = await ack(s, 'heartbeat', { timestamp: sent });
      assert.deepEqual(Object.keys(h).sort(), ['latency', 'serverTime', 'timestamp']);
      assert.match(h.serverTime, ISO);
      assert.equal(Date.parse(h.serverTime), h.timestamp);
      assert.equal(h.latency, h.timestamp - sent);
      assert.ok(h.latency >= 250 - 5000 && h.latency < 60000);
      const [h2] = await ack(s, 'heartbeat', {});
      assert.equal(h2.latency, null);
      const [h3] = await ack(s, 'heartbeat');
      assert.equal(h3.latency, null);
      await waitUntil('heartbeatAck', () => got(s, 'heartbeatAck').length === 3);
      assert.deepEqual(got(s, 'heartbeatAck'), [h, h2, h3]);
    } finally {
      closeAll(s);
    }
  });

  test(`${t}: /media: subscribeMedia, the backend's media events, unsubscribeMedia`, async () => {
    const m = client('/media', { transports });
    const n = client('/media', { transports, auth: { token: token('user-4') } });
    try {
      await Promise.all([waitConnected(m), waitConnected(n)]);
      assert.deepEqual(await ack(m, 'subscribeMedia', 'media-1'), [{ success: true, mediaId: 'media-1' }]);
      assert.deepEqual(await ack(n, 'subscribeMedia', 'media-2'), [{ success: true, mediaId: 'media-2' }]);
      assert.deepEqual(await ack(m, 'subscribeMedia', ''), [{ success: false, error: 'mediaId must be a string of 1 to 128 characters' }]);
      const progress = { mediaId: 'media-1', progress: 40, stage: 'rendering', message: 'Rendering frames' };
      const complete = { mediaId: 'media-1', url: 'https://cdn.example/m1.mp4', thumbnailUrl: 'https://cdn.example/m1.jpg', metadata: { duration: 12.5 } };
      const error = { mediaId: 'media-2', error: 'Out of credits', code: 'QUOTA' };
      await publish({ namespace: '/media', to: 'media:media-1', event: 'mediaProgress', args: [progress] });
      await publish({ namespace: '/media', to: 'media:media-1', event: 'mediaComplete', args: [complete] });
      await publish({ namespace: '/media', to: 'media:media-2', event: 'mediaError', args: [error] });
      await waitUntil('the media events', () => m.got.length === 2 && n.got.length === 1);
      assert.deepEqual(m.got, [['mediaProgress', progress], ['mediaComplete', complete]]);
      assert.deepEqual(n.got, [['mediaError', error]]);
      assert.deepEqual(await ack(m, 'unsubscribeMedia', 'media-1'), [{ success: true, mediaId: 'media-1' }]);
      await publish({ namespace: '/media', to: 'media:media-1', event: 'mediaProgress', args: [{ ...progress, progress: 90 }] });
      await publish({ namespace: '/media', to: 'media:media-2', event: 'mediaProgress', args: [{ mediaId: 'media-2', progress: 1, stage: 'queued' }] });
      await waitUntil('the last event', () => n.got.length === 2);
      await delay(100);
      assert.equal(m.got.length, 2, 'unsubscribed: no more');
    } finally {
      closeAll(m, n);
    }
  });

  test(`${t}: /notifications: a valid token is required; the backend's notification reaches its user`, async () => {
    const a = client('/notifications', { transports, auth: { token: token('user-5') } });
    const a2 = client('/notifications', { transports, auth: { token: token('user-5') } });
    const b = client('/notifications', { transports, auth: { token: token('user-6') } });
    const anon = client('/notifications', { transports });
    const bad = client('/notifications', { transports, auth: { token: 'x.y.z' } });
    try {
      const [e1, e2] = await Promise.all([connectError(anon), connectError(bad)]);
      assert.equal(e1.message, 'Authentication required');
      assert.equal(e2.message, 'Invalid token');
      await Promise.all([a, a2, b].map((s) => waitConnected(s)));
      const note = { id: 'n-1', type: 'success', title: 'Render finished', message: 'Your video is ready',
        timestamp: new Date().toISOString(), data: { mediaId: 'media-1' } };
      await publish({ namespace: '/notifications', to: 'user:user-5', event: 'notification', args: [note] });
      const all = { id: 'n-2', type: 'warning', title: 'Maintenance', message: 'Tonight at 22:00', timestamp: new Date().toISOString() };
      await publish({ namespace: '/notifications', event: 'notification', args: [all] });
      await waitUntil('the notifications', () => a.got.length === 2 && a2.got.length === 2 && b.got.length === 1);
      assert.deepEqual(a.got, [['notification', note], ['notification', all]]);
      assert.deepEqual(a2.got, a.got);
      assert.deepEqual(b.got, [['notification', all]]);
    } finally {
      closeAll(a, a2, b, anon, bad);
    }
  });
}

test('the seed\'s connection snippet and its complete client class, as they stand', async () => {
  const host = emitd.url.replace('http://', '');
  const t = token('seed-user');
  const snippet = runSeedClient('studio.connect.mjs', [['localhost:3000', host], ['your-jwt-token', t]], {
    driver: `
for (const [name, s] of [['default', socket], ['media', mediaSocket], ['auth', authSocket]]) {
  s.on('connect', () => console.log('connected', name, s.nsp));
  s.on('welcome', (d) => console.log('welcome', name, d.message));
  s.on('authenticated', (d) => console.log('authenticated', name, d.userId));
}
` });
  const seed = runSeedClient('studio.client.mjs', [], {
    driver: `
const c = new WebSocketClient(${JSON.stringify(emitd.url)}, ${JSON.stringify(t)});
c.socket.once('connect', async () => {
  const r = await c.joinRoom('project-123');
  console.log('joined', r.room, r.success);
  console.log('ping ms', await c.ping());
  try { await c.joinRoom('user:somebody-else'); } catch (e) { console.log('refused:', e.message); }
  c.disconnect();
});
` });
  try {
    await snippet.waitLine(/connected default \/[^]*connected media \/media|connected media \/media[^]*connected default \//);
    await snippet.waitLine(/connected auth \//);
    await snippet.waitLine(/welcome default Welcome to Slop Studios/);
    await snippet.waitLine(/welcome auth Welcome to Slop Studios/);
    await snippet.waitLine(/authenticated auth seed-user/);
    assert.doesNotMatch(snippet.lines.join('\n'), /authenticated default/);
    await seed.waitLine(/^Connected$/m);
    await seed.waitLine(/^Welcome: Welcome to Slop Studios$/m);
    await seed.waitLine(/^Authenticated as: seed-user$/m);
    await seed.waitLine(/^joined project-123 true$/m);
    await seed.waitLine(/^ping ms \d+$/m);
    await seed.waitLine(/^refused: Cannot join another user's room$/m);
    await seed.waitLine(/^Disconnected: io client disconnect$/m);
  } finally {
    await snippet.stop();
    await seed.stop();
  }
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
