'use strict';
/*
 * The backend HTTP API on the admin listener (doc/API.md): a test acting as
 * the backend publishes to real socket.io-client sockets on both workers
 * (namespace, rooms, except, one socket, a parameterised namespace's
 * instances, binary arguments, volatile), waits for their acks, makes them
 * join, leave and disconnect, lists rooms, sockets (with socket.data) and
 * presence, runs batches in order, and is refused with the right status for
 * every bad call while the clients keep being served. Recovery is on: a
 * published event is replayed to a client that missed it.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { startEmitd, handler, delay, freePort, isReference } = require('./lib/harness');
const { io, ack, closeAll, userClient, spreadClients, payloadsOf, waitUntil, waitConnected, once, httpRequest } = require('./lib/clients');

const skip = isReference() && 'emitd-only: the backend API is emitd\'s';
const KEY = 'backend-key-0123456789abcdef';

let emitd;
let admin;
test.before(async () => {
  if (skip) return;
  admin = await freePort();
  emitd = await startEmitd({
    config: {
      recovery: { max_disconnection: 60000 },
      admin: { listen: `127.0.0.1:${admin}`, keys: ['another-key-for-rotation-0000', KEY], max_body: 65536,
               timeout: 3000, max_ack_timeout: 10000 },
      namespaces: [
        { name: '/chat', script: handler('cluster.lua') },
        { name: '/device/:deviceId' },
      ],
      engineio: undefined,
    },
  });
  await waitAdmin();
});
test.after(async () => { if (emitd) await emitd.stop(); });

async function waitAdmin() {
  for (let i = 0; i < 100; i++) {
    try { await httpRequest(admin, 'GET', '/health', { ms: 500 }); return; } catch (e) { await delay(50); }
  }
  throw new Error('the admin listener does not answer');
}

/* A call to the API: {status, body (parsed)}; keep-alive off. */
async function api(method, path, body, { key = KEY, raw } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  const r = await httpRequest(admin, method, path, {
    headers, body: raw !== undefined ? raw : body !== undefined ? JSON.stringify(body) : undefined, ms: 15000,
  });
  let parsed;
  try { parsed = JSON.parse(r.body); } catch (e) { parsed = r.body; }
  assert.match(r.headers['content-type'] || '', /^application\/json/, `${method} ${path}: ${r.body}`);
  return { status: r.status, body: parsed };
}

/* A /chat client (recovery on: each event carries its offset last). */
const client = (user, opts) => userClient(`${emitd.url}/chat`, user, opts);

const spread = (users, opts) => spreadClients(client, users, opts);
const payloads = payloadsOf;
const waitFor = waitUntil;

/* A call on a given keep-alive agent: {status, body}. */
function callOn(agent, path, body) {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port: admin, method: 'POST', path, agent,
      headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) } },
    (res) => { let t = ''; res.on('data', (d) => { t += d; }); res.on('end', () => resolve({ status: res.statusCode, body: t })); });
    req.setTimeout(15000, () => req.destroy(new Error('no answer')));
    req.on('error', reject);
    req.end(text);
  });
}

