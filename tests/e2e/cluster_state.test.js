'use strict';
/*
 * The cluster-wide state with 2 workers and the real socket.io-client:
 * presence (two tabs on two workers are one user, online once, offline after
 * the last), per-room online users, status changes; Socket.IO
 * connection-state recovery after a transport drop (also onto the other
 * worker) and after kill -9 of the client's worker, with every missed event
 * in order; application recovery tokens; the per-IP connection limit that
 * blocks and then releases; per-user message limits shared by both workers;
 * the monitoring figures. Handlers: handlers/cluster.lua.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const {
  startEmitd, stopAndCheck, handler, childrenOf, processArgs, isAlive, delay, isReference,
} = require('./lib/harness');
const { io, ack, closeAll, userClient, spreadClients, payloadsOf, waitUntil, waitConnected, once } = require('./lib/clients');

const skip = isReference() && 'emitd-only: workers, presence and shared limits are emitd APIs';
const BLOCK_MS = 2000;

let emitd;
test.before(async () => {
  if (skip) return;
  emitd = await startEmitd({
    config: {
      recovery: { max_disconnection: 60000 },
      namespaces: [
        { name: '/chat', script: handler('cluster.lua') },
        { name: '/limited', script: handler('cluster.lua'),
          connect_limit: { max: 5, window: 60000, block: BLOCK_MS } },
      ],
      engineio: undefined,
      cors: undefined,
    },
  });
});
test.after(async () => { if (emitd) await emitd.stop(); });

/* A /chat client (recovery on: each event carries its offset last). */
const client = (user, opts) => userClient(`${emitd.url}/chat`, user, opts);

const spread = (users, opts) => spreadClients(client, users, opts);
const payloads = payloadsOf;
const waitFor = waitUntil;

function workerPid(n) {
  return childrenOf(emitd.pid).find((pid) => (processArgs(pid) || '') === `emitd: worker ${n}`);
}

test('two tabs of one user on two workers: online once, offline after the last tab', { skip }, async () => {
  const [obs] = await spread(['observer']);
  const tabs = await spread(['alice', 'alice']);
  try {
    assert.notEqual(tabs[0].worker, tabs[1].worker, 'the tabs are on different workers');
    await waitFor('user:online alice', () => payloads(obs, 'user:online').some((p) => p.userId === 'alice'));
    const [p2] = await ack(obs, 'presence:user-status', { userId: 'alice' });
    assert.equal(p2.success, true);
    assert.equal(p2.presence.status, 'online');
    assert.equal(p2.presence.connections, 2);
    assert.equal(p2.presence.info.username, 'alice');
    const [list] = await ack(obs, 'presence:online-users', {});
    assert.deepEqual(list.users.map((u) => u.userId).sort(), ['alice', 'observer']);

    tabs[0].disconnect();
    await waitFor('one connection left', async () => {
      const [p] = await ack(obs, 'presence:user-status', { userId: 'alice' });
      return p.presence.connections === 1;
    });
    const [p1] = await ack(obs, 'presence:user-status', { userId: 'alice' });
    assert.equal(p1.presence.status, 'online');
    assert.deepEqual(payloads(obs, 'user:offline'), [], 'no offline while a tab is open');

    tabs[1].disconnect();
    await waitFor('user:offline alice', () => payloads(obs, 'user:offline').length === 1);
    assert.equal(payloads(obs, 'user:offline')[0].userId, 'alice');
    assert.equal(payloads(obs, 'user:online').filter((p) => p.userId === 'alice').length, 1,
      'online was announced once for two tabs');
    const [p0] = await ack(obs, 'presence:user-status', { userId: 'alice' });
    assert.equal(p0.presence.status, 'offline');
    assert.equal(p0.presence.connections, 0);
    assert.ok(p0.presence.lastSeen >= p0.presence.connectedAt);
    const [stats] = await ack(obs, 'presence:stats', {});
    assert.equal(stats.stats.onlineUsers, 1);
    assert.ok(stats.stats.offlineUsers >= 1);
  } finally {
    closeAll(obs, tabs);
  }
});

