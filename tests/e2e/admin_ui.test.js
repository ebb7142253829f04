'use strict';
/*
 * The @socket.io/admin-ui dashboard (npm 0.5.1, pinned) against emitd with
 * two workers. The dashboard is a socket.io-client in a browser; these
 * tests connect to its namespace exactly as its App.vue does (forceNew,
 * no reconnection, withCredentials, the auth object) and check what it
 * hears and what its actions do, on the sockets of both workers. The last
 * test runs one scenario against Node's socket.io with the npm package's
 * instrument() and against emitd, and compares what the dashboard receives
 * from each, field by field.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const os = require('node:os');
const fs = require('node:fs');
const path = require('node:path');
const bcrypt = require('bcryptjs');
const { startEmitd, stopAndCheck, runEmitd, isReference, timeMs, handler } = require('./lib/harness');
const {
  io, connect, ack, waitConnected, waitUpgraded, connectError, closeAll, recordEvents,
  waitUntil, once,
} = require('./lib/clients');

const skip = isReference() && 'emitd-only: admin_ui is configured in emitd.conf';

const PASSWORD = 's3cret';
/* The lowest bcrypt cost: the login is checked, and stays quick under Valgrind. */
const HASH = bcrypt.hashSync(PASSWORD, 4);
const WAIT = timeMs(6000);
const STATS_WAIT = timeMs(8000);

/* As the dashboard connects (ui/src/App.vue, tryConnect). */
function dashboard(url, auth, extra = {}) {
  const s = io(`${url}/admin`, {
    forceNew: true, reconnection: false, withCredentials: true, transports: ['websocket'],
    timeout: WAIT, auth, ...extra,
  });
  s.seen = recordEvents(s);
  return s;
}

/* The first recorded event `name` whose arguments pred accepts. */
function seen(sock, name, pred = () => true) {
  return sock.seen.find((e) => e[0] === name && pred(...e.slice(1)));
}

function waitSeen(sock, name, pred, ms = WAIT) {
  return waitUntil(`"${name}" on the dashboard`, () => seen(sock, name, pred), ms).then((e) => e.slice(1));
}

async function whoami(s) {
  const [me] = await ack(s, 'whoami');
  return me;
}

/* App clients on "/" until both workers hold some (least-loaded placement). */
async function clientsOnBothWorkers(url, transports) {
  const out = [];
  for (const t of transports) {
    const s = await connect(url, '/', t);
    s.worker = (await whoami(s)).worker;
    out.push(s);
  }
  assert.deepEqual([...new Set(out.map((s) => s.worker))].sort(), [1, 2],
                   'the clients are on both workers');
  return out;
}

function adminConf(extra = {}) {
  return { admin_ui: { username: 'admin', password: HASH, server_id: 'host-a', ...extra } };
}

async function finish(d, socks) {
  closeAll(socks);
  const problems = await stopAndCheck(d);
  assert.deepEqual(problems, []);
}

test('login: the password is checked against its bcrypt hash; the session id it gives admits on every worker', { skip }, async () => {
  const d = await startEmitd({ config: adminConf() });
  const socks = [];
  try {
    for (const auth of [{}, { username: 'admin', password: 'wrong' }, { username: 'root', password: PASSWORD },
      { username: 'admin', password: 42 }, { sessionId: 'f'.repeat(32) }, { sessionId: 'nope' }]) {
      const s = dashboard(d.url, auth);
      socks.push(s);
      const err = await connectError(s, WAIT);
      assert.equal(err.message, 'invalid credentials', `refused: ${JSON.stringify(auth)}`);
    }
    const a = dashboard(d.url, { username: 'admin', password: PASSWORD });
    socks.push(a);
    await waitConnected(a, WAIT);
    const [id] = await waitSeen(a, 'session');
    assert.match(id, /^[0-9a-f]{32}$/);
    await waitSeen(a, 'config');
    /* Kept connected, each dashboard makes its worker the busier one, so
     * the next lands on the other: the session id is checked on both. */
    const engines = new Set([a.io.engine.id[0]]);
    for (let i = 0; i < 6 && engines.size < 2; i++) {
      const b = dashboard(d.url, { sessionId: id });
      socks.push(b);
      await waitConnected(b, WAIT);
      await waitSeen(b, 'config');
      assert.equal(seen(b, 'session'), undefined, 'a session id logs in without a new session');
      engines.add(b.io.engine.id[0]);
    }
    assert.equal(engines.size, 2, 'the session id admitted on both workers');
    assert.match(d.log(), /admin_ui: socket \S+ logged in from 127\.0\.0\.1/);
    assert.match(d.log(), /admin_ui: a login from 127\.0\.0\.1 was refused/);
  } finally {
    await finish(d, socks);
  }
});