test('calls one after another reach a client in their order, whichever workers serve them', { skip }, async () => {
  const [a, b] = await spread(['ord1', 'ord2']);
  const broker = emitd.children().find((c) => /broker/.test(c.args)).pid;
  const agents = [];
  const on = {};                     /* worker -> a keep-alive agent served by it */
  try {
    assert.notEqual(a.worker, b.worker);
    await ack(a, 'join', 'first');
    /* Find a connection on each worker: with the broker stopped, an emit to
     * the whole namespace reaches only the sockets of the worker serving it. */
    for (let k = 0; k < 8; k++) agents.push(new http.Agent({ keepAlive: true, maxSockets: 1 }));
    /* opened at once, before the workers report their load: spread */
    await Promise.all(agents.map((agent) => callOn(agent, '/v1/emit', { namespace: '/none', event: 'x' })));
    for (let k = 0; k < agents.length && Object.keys(on).length < 2; k++) {
      const agent = agents[k];
      process.kill(broker, 'SIGSTOP');
      let call;
      let first;
      try {
        call = callOn(agent, '/v1/emit', { namespace: '/chat', event: 'probe', args: [k] });
        first = await waitFor('the probe', () => [a, b].find((s) => payloads(s, 'probe').includes(k)));
        await delay(20);
        assert.ok(![a, b].every((s) => payloads(s, 'probe').includes(k)), 'the stopped broker relayed nothing');
      } finally {
        process.kill(broker, 'SIGCONT');
      }
      assert.equal((await call).status, 200);
      if (!on[first.worker]) on[first.worker] = agent;
    }
    assert.equal(Object.keys(on).length, 2, 'connections on both workers');
    /* The first call, from b's worker, must relay to a through the (stopped)
     * broker; the second, from a's own worker, is delivered there at once.
     * The first is answered only once it reached a, so the second comes after. */
    process.kill(broker, 'SIGSTOP');
    const resume = delay(300).then(() => process.kill(broker, 'SIGCONT'));
    const r1 = await callOn(on[b.worker], '/v1/emit', { namespace: '/chat', to: 'first', event: 'seq', args: [1] });
    assert.equal(r1.status, 200, r1.body);
    const r2 = await callOn(on[a.worker], '/v1/emit', { namespace: '/chat', to: 'first', event: 'seq', args: [2] });
    assert.equal(r2.status, 200, r2.body);
    await waitFor('both events', () => payloads(a, 'seq').length === 2);
    assert.deepEqual(payloads(a, 'seq'), [1, 2]);
    assert.deepEqual(payloads(b, 'seq'), []);
    await resume;
  } finally {
    try { process.kill(broker, 'SIGCONT'); } catch (_) { /* gone */ }
    agents.forEach((ag) => ag.destroy());
    closeAll(a, b);
  }
});

test('emit to a namespace, a room, except a room and one socket reaches clients on both workers', { skip }, async () => {
  const [a, b, c] = await spread(['ann', 'bob', 'cid']);
  try {
    await ack(a, 'join', 'news');
    await ack(b, 'join', 'news');
    await ack(b, 'join', 'vip');
    let r = await api('POST', '/v1/emit', { namespace: '/chat', event: 'all', args: [{ n: 1 }, 'two', 3.5, null] });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { ok: true });
    r = await api('POST', '/v1/emit', { namespace: '/chat', to: 'news', except: ['vip'], event: 'room', args: ['x'] });
    assert.equal(r.status, 200);
    r = await api('POST', '/v1/emit', { namespace: '/chat', socket: c.id, event: 'direct', args: [42] });
    assert.equal(r.status, 200);
    r = await api('POST', '/v1/emit', { namespace: '/chat', to: ['news', 'vip'], event: 'either', args: [] });
    assert.equal(r.status, 200);
    await waitFor('every delivery', () => [a, b, c].every((s) => payloads(s, 'all').length === 1)
      && payloads(a, 'room').length === 1 && payloads(c, 'direct').length === 1
      && payloads(a, 'either').length === 1 && payloads(b, 'either').length === 1);
    for (const s of [a, b, c]) {
      const e = s.seen.find((x) => x[0] === 'all');
      assert.deepEqual(e.slice(1, 5), [{ n: 1 }, 'two', 3.5, null]);
      assert.match(e[5], /^\d+$/, 'the recovery offset comes last');
    }
    await delay(200);
    assert.equal(payloads(b, 'room').length, 0, 'except vip');
    assert.equal(payloads(c, 'room').length, 0, 'not in news');
    assert.equal(payloads(a, 'direct').length + payloads(b, 'direct').length, 0, 'one socket only');
    assert.equal(payloads(c, 'either').length, 0);
    assert.equal(payloads(b, 'either').length, 1, 'once, though in both rooms');
  } finally {
    closeAll(a, b, c);
  }
});