test('room presence across workers and status changes reach everyone', { skip }, async () => {
  const [bob, carol] = await spread(['bob', 'carol']);
  try {
    assert.notEqual(bob.worker, carol.worker);
    await ack(bob, 'join', 'chat-1');
    await ack(carol, 'join', 'chat-1');
    const [room] = await ack(bob, 'room:online', { chatId: 'chat-1' });
    assert.deepEqual(room.onlineUsers.map((u) => u.userId).sort(), ['bob', 'carol']);
    assert.equal(room.sockets, 2);
    await waitFor('room:online-update for carol', () =>
      payloads(bob, 'room:online-update').some((p) => p.userId === 'carol' && p.online));

    const [r] = await ack(carol, 'presence:update-status', { status: 'away' });
    assert.deepEqual(r, { success: true, message: 'Status updated successfully' });
    await waitFor('user:status-changed', () => payloads(bob, 'user:status-changed').length === 1);
    assert.deepEqual(payloads(bob, 'user:status-changed')[0],
      { userId: 'carol', status: 'away', previous: 'online' });
    const [bad] = await ack(carol, 'presence:update-status', { status: 'sleepy' });
    assert.equal(bad.success, false);
    const [stats] = await ack(bob, 'presence:stats', {});
    assert.equal(stats.stats.awayUsers, 1);

    await ack(carol, 'leave', 'chat-1');
    await waitFor('room:online-update carol offline', () =>
      payloads(bob, 'room:online-update').some((p) => p.userId === 'carol' && !p.online));
    const [after] = await ack(bob, 'room:online', { chatId: 'chat-1' });
    assert.deepEqual(after.onlineUsers.map((u) => u.userId), ['bob']);
  } finally {
    closeAll(bob, carol);
  }
});

/* Drop the transport (the client reconnects by itself) while `sender`
 * emits `n` events to the room; resolve once the client is back. */
async function dropAndMiss(s, sender, room, event, from, n) {
  const back = once(s, 'connect', 10000);
  s.io.engine.close();
  for (let k = from; k < from + n; k++) await ack(sender, 'to_room', room, event, k);
  await back;
  const [who] = await ack(s, 'whoami');
  return who;
}

/*
 * Make the next placement go to the worker other than `worker`: open
 * clients (bounded) until at least two sit on `worker`, then close the ones
 * on the other worker, so that `worker` is the more loaded by two.
 */
async function loadUp(worker) {
  const on = [];
  const off = [];
  for (let i = 0; i < 12 && on.length < 2; i++) {
    const c = await client(null);
    (c.worker === worker ? on : off).push(c);
  }
  closeAll(off);
  assert.equal(on.length, 2, `could not load worker ${worker}`);
  /* Workers report their load to the master within 20 ms (coalesced); the
   * master's view is not observable from here, so give it that time. */
  await delay(100);
  return on;
}

test('connection-state recovery after a transport drop, onto the other worker too, every missed event in order', { skip }, async () => {
  const [sender] = await spread(['sender']);
  const s = await client('dana', {
    reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 100, randomizationFactor: 0,
  });
  const fillers = [];
  try {
    const id = s.id;
    await ack(s, 'join', 'news');
    await ack(sender, 'to_room', 'news', 'n', 0);
    await waitFor('the first event', () => payloads(s, 'n').length === 1);
    const workers = new Set([s.worker]);
    let next = 1;
    /* Each round drops the transport, misses 5 events and recovers; from
     * the second round on, the client's worker is made the busier one so
     * that it comes back on the other worker. */
    for (let round = 0; round < 4; round++) {
      if (round > 0) fillers.push(...await loadUp(s.worker));
      const who = await dropAndMiss(s, sender, 'news', 'n', next, 5);
      next += 5;
      assert.equal(s.recovered, true, `round ${round}: socket.recovered`);
      assert.equal(who.recovered, true, 'the script sees socket.recovered');
      assert.equal(s.id, id, 'the same socket id');
      workers.add(who.worker);
      s.worker = who.worker;
      await waitFor(`events 0..${next - 1}`, () => payloads(s, 'n').length >= next);
      assert.deepEqual(payloads(s, 'n'), [...Array(next).keys()], 'every event once, in order');
    }
    assert.equal(workers.size, 2, 'recovered on both workers');
    /* Still in its room after all that: a new event arrives live. */
    await ack(sender, 'to_room', 'news', 'n', next);
    await waitFor('the live event', () => payloads(s, 'n').length === next + 1);
    /* Offsets grow: the client's last one is the newest. */
    const offsets = s.seen.filter((e) => e[0] === 'n').map((e) => BigInt(e[2]));
    assert.ok(offsets.every((o, i) => i === 0 || o > offsets[i - 1]), 'offsets increase');
  } finally {
    closeAll(sender, s, fillers);
  }
});

test('an explicit disconnect is not recovered: a new socket', { skip }, async () => {
  const s = await client('erin', { reconnection: true, reconnectionDelay: 100, randomizationFactor: 0 });
  try {
    const id = s.id;
    await ack(s, 'to_self', 'hello', 1);
    await waitFor('hello', () => payloads(s, 'hello').length === 1);
    s.disconnect();
    s.connect();
    await waitConnected(s);
    assert.equal(s.recovered, false);
    assert.notEqual(s.id, id);
  } finally {
    closeAll(s);
  }
});