test('the dashboard sees every worker\'s sockets, server_stats every 2 s, and each socket\'s connect, upgrade, rooms, events and disconnect', { skip }, async () => {
  const d = await startEmitd({ config: adminConf() });
  const socks = [];
  try {
    const apps = await clientsOnBothWorkers(d.url, ['websocket', 'polling', 'websocket']);
    socks.push(...apps);
    await ack(apps[0], 'join', 'news');
    await ack(apps[1], 'join', 'news');
    const custom = await connect(d.url, '/custom', 'websocket');
    socks.push(custom);

    const dash = dashboard(d.url, { username: 'admin', password: PASSWORD });
    socks.push(dash);
    await waitConnected(dash, WAIT);
    const [config] = await waitSeen(dash, 'config');
    assert.deepEqual(config.supportedFeatures, ['EMIT', 'JOIN', 'LEAVE', 'DISCONNECT', 'MJOIN', 'MLEAVE',
      'MDISCONNECT', 'AGGREGATED_EVENTS', 'ALL_EVENTS']);
    const [all] = await waitSeen(dash, 'all_sockets');
    const port = new URL(d.url).port;
    for (const s of [...apps, custom]) {
      const e = all.find((x) => x.id === s.id);
      assert.ok(e, `socket ${s.id} of worker ${s.worker} is listed: ${JSON.stringify(all.map((x) => x.id))}`);
      assert.equal(e.nsp, s.nsp);
      assert.equal(e.clientId, s.io.engine.id.slice(0, 12));
      assert.equal(e.transport, s.io.engine.transport.name);
      assert.deepEqual(e.data, {});
      assert.equal(e.handshake.address, '127.0.0.1');
      assert.equal(e.handshake.headers.host, `127.0.0.1:${port}`);
      assert.equal(e.handshake.query.EIO, '4');
      assert.match(e.handshake.url, /^\/socket\.io\/\?EIO=4&transport=/);
      assert.equal(e.handshake.secure, false);
      assert.equal(e.handshake.xdomain, false);
      assert.equal(typeof e.handshake.issued, 'number');
      assert.ok(Math.abs(e.handshake.issued - Date.now()) < 60000);
      assert.equal(typeof e.handshake.time, 'string');
      assert.equal(e.rooms[0], s.id, 'a socket is in the room of its id');
    }
    for (const s of apps.slice(0, 2)) {
      assert.deepEqual(all.find((x) => x.id === s.id).rooms.sort(), [s.id, 'news'].sort());
    }
    assert.ok(all.find((x) => x.id === dash.id && x.nsp === '/admin'), 'the dashboard itself is listed');
    assert.equal(all.length, 5);

    /* server_stats: one report for the host, every 2 s, from every worker's figures. */
    const t0 = Date.now();
    const [s1] = await waitSeen(dash, 'server_stats', () => true, STATS_WAIT);
    const [s2] = await waitSeen(dash, 'server_stats', (x) => x !== s1, STATS_WAIT);
    const gap = Date.now() - t0;
    assert.ok(gap > 1000, `two reports came ${gap} ms apart`);
    for (const st of [s1, s2]) {
      assert.equal(st.serverId, 'host-a');
      assert.equal(st.hostname, os.hostname());
      assert.equal(st.pid, d.pid, 'the master\'s pid');
      assert.equal(typeof st.uptime, 'number');
      assert.equal(st.clientsCount, 5, '4 app clients and the dashboard');
      assert.equal(st.pollingClientsCount, 1);
      const nsps = Object.fromEntries(st.namespaces.map((n) => [n.name, n.socketsCount]));
      assert.equal(nsps['/'], 3);
      assert.equal(nsps['/custom'], 1);
      assert.equal(nsps['/admin'], 1);
      assert.ok(Array.isArray(st.aggregatedEvents));
    }
    assert.equal(dash.seen.filter((e) => e[0] === 'server_stats').length >= 2, true);

    /* A new client: connected on polling, then upgraded. */
    const c = io(d.url, { forceNew: true, reconnection: false, transports: ['polling', 'websocket'] });
    socks.push(c);
    await waitConnected(c);
    await waitUpgraded(c);
    const [conn, when] = await waitSeen(dash, 'socket_connected', (x) => x.id === c.id);
    assert.equal(conn.nsp, '/');
    assert.equal(conn.transport, 'polling');
    assert.equal(conn.clientId, c.io.engine.id.slice(0, 12));
    assert.deepEqual(conn.rooms, [c.id]);
    assert.ok(Math.abs(Date.parse(when) - Date.now()) < 60000, `a date: ${when}`);
    const [upd] = await waitSeen(dash, 'socket_updated', (x) => x.id === c.id);
    assert.deepEqual(upd, { id: c.id, nsp: '/', transport: 'websocket' });
    await ack(c, 'join', 'lobby');
    const joined = await waitSeen(dash, 'room_joined', (nsp, room, id) => id === c.id && room === 'lobby');
    assert.deepEqual(joined.slice(0, 3), ['/', 'lobby', c.id]);
    await ack(c, 'leave', 'lobby');
    const left = await waitSeen(dash, 'room_left', (nsp, room, id) => id === c.id && room === 'lobby');
    assert.deepEqual(left.slice(0, 3), ['/', 'lobby', c.id]);
    await ack(c, 'echo', 'hi', { n: 1 });
    const ev = await waitSeen(dash, 'event_received', (nsp, id, args) => id === c.id && args[0] === 'echo');
    assert.deepEqual(ev.slice(0, 3), ['/', c.id, ['echo', 'hi', { n: 1 }]]);
    const t1 = Date.now();
    const cid = c.id;       /* the client forgets it at disconnect */
    c.disconnect();
    const gone = await waitSeen(dash, 'socket_disconnected', (nsp, id) => id === cid);
    assert.deepEqual(gone.slice(0, 3), ['/', cid, 'client namespace disconnect']);

    /* The new client's connection and bytes are in a later report's events. */
    const counted = await waitUntil('a report counting the events of that second', () => {
      const reports = dash.seen.filter((e) => e[0] === 'server_stats').map((e) => e[1]);
      const evs = reports.flatMap((r) => r.aggregatedEvents);
      return evs.some((e) => e.type === 'rawDisconnection' && e.timestamp >= t1 - 2000)
        && ['rawConnection', 'packetsIn', 'packetsOut', 'bytesIn', 'bytesOut'].every((t) => evs.some((e) => e.type === t && e.count > 0))
        ? evs : null;
    }, STATS_WAIT);
    for (const e of counted) {
      assert.equal(e.timestamp % 1000, 0, 'events are counted per second');
      assert.ok(Number.isInteger(e.count) && e.count > 0);
    }
  } finally {
    await finish(d, socks);
  }
});