test('binary arguments in base64 arrive as binary; a volatile emit reaches ready clients', { skip }, async () => {
  const [a, b] = await spread(['bin1', 'bin2']);
  try {
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    let r = await api('POST', '/v1/emit', {
      namespace: '/chat', event: 'file',
      args: [{ name: 'f', body: { $binary: bytes.toString('base64') } }, { $binary: '' }],
    });
    assert.equal(r.status, 200);
    r = await api('POST', '/v1/emit', { namespace: '/chat', event: 'tick', args: [1], volatile: true });
    assert.equal(r.status, 200);
    await waitFor('binary and volatile', () => [a, b].every((s) => payloads(s, 'file').length === 1
      && payloads(s, 'tick').length === 1));
    for (const s of [a, b]) {
      const e = s.seen.find((x) => x[0] === 'file');
      assert.equal(e[1].name, 'f');
      assert.ok(Buffer.isBuffer(e[1].body));
      assert.deepEqual([...e[1].body], [...bytes]);
      assert.equal(e[2].length, 0);
      /* volatile: not logged for recovery, so no offset */
      assert.deepEqual(s.seen.find((x) => x[0] === 'tick').slice(1), [1]);
    }
    r = await api('POST', '/v1/emit', { namespace: '/chat', event: 'file', args: [{ $binary: 'not base64!' }] });
    assert.equal(r.status, 400);
    assert.equal(r.body.error, 'bad_request');
  } finally {
    closeAll(a, b);
  }
});

test('an emit that waits for acks collects every client\'s reply, from both workers', { skip }, async () => {
  const socks = await spread(['ack1', 'ack2', 'ack3']);
  const silent = await client('silent');
  try {
    for (const s of socks) {
      s.on('question', (q, cb) => cb({ from: s.id, q, bin: Buffer.from('ok') }));
      await ack(s, 'join', 'askers');
    }
    let r = await api('POST', '/v1/emit', { namespace: '/chat', to: 'askers', event: 'question', args: ['why'], timeout: 5000 });
    assert.equal(r.status, 200);
    assert.equal(r.body.sockets, 3);
    assert.equal(r.body.timedOut, false);
    assert.deepEqual(r.body.acks.map((x) => x.from).sort(), socks.map((s) => s.id).sort());
    for (const x of r.body.acks) {
      assert.equal(x.q, 'why');
      assert.deepEqual(x.bin, { $binary: Buffer.from('ok').toString('base64') });
    }
    /* one that never answers: the others' replies, after the timeout */
    await ack(silent, 'join', 'askers');
    const t0 = Date.now();
    r = await api('POST', '/v1/emit', { namespace: '/chat', to: 'askers', event: 'question', args: ['again'], timeout: 600 });
    assert.equal(r.status, 200);
    assert.ok(Date.now() - t0 >= 550, 'waited for the timeout');
    assert.equal(r.body.sockets, 4);
    assert.equal(r.body.acks.length, 3);
    assert.equal(r.body.timedOut, true);
    /* nobody there: at once, empty */
    r = await api('POST', '/v1/emit', { namespace: '/chat', to: 'empty-room', event: 'question', args: [], timeout: 5000 });
    assert.deepEqual(r.body, { ok: true, sockets: 0, acks: [], timedOut: false });
  } finally {
    closeAll(socks, silent);
  }
});

