'use strict';
/*
 * Polling sessions owned by both workers, driven through ONE keep-alive TCP
 * connection: the master has to hand the connection to the worker that owns
 * each sid, back and forth, including when a request head arrives in several
 * TCP segments.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { startEmitd, stopAndCheck } = require('./lib/harness');
const { RawHttp, parseOpen, splitPayload } = require('./lib/clients');

let emitd;
test.before(async () => { emitd = await startEmitd(); });
test.after(async () => { if (emitd) await emitd.stop(); });

const SIO = '/socket.io/';
const path = (sid) => `${SIO}?EIO=4&transport=polling&sid=${sid}`;

/*
 * Handshake on separate connections (kept open, so each counts as load)
 * until two sessions have sids owned by different workers.
 */
async function sessionsOnTwoWorkers() {
  const conns = [];
  const sids = [];
  for (let i = 0; i < 6; i++) {
    const c = await new RawHttp(emitd.port).connect();
    conns.push(c);
    const r = await c.request('GET', `${SIO}?EIO=4&transport=polling`);
    assert.equal(r.status, 200, `handshake ${i}: ${r.status} ${r.body}`);
    const { sid } = parseOpen(r.body);
    sids.push(sid);
    const other = sids.find((s) => s[0] !== sid[0]);
    if (other) return { conns, a: other, b: sid };
  }
  conns.forEach((c) => c.close());
  throw new Error(`6 handshakes all landed on one worker: ${sids.join(' ')}`);
}

/* The packets of one GET on the session; asserts a 200. */
async function pollPackets(conn, sid, opts) {
  const r = await conn.request('GET', path(sid), opts);
  assert.equal(r.status, 200, `GET ${sid}: ${r.status} ${r.body}`);
  return splitPayload(r.body);
}

async function postPackets(conn, sid, body, opts = {}) {
  const r = await conn.request('POST', path(sid), { body, headers: { 'Content-Type': 'text/plain;charset=UTF-8' }, ...opts });
  assert.equal(r.status, 200, `POST ${sid}: ${r.status} ${r.body}`);
  assert.equal(r.body, 'ok');
}

/* Poll until the Socket.IO ack with this id arrives; returns its data. */
async function waitAck(conn, sid, id, opts) {
  for (let i = 0; i < 5; i++) {
    for (const p of await pollPackets(conn, sid, opts)) {
      const m = p.match(/^43(\d+)(\[.*)$/s);
      if (m && Number(m[1]) === id) return JSON.parse(m[2]);
    }
  }
  throw new Error(`no ack ${id} on ${sid}`);
}

test('two polling sessions on different workers alternate on one keep-alive connection', async () => {
  const { conns, a, b } = await sessionsOnTwoWorkers();
  const k = await new RawHttp(emitd.port).connect();
  try {
    /* Socket.IO CONNECT on both sessions, through the same socket */
    const socketIds = {};
    for (const sid of [a, b]) {
      await postPackets(k, sid, '40');
      const pkts = await pollPackets(k, sid);
      const connect = pkts.find((p) => p.startsWith('40'));
      assert.ok(connect, `CONNECT answer for ${sid}: ${pkts}`);
      socketIds[sid] = JSON.parse(connect.slice(2)).sid;
    }
    const workers = {};
    let id = 1;
    for (let round = 0; round < 4; round++) {
      for (const sid of [a, b]) {
        await postPackets(k, sid, `42${id}["whoami"]`);
        const [who] = await waitAck(k, sid, id);
        id++;
        assert.equal(who.id, socketIds[sid]);
        if (workers[sid] === undefined) workers[sid] = who.worker;
        assert.equal(who.worker, workers[sid], `session ${sid} stays on its worker`);
      }
    }
    assert.notEqual(workers[a], workers[b], 'the two sessions are served by different workers');
    assert.equal(k.closed, false, 'the keep-alive connection was never closed');
    /* echo with a payload that contains the record separator as JSON escape */
    await postPackets(k, a, `42${id}["echo","x\\u001ey"]`);
    assert.deepEqual(await waitAck(k, a, id), ['x\x1ey']);
    id++;
    await postPackets(k, b, '41');
    await postPackets(k, a, '41');
  } finally {
    k.close();
    conns.forEach((c) => c.close());
  }
});

test('request heads split into several TCP segments, switching workers on one connection', async () => {
  const { conns, a, b } = await sessionsOnTwoWorkers();
  const k = await new RawHttp(emitd.port).connect();
  try {
    /* first piece ends inside the request line, before the sid */
    for (const sid of [a, b, a, b]) {
      await postPackets(k, sid, '40', { pieces: 6, pauseMs: 20 });
      const pkts = await pollPackets(k, sid, { pieces: 9, pauseMs: 15 });
      assert.ok(pkts.some((p) => p.startsWith('40{')), `CONNECT answer: ${pkts}`);
      await postPackets(k, sid, '41', { pieces: 3, pauseMs: 20 });
    }
    /* one byte at a time for a whole request */
    await postPackets(k, b, '40', { pieces: 400, pauseMs: 1 });
    const pkts = await pollPackets(k, b, { pieces: 200, pauseMs: 1 });
    assert.ok(pkts.some((p) => p.startsWith('40{')));
    assert.equal(k.closed, false);
  } finally {
    k.close();
    conns.forEach((c) => c.close());
  }
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