test('kill -9 of a worker: its users go offline for the others, its clients recover on restart', { skip }, async () => {
  const [obs, victimUser] = await spread(['watcher', 'frank']);
  const victimWorker = victimUser.worker;
  const survivor = obs.worker !== victimWorker ? obs : null;
  assert.ok(survivor, 'the observer is on the other worker');
  /* A recovering client on the worker that dies. */
  let s = null;
  const extra = [];
  for (let i = 0; i < 12 && !s; i++) {
    const c = await client('gina', {
      reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 200, randomizationFactor: 0,
    });
    if (c.worker === victimWorker) s = c; else extra.push(c);
  }
  closeAll(extra);
  assert.ok(s, 'a client on the worker to kill');
  try {
    const id = s.id;
    await ack(s, 'join', 'ops');
    await ack(obs, 'to_room', 'ops', 'm', 0);
    await waitFor('m 0', () => payloads(s, 'm').length === 1);
    await waitFor('frank online', async () => {
      const [p] = await ack(obs, 'presence:user-status', { userId: 'frank' });
      return p.success && p.presence.status === 'online';
    });
    const pid = workerPid(victimWorker);
    assert.ok(pid, `worker ${victimWorker} pid`);
    const back = once(s, 'connect', 15000);
    process.kill(pid, 'SIGKILL');
    for (let k = 1; k <= 5; k++) await ack(obs, 'to_room', 'ops', 'm', k);
    /* frank's only connection died with the worker: the others see him go. */
    await waitFor('user:offline frank', () =>
      payloads(obs, 'user:offline').some((p) => p.userId === 'frank'), 10000);
    await back;
    assert.equal(s.recovered, true, 'recovered after its worker was killed');
    assert.equal(s.id, id);
    await waitFor('m 0..5', () => payloads(s, 'm').length >= 6, 5000);
    assert.deepEqual(payloads(s, 'm'), [0, 1, 2, 3, 4, 5]);
    await waitFor('a new worker', () => {
      const p = workerPid(victimWorker);
      return p && p !== pid && isAlive(p);
    });
    const [p] = await ack(obs, 'presence:user-status', { userId: 'frank' });
    assert.equal(p.presence.status, 'offline');
    assert.equal(p.presence.connections, 0);
  } finally {
    closeAll(obs, victimUser, s);
  }
});

test('application recovery tokens restore rooms and deliver what was sent to them', { skip }, async () => {
  const [sender] = await spread(['sender2']);
  let s = await client('hank');
  try {
    await ack(s, 'join', 'team-1');
    await ack(s, 'join', 'team-2');
    const [created] = await ack(s, 'connection:create-session', {});
    assert.equal(created.success, true);
    assert.match(created.recoveryToken, /^[0-9a-f]{48}$/);
    const [info] = await ack(s, 'connection:session-info', {});
    assert.equal(info.sessionInfo.recoveryToken, created.recoveryToken);
    assert.deepEqual(info.sessionInfo.rooms.sort(), ['team-1', 'team-2']);
    s.disconnect();
    await delay(50);
    await ack(sender, 'to_room', 'team-1', 'message:new', { text: 'while away' });
    await ack(sender, 'to_room', 'elsewhere', 'message:new', { text: 'not for hank' });

    s = await client('hank');
    const [rec] = await ack(s, 'connection:recover', { recoveryToken: created.recoveryToken });
    assert.equal(rec.success, true, JSON.stringify(rec));
    assert.equal(rec.message, 'Connection recovered successfully');
    assert.equal(rec.session.userId, 'hank');
    assert.equal(rec.session.socketId, s.id);
    assert.deepEqual(rec.session.rooms.sort(), ['team-1', 'team-2']);
    /* Everything sent to its rooms (and the namespace) while it was away;
     * not what went to a room it was not in. */
    assert.deepEqual(rec.session.messageQueue.filter((m) => m.event === 'message:new'),
      [{ event: 'message:new', args: [{ text: 'while away' }] }]);
    /* The rooms are back: a new message arrives live. */
    await ack(sender, 'to_room', 'team-2', 'message:new', { text: 'live' });
    await waitFor('live message', () => payloads(s, 'message:new').some((m) => m.text === 'live'));
    const [bad] = await ack(s, 'connection:recover', { recoveryToken: 'f'.repeat(48) });
    assert.deepEqual(bad, { success: false, message: 'Invalid or expired recovery token' });
    const [st] = await ack(s, 'connection:stats', {});
    assert.ok(st.stats.recoveryTokens >= 1);
  } finally {
    closeAll(sender, s);
  }
});