test('the dashboard\'s emit, join, leave and disconnect act on the sockets of both workers', { skip }, async () => {
  const d = await startEmitd({ config: adminConf() });
  const socks = [];
  try {
    const [a1, a2] = await clientsOnBothWorkers(d.url, ['websocket', 'polling']);
    socks.push(a1, a2);
    const dash = dashboard(d.url, { username: 'admin', password: PASSWORD });
    socks.push(dash);
    await waitConnected(dash, WAIT);
    await waitSeen(dash, 'all_sockets');
    const got = (s, ev) => s.seen.filter((e) => e[0] === ev).map((e) => e.slice(1));

    /* emit to the namespace, and to a room (a socket's id is its room) */
    dash.emit('emit', '/', null, 'news', { n: 1 }, 'two');
    await waitUntil('both clients get the emit', () => got(a1, 'news').length && got(a2, 'news').length, WAIT);
    assert.deepEqual(got(a1, 'news'), [[{ n: 1 }, 'two']]);
    assert.deepEqual(got(a2, 'news'), [[{ n: 1 }, 'two']]);
    dash.emit('emit', '/', a2.id, 'only2', 1);
    dash.emit('emit', '/', '', 'mark', 1);
    await waitUntil('the mark', () => got(a1, 'mark').length && got(a2, 'mark').length, WAIT);
    assert.deepEqual(got(a1, 'only2'), [], 'a room filter: not to the others');
    assert.deepEqual(got(a2, 'only2'), [[1]]);

    /* join: every socket of the namespace, or those of a room */
    dash.emit('join', '/', 'vip', a1.id);
    await waitSeen(dash, 'room_joined', (nsp, room, id) => room === 'vip' && id === a1.id);
    dash.emit('join', '/', 'everyone');
    await waitSeen(dash, 'room_joined', (nsp, room, id) => room === 'everyone' && id === a2.id);
    await waitSeen(dash, 'room_joined', (nsp, room, id) => room === 'everyone' && id === a1.id);
    assert.deepEqual((await whoami(a1)).rooms.sort(), [a1.id, 'everyone', 'vip'].sort());
    assert.deepEqual((await whoami(a2)).rooms.sort(), [a2.id, 'everyone'].sort());

    /* leave, of one room's sockets */
    dash.emit('leave', '/', 'everyone', 'vip');
    await waitSeen(dash, 'room_left', (nsp, room, id) => room === 'everyone' && id === a1.id);
    assert.deepEqual((await whoami(a1)).rooms.sort(), [a1.id, 'vip'].sort());
    assert.deepEqual((await whoami(a2)).rooms.sort(), [a2.id, 'everyone'].sort());

    /* disconnect: one room's sockets, then every socket, closing the connection */
    const id2 = a2.id;
    dash.emit('_disconnect', '/', false, 'everyone');
    const [why2] = await once(a2, 'disconnect', WAIT);
    assert.equal(why2, 'io server disconnect');
    const [gone] = await waitSeen(dash, 'socket_disconnected', (nsp, id) => id === id2);
    assert.equal(gone, '/');
    assert.equal(a1.connected, true);
    const b = await connect(d.url, '/custom', 'websocket');
    socks.push(b);
    const shared = b.io.socket('/');
    shared.connect();
    await waitConnected(shared);
    const closed = [once(a1, 'disconnect', WAIT), once(b, 'disconnect', WAIT)];
    dash.emit('_disconnect', '/', true);
    const [[why1], [whyB]] = await Promise.all(closed);
    assert.equal(why1, 'io server disconnect');
    assert.equal(whyB, 'io server disconnect', 'its connection closed with its "/" socket');
    assert.equal(dash.connected, true, 'the dashboard is in its own namespace');
    assert.match(d.log(), /admin_ui: socket \S+: _disconnect \/ of room everyone/);
  } finally {
    await finish(d, socks);
  }
});

