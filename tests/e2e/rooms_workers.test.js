'use strict';
/*
 * Two workers and rooms on one worker (the script tells each client its
 * worker number; broker_rooms.test.js covers rooms across workers).
 * Placement: with least-loaded placement two sequential connections land on
 * different workers, and the first character of the Engine.IO sid names the
 * owning worker.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { startEmitd, stopAndCheck } = require('./lib/harness');
const {
  connect, ack, once, closeAll, recordEvents, withTimeout, TRANSPORTS,
} = require('./lib/clients');

let emitd;
test.before(async () => { emitd = await startEmitd(); });
test.after(async () => { if (emitd) await emitd.stop(); });

const TRANSPORT_NAMES = Object.keys(TRANSPORTS);

/*
 * Open clients (cycling through the transports) until `count` of them are
 * on one worker; close the others. Bounded by the pigeonhole principle.
 */
async function onOneWorker(count, nsp = '/') {
  const byWorker = new Map();
  const all = [];
  try {
    for (let i = 0; i < 2 * count + 2; i++) {
      const s = await connect(emitd.url, nsp, TRANSPORT_NAMES[i % TRANSPORT_NAMES.length]);
      all.push(s);
      const [who] = await ack(s, 'whoami');
      if (!byWorker.has(who.worker)) byWorker.set(who.worker, []);
      const group = byWorker.get(who.worker);
      group.push(s);
      if (group.length === count) {
        closeAll(all.filter((x) => !group.includes(x)));
        group.forEach((g) => { g.events = recordEvents(g); });
        return { sockets: group, worker: who.worker };
      }
    }
  } catch (e) {
    closeAll(all);
    throw e;
  }
  closeAll(all);
  throw new Error(`could not get ${count} clients on one worker`);
}

/*
 * A barrier: an ack round trip on each socket. Anything the server sent a
 * socket before answering is delivered before the ack, so after this a
 * test can say "this socket did not receive X".
 */
async function barrier(sockets) {
  await Promise.all(sockets.map((s) => ack(s, 'echo', 'barrier')));
}

function received(socket, event) {
  return socket.events.filter((e) => e[0] === event).map((e) => e.slice(1));
}

test('two sequential connections land on different workers, told apart by the sid', async () => {
  /* runs first, on a fresh daemon: nothing else is connected */
  const a = await connect(emitd.url, '/', 'websocket');
  const b = await connect(emitd.url, '/', 'websocket');
  try {
    const [wa] = await ack(a, 'whoami');
    const [wb] = await ack(b, 'whoami');
    assert.deepEqual([wa.worker, wb.worker].sort(), [1, 2], 'least-loaded placement uses both workers');
    const sa = a.io.engine.id;
    const sb = b.io.engine.id;
    assert.notEqual(sa[0], sb[0], `the sids' first characters name the workers (${sa}, ${sb})`);
    /* more connections: the first character is always the same for one worker */
    const more = [];
    const charOf = new Map([[wa.worker, sa[0]], [wb.worker, sb[0]]]);
    for (let i = 0; i < 4; i++) {
      const s = await connect(emitd.url, '/', TRANSPORT_NAMES[i % 3]);
      more.push(s);
      const [w] = await ack(s, 'whoami');
      assert.equal(s.io.engine.id[0], charOf.get(w.worker), `sid ${s.io.engine.id} on worker ${w.worker}`);
    }
    closeAll(more);
  } finally {
    closeAll(a, b);
  }
});

test('socket:to(room):emit reaches the other members but not the sender', async () => {
  const { sockets: [a, b, c] } = await onOneWorker(3);
  try {
    assert.ok((await ack(a, 'join', 'r1'))[0].includes('r1'));
    assert.ok((await ack(b, 'join', 'r1'))[0].includes('r1'));
    await ack(a, 'to_room', 'r1', 'msg', 'hi', { n: 1 }, Buffer.from([5]));
    await barrier([a, b, c]);
    assert.equal(received(b, 'msg').length, 1, 'the other member got it once');
    assert.equal(received(b, 'msg')[0][0], 'hi');
    assert.deepEqual(received(b, 'msg')[0][1], { n: 1 });
    assert.deepEqual([...received(b, 'msg')[0][2]], [5]);
    assert.equal(received(a, 'msg').length, 0, 'not the sender');
    assert.equal(received(c, 'msg').length, 0, 'not a non-member');
    /* after leave, no more */
    const [rooms] = await ack(b, 'leave', 'r1');
    assert.ok(!rooms.includes('r1'));
    assert.ok(rooms.includes(b.id));
    await ack(a, 'to_room', 'r1', 'msg2');
    await barrier([a, b, c]);
    assert.equal(received(b, 'msg2').length, 0, 'a socket that left gets nothing');
  } finally {
    closeAll(a, b, c);
  }
});