test('per-user message and typing limits are shared by both workers', { skip }, async () => {
  const tabs = await spread(['ivan', 'ivan']);
  try {
    assert.notEqual(tabs[0].worker, tabs[1].worker);
    const replies = [];
    for (let i = 0; i < 101; i++) {
      const [r] = await ack(tabs[i % 2], 'message:send', { chatId: 'c', content: `m${i}` });
      replies.push(r);
    }
    assert.equal(replies.slice(0, 100).filter((r) => r.success).length, 100);
    assert.deepEqual(replies[100], { success: false, message: 'Message rate limit exceeded. Please slow down.' });
    const typing = [];
    for (let i = 0; i < 11; i++) typing.push((await ack(tabs[i % 2], 'typing:start', { chatId: 'c' }))[0]);
    assert.equal(typing.filter((r) => r.success).length, 10);
    assert.equal(typing[10].success, false);
    /* A user id that makes the key longer than the table keeps (hashed). */
    const [long] = await spread(['u'.repeat(127)]);
    const longReplies = [];
    for (let i = 0; i < 101; i++) longReplies.push((await ack(long, 'message:send', { content: 'x' }))[0]);
    assert.equal(longReplies.filter((r) => r.success).length, 100);
    assert.equal(longReplies[100].success, false);
    closeAll(long);
    /* Another user has a budget of their own. */
    const [other] = await spread(['judy']);
    const [r] = await ack(other, 'message:send', { chatId: 'c', content: 'hi' });
    assert.equal(r.success, true);
    closeAll(other);
  } finally {
    closeAll(tabs);
  }
});

async function tryLimited() {
  const s = io(`${emitd.url}/limited`, {
    forceNew: true, transports: ['websocket'], reconnection: false, timeout: 5000,
  });
  try {
    return await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no answer to a /limited connect')), 5000);
      s.once('connect', () => { clearTimeout(t); resolve({ ok: true }); });
      s.once('connect_error', (e) => { clearTimeout(t); resolve({ ok: false, err: e }); });
    });
  } finally {
    s.disconnect();
  }
}

test('connection rate limit: 5 attempts per IP, then blocked, then released', { skip }, async () => {
  const results = [];
  for (let i = 0; i < 7; i++) results.push(await tryLimited());
  assert.deepEqual(results.map((r) => r.ok), [true, true, true, true, true, false, false]);
  const err = results[5].err;
  assert.equal(err.message, 'Too many connection attempts. Please try again later.');
  assert.ok(err.data.retryAfter >= 1 && err.data.retryAfter <= BLOCK_MS / 1000, JSON.stringify(err.data));
  /* The other namespaces are not limited, and nothing leaked: /chat works. */
  const c = await client('kate');
  closeAll(c);
  /* After the block the address may connect again. */
  await delay(BLOCK_MS + 200);
  const again = await tryLimited();
  assert.equal(again.ok, true, again.err && again.err.message);
  /* Monitoring counted the refusals. */
  const m = await client('mon');
  try {
    const [ev] = await ack(m, 'monitoring:events', { type: 'rate_limit', limit: 10 });
    assert.ok(ev.events.length >= 2);
    assert.equal(ev.events[0].ipAddress, '127.0.0.1');
    assert.equal(ev.events[0].namespace, '/limited');
  } finally {
    closeAll(m);
  }
});

test('monitoring figures count connections on every worker', { skip }, async () => {
  const a = await client('leo');
  try {
    const [m0] = await ack(a, 'monitoring:metrics', {});
    const before = m0.metrics;
    const more = await spread(['x1', 'x2']);
    const [m1] = await ack(a, 'monitoring:metrics', {});
    assert.equal(m1.metrics.totalConnections, before.totalConnections + 2);
    assert.ok(m1.metrics.activeConnections >= 3);
    assert.ok(m1.metrics.peakConnections >= m1.metrics.activeConnections);
    assert.ok(m1.metrics.connectionsPerMinute >= 3);
    closeAll(more);
    await waitFor('active count drops', async () => {
      const [m2] = await ack(a, 'monitoring:metrics', {});
      return m2.metrics.activeConnections === m1.metrics.activeConnections - 2;
    });
    const [ev] = await ack(a, 'monitoring:events', { type: 'connect', userId: 'x1', limit: 5 });
    assert.equal(ev.events.length, 1);
    assert.equal(ev.events[0].ipAddress, '127.0.0.1');
    assert.equal(typeof ev.events[0].timestamp, 'number');
    const [st] = await ack(a, 'monitoring:stats', {});
    assert.ok(st.stats.topIPs.some((t) => t.ip === '127.0.0.1' && t.count >= 3));
    assert.ok(st.stats.errorRate > 0 && st.stats.errorRate < 1);
    assert.ok(Array.isArray(st.stats.recentEvents) && st.stats.recentEvents.length > 0);
  } finally {
    closeAll(a);
  }
});

test('emitd exits cleanly on SIGTERM', { skip }, async () => {
  const problems = await stopAndCheck(emitd);
  emitd = null;
  assert.deepEqual(problems, []);
});