test('readonly, mode "production" and auth = false: no actions, no socket events, still server_stats', { skip }, async () => {
  const d = await startEmitd({
    config: { admin_ui: { auth: false, readonly: true, mode: 'production', namespace: '/dash' } },
  });
  const socks = [];
  try {
    const c = await connect(d.url, '/', 'websocket');
    socks.push(c);
    const dash = io(`${d.url}/dash`, { forceNew: true, reconnection: false, transports: ['websocket'] });
    dash.seen = recordEvents(dash);
    socks.push(dash);
    await waitConnected(dash, WAIT);
    const [config] = await waitSeen(dash, 'config');
    assert.deepEqual(config.supportedFeatures, ['AGGREGATED_EVENTS']);
    dash.emit('emit', '/dash', null, 'x', 1);
    dash.emit('emit', '/', null, 'x', 1);
    dash.emit('_disconnect', '/', true);
    const c2 = await connect(d.url, '/', 'polling');
    socks.push(c2);
    c2.disconnect();
    const [st] = await waitSeen(dash, 'server_stats', () => true, STATS_WAIT);
    assert.equal(st.serverId, os.hostname(), 'the host name by default');
    assert.deepEqual(st.namespaces.find((n) => n.name === '/dash'), { name: '/dash', socketsCount: 1 });
    await waitSeen(dash, 'server_stats', (x) => x !== st, STATS_WAIT);
    assert.equal(c.connected, true, 'readonly: no disconnect');
    assert.deepEqual(c.seen.filter((e) => e[0] === 'x'), [], 'readonly: no emit');
    const names = new Set(dash.seen.map((e) => e[0]));
    assert.deepEqual([...names].sort(), ['config', 'server_stats'], 'production: counts only');
    /* /admin is an ordinary, unknown namespace here */
    const other = io(`${d.url}/admin`, { forceNew: true, reconnection: false, transports: ['websocket'] });
    socks.push(other);
    assert.equal((await connectError(other, WAIT)).message, 'Invalid namespace');
  } finally {
    await finish(d, socks);
  }
});