test('nsp:to(room):emit reaches every member including the sender', async () => {
  const { sockets: [a, b, c] } = await onOneWorker(3);
  try {
    await ack(a, 'join', 'r2');
    await ack(b, 'join', 'r2');
    await ack(a, 'nsp_to_room', 'r2', 'all', 42);
    await barrier([a, b, c]);
    assert.deepEqual(received(a, 'all'), [[42]]);
    assert.deepEqual(received(b, 'all'), [[42]]);
    assert.deepEqual(received(c, 'all'), []);
    /* a socket's own id is a room */
    await ack(c, 'nsp_to_room', a.id, 'direct', 'to a');
    await barrier([a, b, c]);
    assert.deepEqual(received(a, 'direct'), [['to a']]);
    assert.deepEqual(received(b, 'direct'), []);
  } finally {
    closeAll(a, b, c);
  }
});

test('socket.broadcast:emit reaches everyone in the namespace but the sender', async () => {
  const { sockets: [a, b, c] } = await onOneWorker(3);
  try {
    await ack(a, 'broadcast', 'news', 'x');
    await barrier([a, b, c]);
    assert.deepEqual(received(a, 'news'), []);
    assert.deepEqual(received(b, 'news'), [['x']]);
    assert.deepEqual(received(c, 'news'), [['x']]);
  } finally {
    closeAll(a, b, c);
  }
});

test('socket:except(room):emit skips that room and the sender', async () => {
  const { sockets: [a, b, c] } = await onOneWorker(3);
  try {
    await ack(c, 'join', 'quiet');
    await ack(a, 'except_room', 'quiet', 'loud', 1);
    await barrier([a, b, c]);
    assert.deepEqual(received(a, 'loud'), []);
    assert.deepEqual(received(b, 'loud'), [[1]]);
    assert.deepEqual(received(c, 'loud'), []);
  } finally {
    closeAll(a, b, c);
  }
});

test('rooms are per namespace: a "/custom" room does not reach "/" sockets', async () => {
  const { sockets: [a, b] } = await onOneWorker(2, '/custom');
  try {
    await ack(a, 'join', 'shared');
    await ack(b, 'join', 'shared');
    /* a socket on "/" of the same connection as a joins "shared" too */
    const root = a.io.socket('/');
    const rootEvents = recordEvents(root);
    await once(root, 'connect');
    await ack(root, 'join', 'shared');
    await ack(a, 'to_room', 'shared', 'only-custom');
    await barrier([a, b, root]);
    assert.deepEqual(received(b, 'only-custom'), [[]]);
    assert.deepEqual(rootEvents.filter((e) => e[0] === 'only-custom'), []);
    closeAll(root);
  } finally {
    closeAll(a, b);
  }
});

/*
 * The "left" notice for socket `id`. Clients of other tests, on either
 * worker (rooms cross workers through the broker), may still be leaving:
 * their notices are not this test's.
 */
function leftOf(watcher, id) {
  return withTimeout(new Promise((resolve) => {
    const handler = (who, reason) => {
      if (who !== id) return;
      watcher.off('left', handler);
      resolve([who, reason]);
    };
    watcher.on('left', handler);
  }), 5000, `the "left" notice of ${id}`);
}

test('the script\'s disconnect handler gets the reason', async () => {
  const { sockets: [watcher, a, b, c] } = await onOneWorker(4);
  try {
    await ack(watcher, 'join', 'watchers');
    const [aId, bId, cId] = [a.id, b.id, c.id];
    /* client-side namespace disconnect */
    const left1 = leftOf(watcher, aId);
    a.disconnect();
    assert.deepEqual(await left1, [aId, 'client namespace disconnect']);
    /* the transport goes away */
    const left2 = leftOf(watcher, bId);
    b.io.engine.close();
    assert.deepEqual(await left2, [bId, 'transport close']);
    /* the script disconnects the socket */
    const left3 = leftOf(watcher, cId);
    c.emit('disconnect_me', false);
    assert.deepEqual(await left3, [cId, 'server namespace disconnect']);
  } finally {
    closeAll(watcher, a, b, c);
  }
});


test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
