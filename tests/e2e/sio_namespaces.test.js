'use strict';
/*
 * Namespaces with the real socket.io-client: several namespaces multiplexed
 * on one connection, an unknown namespace, disconnecting one namespace from
 * either side, closing the whole connection from the script, and connect
 * hooks that refuse a client - over each transport.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { startEmitd, stopAndCheck } = require('./lib/harness');
const {
  Manager, connect, ack, once, closeAll, connectError, waitConnected, waitUpgraded, TRANSPORTS,
} = require('./lib/clients');

let emitd;
test.before(async () => { emitd = await startEmitd(); });
test.after(async () => { if (emitd) await emitd.stop(); });

/* A Manager (one Engine.IO connection) and sockets on the given namespaces. */
async function multiplexed(transport, nsps) {
  const manager = new Manager(emitd.url, { reconnection: false, timeout: 5000, ...TRANSPORTS[transport] });
  const sockets = nsps.map((n) => manager.socket(n));
  await Promise.all(sockets.map((s) => waitConnected(s)));
  if (transport === 'upgrade') await waitUpgraded(sockets[0]);
  return { manager, sockets };
}

for (const transport of Object.keys(TRANSPORTS)) {
  const name = (s) => `${transport}: ${s}`;

  test(name('"/" and "/custom" share one Engine.IO connection'), async () => {
    const { manager, sockets: [root, custom] } = await multiplexed(transport, ['/', '/custom']);
    try {
      assert.equal(root.io, custom.io, 'one Manager');
      const [a] = await ack(root, 'whoami');
      const [b] = await ack(custom, 'whoami');
      assert.equal(a.nsp, '/');
      assert.equal(b.nsp, '/custom');
      assert.equal(a.id, root.id);
      assert.equal(b.id, custom.id);
      assert.notEqual(a.id, b.id, 'each namespace has its own socket id');
      assert.equal(a.worker, b.worker, 'one connection is served by one worker');
      assert.notEqual(root.id, manager.engine.id);
      assert.deepEqual(await ack(custom, 'echo', 'c'), ['c']);
      assert.deepEqual(await ack(root, 'echo', 'r'), ['r']);
    } finally {
      closeAll(root, custom);
    }
  });

  test(name('an unknown namespace gets connect_error "Invalid namespace"; the other namespace keeps working'), async () => {
    const { manager, sockets: [root] } = await multiplexed(transport, ['/']);
    const engineId = manager.engine.id;
    const bad = manager.socket('/nope');
    try {
      const err = await connectError(bad);
      assert.equal(err.message, 'Invalid namespace');
      assert.equal(bad.connected, false);
      assert.equal(root.connected, true);
      assert.equal(manager.engine.id, engineId, 'still the same Engine.IO connection');
      assert.deepEqual(await ack(root, 'echo', 'still here'), ['still here']);
      /* and a valid namespace can still be added on the same connection */
      const custom = manager.socket('/custom');
      await waitConnected(custom);
      assert.deepEqual(await ack(custom, 'echo', 1), [1]);
      closeAll(custom);
    } finally {
      closeAll(root, bad);
    }
  });

  test(name('client-side disconnect of one namespace leaves the other connected'), async () => {
    const { manager, sockets: [root, custom] } = await multiplexed(transport, ['/', '/custom']);
    const engineId = manager.engine.id;
    try {
      const rootLeft = once(root, 'disconnect', 1000).then(() => 'disconnected', () => 'still connected');
      custom.disconnect();
      assert.equal(custom.connected, false);
      assert.deepEqual(await ack(root, 'echo', 'x'), ['x']);
      assert.equal(await rootLeft, 'still connected');
      assert.equal(root.connected, true);
      assert.equal(manager.engine.id, engineId);
      /* reconnecting the namespace works on the same connection */
      custom.connect();
      await waitConnected(custom);
      assert.deepEqual(await ack(custom, 'echo', 'back'), ['back']);
      assert.equal(manager.engine.id, engineId);
    } finally {
      closeAll(root, custom);
    }
  });

  test(name('server-side socket:disconnect() of one namespace leaves the other connected'), async () => {
    const { manager, sockets: [root, custom] } = await multiplexed(transport, ['/', '/custom']);
    const engineId = manager.engine.id;
    try {
      const gone = once(custom, 'disconnect');
      custom.emit('disconnect_me', false);
      const [reason] = await gone;
      assert.equal(reason, 'io server disconnect');
      assert.deepEqual(await ack(root, 'echo', 'alive'), ['alive']);
      assert.equal(root.connected, true);
      assert.equal(manager.engine.id, engineId);
    } finally {
      closeAll(root, custom);
    }
  });

  test(name('socket:disconnect(true) closes the whole connection'), async () => {
    const { manager, sockets: [root, custom] } = await multiplexed(transport, ['/', '/custom']);
    try {
      const rootGone = once(root, 'disconnect');
      const customGone = once(custom, 'disconnect');
      const closed = once(manager, 'close');
      custom.emit('disconnect_me', true);
      const [[r1], [r2]] = await Promise.all([rootGone, customGone]);
      /* socket.io sends DISCONNECT on every namespace, then closes */
      assert.equal(r2, 'io server disconnect');
      assert.equal(r1, 'io server disconnect');
      await closed;
      assert.equal(manager.engine.readyState, 'closed');
    } finally {
      closeAll(root, custom);
    }
  });

  test(name('a connect hook that returns false refuses with message and data'), async () => {
    const manager = new Manager(emitd.url, { reconnection: false, timeout: 5000, ...TRANSPORTS[transport] });
    const refused = manager.socket('/reject', { auth: { token: 'wrong' } });
    try {
      const err = await connectError(refused);
      assert.equal(err.message, 'not allowed');
      assert.deepEqual(err.data, { code: 42 });
      /* the same connection can still join "/" */
      const root = manager.socket('/');
      await waitConnected(root);
      assert.deepEqual(await ack(root, 'echo', 'ok'), ['ok']);
      closeAll(root);
    } finally {
      closeAll(refused);
    }
    /* the right token is let in */
    const s = await connect(emitd.url, '/reject', transport, { auth: { token: 'letmein' } });
    try {
      assert.deepEqual(await ack(s, 'hello'), ['welcome in']);
    } finally {
      closeAll(s);
    }
  });
}

test('an error raised in on_connect refuses with "Internal server error"', async () => {
  const { io } = require('./lib/clients');
  const s = io(emitd.url + '/crash', { forceNew: true, reconnection: false, transports: ['websocket'] });
  try {
    const err = await connectError(s);
    assert.equal(err.message, 'Internal server error');
  } finally {
    closeAll(s);
  }
  const ok = await connect(emitd.url, '/', 'websocket');
  assert.deepEqual(await ack(ok, 'echo', 'fine'), ['fine']);
  closeAll(ok);
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