test('logins are checked at most 4 a second per worker; the password that passed needs no new check', { skip }, async () => {
  const d = await startEmitd({ config: { ...adminConf(), workers: 1 } });
  const socks = [];
  try {
    const ok = dashboard(d.url, { username: 'admin', password: PASSWORD });
    socks.push(ok);
    await waitConnected(ok, WAIT);
    const tries = [];
    for (let i = 0; i < 30; i++) {
      const s = dashboard(d.url, { username: 'admin', password: `guess${i}` });
      socks.push(s);
      tries.push(connectError(s, WAIT).then((e) => e.message));
    }
    const again = dashboard(d.url, { username: 'admin', password: PASSWORD });
    socks.push(again);
    const msgs = await Promise.all(tries);
    assert.ok(msgs.every((m) => m === 'invalid credentials' || m === 'too many login attempts, try again in a second'),
              JSON.stringify(msgs));
    assert.ok(msgs.includes('too many login attempts, try again in a second'),
              `30 guesses at once are not all checked: ${JSON.stringify(msgs)}`);
    await waitConnected(again, WAIT);
    assert.match(d.log(), /a login from 127\.0\.0\.1 was refused \(too many at once\)/);
  } finally {
    await finish(d, socks);
  }
});

test('emitd -t refuses an admin_ui without a bcrypt hash or with a namespace of the application', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-adminui-'));
  const cases = [
    ['admin_ui = { username = "admin"; password = "s3cret"; };', /admin_ui\.password must be a bcrypt hash/],
    ['admin_ui = { username = "admin"; };', /admin_ui needs "username" and "password"/],
    [`admin_ui = { auth = false; username = "admin"; password = "${HASH}"; };`, /auth = false takes no username/],
    [`namespaces = ( { name = "/admin"; } );\nadmin_ui = { username = "a"; password = "${HASH}"; };`,
      /:2: admin_ui\.namespace "\/admin" is also in "namespaces"/],
    [`admin_ui = { username = "a"; password = "${HASH}"; mode = "dev"; };`, /admin_ui\.mode must be/],
    [`admin_ui = { username = "a"; password = "${HASH}"; namespace = "/a/:b"; };`, /admin_ui\.namespace must begin/],
  ];
  for (const [text, re] of cases) {
    const f = path.join(dir, 'emitd.conf');
    fs.writeFileSync(f, `${text}\n`);
    const r = await runEmitd(['-t', '-c', f]);
    assert.notEqual(r.code, 0, text);
    assert.match(r.out, re);
  }
  const good = path.join(dir, 'good.conf');
  fs.writeFileSync(good, `admin_ui = { username = "admin"; password = "${HASH}"; };\n`);
  const r = await runEmitd(['-t', '-c', good]);
  assert.equal(r.code, 0, r.out);
  fs.rmSync(dir, { recursive: true, force: true });
});

/* ---- the same scenario against Node's socket.io with the npm package ---- */

/* Node's socket.io with instrument() of @socket.io/admin-ui, and the test
 * handlers the scenario uses (join, leave, echo). */