test('join, leave and disconnect by room or socket, on every worker, then listings', { skip }, async () => {
  const [a, b, c] = await spread(['jo', 'ki', 'lu']);
  try {
    await ack(a, 'join', 'group');
    await ack(b, 'join', 'group');
    let r = await api('POST', '/v1/join', { namespace: '/chat', to: 'group', rooms: ['moved', 'also'] });
    assert.equal(r.status, 200);
    assert.equal(r.body.sockets, 2);
    assert.equal(r.body.complete, true);
    r = await api('POST', '/v1/join', { namespace: '/chat', socket: c.id, rooms: 'moved' });
    assert.equal(r.body.sockets, 1);
    /* the join is in effect everywhere when the call returns */
    r = await api('POST', '/v1/emit', { namespace: '/chat', to: 'moved', event: 'm', args: [1] });
    await waitFor('m on three', () => [a, b, c].every((s) => payloads(s, 'm').length === 1));

    r = await api('GET', '/v1/rooms?namespace=/chat');
    assert.equal(r.status, 200);
    const rooms = Object.fromEntries(r.body.rooms.map((x) => [x.name, x.sockets]));
    assert.equal(rooms.group, 2);
    assert.equal(rooms.moved, 3);
    assert.equal(rooms.also, 2);
    assert.ok(r.body.rooms.every((x) => x.namespace === '/chat'));

    r = await api('GET', '/v1/sockets?namespace=/chat&room=moved');
    assert.equal(r.status, 200);
    assert.equal(r.body.total, 3);
    const byId = Object.fromEntries(r.body.sockets.map((x) => [x.id, x]));
    assert.deepEqual(Object.keys(byId).sort(), [a.id, b.id, c.id].sort());
    assert.deepEqual(byId[a.id].data, { userId: 'jo', plan: 'pro' });
    assert.equal(byId[a.id].user, 'jo');
    assert.equal(byId[a.id].transport, 'websocket');
    assert.equal(byId[a.id].namespace, '/chat');
    for (const s of [a, b, c]) assert.equal(byId[s.id].worker, s.worker, 'the worker serving it');
    assert.deepEqual(byId[a.id].rooms.slice().sort(), [a.id, 'also', 'group', 'moved'].sort());
    r = await api('GET', '/v1/sockets?namespace=/chat&room=moved&limit=1');
    assert.equal(r.body.sockets.length, 1);
    assert.equal(r.body.total, 3);

    r = await api('GET', '/v1/presence?namespace=/chat');
    assert.equal(r.status, 200);
    const online = r.body.users.filter((u) => u.status === 'online').map((u) => u.userId);
    for (const u of ['jo', 'ki', 'lu']) assert.ok(online.includes(u), `${u} online`);
    assert.ok(r.body.stats.onlineUsers >= 3);

    r = await api('POST', '/v1/leave', { namespace: '/chat', to: 'moved', except: c.id, rooms: ['moved'] });
    assert.equal(r.body.sockets, 2);
    r = await api('GET', '/v1/sockets?namespace=/chat&room=moved');
    assert.deepEqual(r.body.sockets.map((x) => x.id), [c.id]);

    const gone = [once(a, 'disconnect'), once(b, 'disconnect')];
    r = await api('POST', '/v1/disconnect', { namespace: '/chat', to: 'group' });
    assert.equal(r.body.sockets, 2);
    const reasons = (await Promise.all(gone)).map((args) => args[0]);
    assert.deepEqual(reasons, ['io server disconnect', 'io server disconnect']);
    assert.equal(c.connected, true);
  } finally {
    closeAll(a, b, c);
  }
});

test('a parameterised namespace: one instance, or every instance by its pattern', { skip }, async () => {
  const d1 = io(`${emitd.url}/device/1`, { forceNew: true, transports: ['websocket'], reconnection: false });
  const d2 = io(`${emitd.url}/device/2`, { forceNew: true, transports: ['polling'], reconnection: false });
  const seen = { 1: [], 2: [] };
  d1.on('qr', (x) => seen[1].push(x));
  d2.on('qr', (x) => seen[2].push(x));
  try {
    await Promise.all([waitConnected(d1), waitConnected(d2)]);
    let r = await api('POST', '/v1/emit', { namespace: '/device/2', event: 'qr', args: ['code-2'] });
    assert.equal(r.status, 200);
    r = await api('POST', '/v1/emit', { namespace: '/device/:deviceId', event: 'qr', args: ['all'] });
    assert.equal(r.status, 200);
    await waitFor('qr events', () => seen[1].length === 1 && seen[2].length === 2);
    assert.deepEqual(seen, { 1: ['all'], 2: ['code-2', 'all'] });
    r = await api('GET', '/v1/sockets?namespace=/device/:deviceId');
    assert.equal(r.body.total, 2);
    assert.deepEqual(r.body.sockets.map((x) => x.namespace).sort(), ['/device/1', '/device/2']);
    assert.deepEqual(r.body.sockets.map((x) => x.transport).sort(), ['polling', 'websocket']);
  } finally {
    closeAll(d1, d2);
  }
});

