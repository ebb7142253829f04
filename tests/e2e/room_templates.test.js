'use strict';
/*
 * Room templates (a namespace's rooms = [...]): photo-events.md's handshake
 * identities joined at connect as client:/user:/session: rooms, from the
 * CONNECT auth, the handshake query and headers; a template whose field is
 * missing is skipped. Real clients, 2 workers. Handlers: rooms_tpl.lua.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { startEmitd, stopAndCheck, handler, delay } = require('./lib/harness');
const { io, waitConnected, ack, closeAll } = require('./lib/clients');

let emitd;
test.before(async () => {
  emitd = await startEmitd({
    config: {
      namespaces: [{
        name: '/',
        script: handler('rooms_tpl.lua'),
        rooms: ['client:{auth.clientId}', 'user:{auth.userId}', 'session:{auth.sessionId}',
          'tenant:{query.tenant}:{headers.x-region}', 'lobby'],
      }],
    },
  });
});
test.after(async () => { if (emitd) await emitd.stop(); });

async function client(opts) {
  const s = io(emitd.url, { forceNew: true, reconnection: false, ...opts });
  s.got = [];
  s.on('photo.uploaded', (v) => s.got.push(v));
  await waitConnected(s);
  return s;
}

test('the templates\' rooms are joined before on_connect; missing fields skip a template', async () => {
  const a = await client({ transports: ['websocket'], auth: { clientId: 'c1', userId: 'u1', sessionId: 's1' },
    query: { tenant: 't9' }, extraHeaders: { 'X-Region': 'eu' } });
  const b = await client({ transports: ['polling'], auth: { userId: 42 } });
  try {
    const [ra] = await ack(a, 'rooms_at_connect');
    assert.deepEqual(ra.slice(1).sort(), ['client:c1', 'lobby', 'session:s1', 'tenant:t9:eu', 'user:u1']);
    assert.equal(ra[0], a.id);
    /* an integer field is its digits; no clientId, sessionId or tenant: skipped */
    const [rb] = await ack(b, 'rooms_at_connect');
    assert.deepEqual(rb.slice(1).sort(), ['lobby', 'user:42']);
  } finally {
    closeAll(a, b);
  }
});

test('a broadcast to a user\'s room reaches every socket of that user, on both workers', async () => {
  const tabs = [];
  const workers = new Set();
  for (let i = 0; i < 6 && workers.size < 2; i++) {
    const s = await client({ transports: ['websocket'], auth: { userId: 'u7', clientId: `tab${i}` } });
    tabs.push(s);
    workers.add((await ack(s, 'whoami'))[0].worker);
  }
  const other = await client({ transports: ['websocket'], auth: { userId: 'u8' } });
  try {
    assert.equal(workers.size, 2, 'the tabs are on both workers');
    assert.deepEqual(await ack(other, 'to_room', 'user:u7', 'photo.uploaded', { photoId: 'p1' }), [true]);
    for (let i = 0; i < 100 && !tabs.every((s) => s.got.length === 1); i++) await delay(20);
    tabs.forEach((s, i) => assert.deepEqual(s.got, [{ photoId: 'p1' }], `tab ${i}`));
    await ack(other, 'to_room', 'client:tab0', 'photo.uploaded', { photoId: 'p2' });
    for (let i = 0; i < 100 && tabs[0].got.length < 2; i++) await delay(20);
    await delay(100);
    assert.deepEqual(tabs[0].got, [{ photoId: 'p1' }, { photoId: 'p2' }]);
    tabs.slice(1).forEach((s, i) => assert.equal(s.got.length, 1, `tab ${i + 1} got the other tab's event`));
    assert.deepEqual(other.got, []);
  } finally {
    closeAll(tabs, other);
  }
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