async function startNodePeer() {
  const { Server } = require('socket.io');
  const { instrument } = require('@socket.io/admin-ui');
  const srv = http.createServer();
  const ioServer = new Server(srv);
  const handlers = (s) => {
    s.on('join', (room, cb) => { s.join(room); cb(true); });
    s.on('leave', (room, cb) => { s.leave(room); cb(true); });
    s.on('echo', (...args) => { const cb = args.pop(); cb(...args); });
  };
  ioServer.on('connection', handlers);
  ioServer.of('/custom').on('connection', handlers);
  instrument(ioServer, { auth: { type: 'basic', username: 'admin', password: HASH }, mode: 'development',
                         serverId: 'host-a' });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${srv.address().port}`,
    close: () => new Promise((resolve) => { ioServer.close(); srv.close(() => resolve()); }),
  };
}

/* The shape of a value: its type, and for an object its keys' shapes. */
function shape(v) {
  if (Array.isArray(v)) return v.length ? [shape(v[0])] : [];
  if (v === null) return 'null';
  if (typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = shape(v[k]);
    return o;
  }
  return typeof v;
}

/* What the dashboard hears in one scenario, as shapes and the values that
 * must be the same on both servers. */
async function scenario(url) {
  const socks = [];
  try {
    const refused = dashboard(url, { username: 'admin', password: 'wrong' });
    socks.push(refused);
    const refusal = (await connectError(refused, WAIT)).message;
    const app = await connect(url, '/', 'websocket');
    socks.push(app);
    await ack(app, 'join', 'news');
    const dash = dashboard(url, { username: 'admin', password: PASSWORD });
    socks.push(dash);
    await waitConnected(dash, WAIT);
    const [session] = await waitSeen(dash, 'session');
    const [config] = await waitSeen(dash, 'config');
    const [all] = await waitSeen(dash, 'all_sockets');
    const listed = all.find((x) => x.id === app.id);
    const c = io(url, { forceNew: true, reconnection: false, transports: ['polling', 'websocket'] });
    socks.push(c);
    await waitConnected(c);
    await waitUpgraded(c);
    const conn = await waitSeen(dash, 'socket_connected', (x) => x.id === c.id);
    const [upd] = await waitSeen(dash, 'socket_updated', (x) => x.id === c.id && x.transport);
    await ack(c, 'join', 'lobby');
    const joined = await waitSeen(dash, 'room_joined', (nsp, room, id) => id === c.id && room === 'lobby');
    await ack(c, 'leave', 'lobby');
    const left = await waitSeen(dash, 'room_left', (nsp, room, id) => id === c.id && room === 'lobby');
    await ack(c, 'echo', 'hi', { n: 1 });
    const ev = await waitSeen(dash, 'event_received', (nsp, id, args) => id === c.id && args[0] === 'echo');
    const cid = c.id;
    c.disconnect();
    const gone = await waitSeen(dash, 'socket_disconnected', (nsp, id) => id === cid);
    const stats = await waitSeen(dash, 'server_stats', (x) => x.aggregatedEvents.some((e) => e.type === 'rawConnection'),
                                 STATS_WAIT);
    dash.emit('emit', '/', 'news', 'hello', { a: [1, 'b'] });
    const [hello] = await once(app, 'hello', WAIT);
    dash.emit('join', '/', 'vip');
    await waitSeen(dash, 'room_joined', (nsp, room, id) => room === 'vip' && id === app.id);
    dash.emit('_disconnect', '/', false, 'vip');
    const [reason] = await once(app, 'disconnect', WAIT);
    const hs = { ...listed.handshake, headers: typeof listed.handshake.headers, query: typeof listed.handshake.query };
    const rawConnection = stats[0].aggregatedEvents.find((e) => e.type === 'rawConnection');
    return {
      values: {
        refusal,
        sessionType: typeof session,
        features: config.supportedFeatures,
        listed: { nsp: listed.nsp, transport: listed.transport, rooms: listed.rooms.length, data: listed.data,
                  address: listed.handshake.address, query: listed.handshake.query, secure: listed.handshake.secure,
                  xdomain: listed.handshake.xdomain },
        connected: { nsp: conn[0].nsp, transport: conn[0].transport, rooms: conn[0].rooms.length },
        updated: upd.transport,
        joined: joined.slice(0, 2), left: left.slice(0, 2), event: ev[2], gone: gone[2],
        serverId: stats[0].serverId,
        statsKeys: Object.keys(stats[0]).sort(),
        hello, reason,
      },
      shapes: {
        listed: shape({ ...listed, handshake: hs }), connected: shape(conn), updated: shape(upd),
        joined: shape(joined), left: shape(left), event: shape(ev), gone: shape(gone),
        stats: shape({ ...stats[0], aggregatedEvents: [rawConnection] }),
      },
    };
  } finally {
    closeAll(socks);
  }
}

test('the dashboard hears from emitd what it hears from Node\'s socket.io with the npm package\'s instrument()', { skip }, async () => {
  const peer = await startNodePeer();
  let node;
  try {
    node = await scenario(peer.url);
  } finally {
    await peer.close();
  }
  const d = await startEmitd({
    config: {
      ...adminConf(),
      namespaces: [{ name: '/', script: handler('main.lua') }, { name: '/custom', script: handler('main.lua') }],
    },
  });
  let ours;
  try {
    ours = await scenario(d.url);
  } finally {
    const problems = await stopAndCheck(d);
    assert.deepEqual(problems, []);
  }
  /* The query carries each client's own "t" cache-buster on polling only. */
  assert.deepEqual(ours.values, node.values);
  assert.deepEqual(ours.shapes, node.shapes);
});