test('a batch runs in order, each after the one before it took effect; a bad one runs nothing', { skip }, async () => {
  const [a, b] = await spread(['ba1', 'ba2']);
  try {
    let r = await api('POST', '/v1/batch', {
      operations: [
        { op: 'join', namespace: '/chat', socket: a.id, rooms: ['batch'] },
        { op: 'join', namespace: '/chat', socket: b.id, rooms: ['batch'] },
        { op: 'emit', namespace: '/chat', to: 'batch', event: 'b', args: [1] },
        { op: 'leave', namespace: '/chat', socket: b.id, rooms: ['batch'] },
        { op: 'emit', namespace: '/chat', to: 'batch', event: 'b', args: [2] },
        { op: 'rooms', namespace: '/chat' },
      ],
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.results.length, 6);
    assert.equal(r.body.results[0].sockets, 1);
    assert.deepEqual(r.body.results[2], { ok: true });
    assert.equal(r.body.results[5].rooms.find((x) => x.name === 'batch').sockets, 1);
    await waitFor('b events', () => payloads(a, 'b').length === 2 && payloads(b, 'b').length === 1);
    assert.deepEqual(payloads(a, 'b'), [1, 2]);
    assert.deepEqual(payloads(b, 'b'), [1]);

    r = await api('POST', '/v1/batch', {
      operations: [
        { op: 'emit', namespace: '/chat', event: 'never', args: [] },
        { op: 'emit', namespace: '/nowhere', event: 'x' },
      ],
    });
    assert.equal(r.status, 404);
    assert.match(r.body.message, /^operation 1: /);
    r = await api('POST', '/v1/batch', { operations: [{ op: 'explode' }] });
    assert.equal(r.status, 400);
    await delay(200);
    assert.equal(payloads(a, 'never').length, 0, 'nothing of a refused batch ran');
  } finally {
    closeAll(a, b);
  }
});

test('bad calls get the right status and an error body; nothing else is affected', { skip }, async () => {
  const [a] = await spread(['steady']);
  try {
    const cases = [
      [await api('POST', '/v1/emit', { event: 'x' }, { key: null }), 401, 'unauthorized'],
      [await api('POST', '/v1/emit', { event: 'x' }, { key: 'wrong-key-0000000000000000' }), 403, 'forbidden'],
      [await api('POST', '/v1/emit', { event: 'x' }, { key: KEY.slice(0, -1) }), 403, 'forbidden'],
      [await api('POST', '/v1/emit', undefined, { raw: '{"event": "x",' }), 400, 'bad_request'],
      [await api('POST', '/v1/emit', undefined, { raw: '[1,2]' }), 400, 'bad_request'],
      [await api('POST', '/v1/emit', { namespace: '/chat' }), 400, 'bad_request'],
      [await api('POST', '/v1/emit', { namespace: '/chat', event: 'connect' }), 400, 'bad_request'],
      [await api('POST', '/v1/emit', { namespace: '/chat', event: 'x', args: 'no' }), 400, 'bad_request'],
      [await api('POST', '/v1/emit', { namespace: '/chat', event: 'x', timeout: 10 ** 9 }), 400, 'bad_request'],
      [await api('POST', '/v1/emit', { namespace: '/unknown', event: 'x' }), 404, 'not_found'],
      [await api('POST', '/v1/join', { namespace: '/chat', to: 'x' }), 400, 'bad_request'],
      [await api('GET', '/v1/emit'), 405, 'method_not_allowed'],
      [await api('POST', '/v1/nothing', {}), 404, 'not_found'],
      [await api('GET', '/v1/rooms?namespace=/nope'), 404, 'not_found'],
      [await api('POST', '/v1/emit', undefined, { raw: JSON.stringify({ event: 'x', args: ['y'.repeat(70000)] }) }), 413, 'too_large'],
    ];
    for (const [r, status, code] of cases) {
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(r.body.error, code);
      assert.equal(typeof r.body.message, 'string');
    }
    /* the public listener serves no API, the admin listener no Socket.IO */
    let r = await httpRequest(emitd.port, 'POST', '/v1/emit', {
      headers: { Authorization: `Bearer ${KEY}` }, body: JSON.stringify({ event: 'x' }),
    });
    assert.equal(r.status, 404);
    r = await httpRequest(admin, 'GET', '/socket.io/?EIO=4&transport=polling');
    assert.equal(r.status, 404);
    /* the client was served all along */
    const [who] = await ack(a, 'whoami');
    assert.equal(who.user, 'steady');
    r = await api('POST', '/v1/emit', { namespace: '/chat', socket: a.id, event: 'still', args: [] });
    assert.equal(r.status, 200);
    await waitFor('still', () => payloads(a, 'still').length === 1);
  } finally {
    closeAll(a);
  }
});

test('a call waiting for acks holds only its own request: the API and the clients go on meanwhile', { skip }, async () => {
  const silent = await client('mute');
  const [a] = await spread(['busy']);
  try {
    await ack(silent, 'join', 'mute-room');
    /* The order of what finishes says it, not a clock: every other call and
     * ack comes back while the slow call still waits. */
    let slowDone = false;
    const slow = api('POST', '/v1/emit', { namespace: '/chat', to: 'mute-room', event: 'q', args: [],
                                           timeout: 6000 }).then((x) => { slowDone = true; return x; });
    for (let i = 0; i < 5; i++) {
      const r = await api('POST', '/v1/emit', { namespace: '/chat', socket: a.id, event: 'fast', args: [i] });
      assert.equal(r.status, 200);
      await ack(a, 'whoami');
    }
    await waitFor('fast events', () => payloads(a, 'fast').length === 5);
    assert.equal(slowDone, false, 'the other calls and the client did not wait for the slow one');
    const r = await slow;
    assert.equal(r.body.timedOut, true);
    /* a client that hangs up on a waiting call does no harm */
    const req = http.request({ host: '127.0.0.1', port: admin, method: 'POST', path: '/v1/emit',
      headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' } });
    req.on('error', () => {});
    req.end(JSON.stringify({ namespace: '/chat', to: 'mute-room', event: 'q', args: [], timeout: 3000 }));
    await delay(100);
    req.destroy();
    const [who] = await ack(a, 'whoami');
    assert.equal(who.user, 'busy');
  } finally {
    closeAll(silent, a);
  }
});

test('a published event takes part in recovery: a client that missed it gets it on reconnect', { skip }, async () => {
  const s = await client('rec', { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 100, randomizationFactor: 0 });
  try {
    await ack(s, 'join', 'feed');
    let r = await api('POST', '/v1/emit', { namespace: '/chat', to: 'feed', event: 'f', args: [0] });
    await waitFor('f 0', () => payloads(s, 'f').length === 1);
    const back = once(s, 'connect', 10000);
    s.io.engine.close();        /* the transport drops; the socket will recover */
    for (let i = 1; i <= 3; i++) {
      r = await api('POST', '/v1/emit', { namespace: '/chat', to: 'feed', event: 'f', args: [i] });
      assert.equal(r.status, 200);
    }
    await back;
    assert.equal(s.recovered, true);
    await waitFor('f 0..3', () => payloads(s, 'f').length === 4);
    assert.deepEqual(payloads(s, 'f'), [0, 1, 2, 3]);
  } finally {
    closeAll(s);
  }
});
