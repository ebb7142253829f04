'use strict';
/*
 * api_key on a namespace (device-gateway.md): a client joins only with one
 * of the configured keys, from the handshake query (?apiKey=), a request
 * header (apiKey:) or the CONNECT auth object; otherwise its connect_error
 * says "API key is required" or "Invalid API key". Real clients, 2 workers,
 * both transports, a parameterised namespace.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { startEmitd, stopAndCheck, handler } = require('./lib/harness');
const { io, connect, connectError, waitConnected, ack, closeAll, httpRequest } = require('./lib/clients');

const KEYS = ['k-one', 'k-two-longer'];

let emitd;
test.before(async () => {
  emitd = await startEmitd({
    config: {
      namespaces: [
        { name: '/', script: handler('main.lua') },
        { name: '/device/:deviceId', api_key: { keys: KEYS } },
        { name: '/custom', api_key: { keys: ['sesame'], query: 'token', header: '', auth: '',
          missing_message: 'Who goes there?', invalid_message: 'Wrong word' } },
      ],
    },
  });
});
test.after(async () => { if (emitd) await emitd.stop(); });

function device(id, opts) {
  return io(`${emitd.url}/device/${id}`, { forceNew: true, reconnection: false, ...opts });
}

for (const transport of ['websocket', 'polling']) {
  test(`${transport}: a key in the query, a header or auth admits; none or a wrong one is refused`, async () => {
    const transports = [transport];
    const admitted = [
      device('d1', { transports, query: { apiKey: KEYS[0] } }),
      device('d2', { transports, extraHeaders: { apiKey: KEYS[1] } }),
      device('d3', { transports, auth: { apiKey: KEYS[1] } }),
    ];
    try {
      await Promise.all(admitted.map((s) => waitConnected(s)));
      const missing = device('d4', { transports });
      assert.equal((await connectError(missing)).message, 'API key is required');
      closeAll(missing);
      for (const bad of ['k-on', 'k-one ', 'K-ONE', 'k-one'.repeat(300), 'x']) {
        const wrong = device('d5', { transports, query: { apiKey: bad } });
        assert.equal((await connectError(wrong)).message, 'Invalid API key', `key ${bad.slice(0, 20)}`);
        closeAll(wrong);
      }
      /* a key of the wrong namespace's list, and an empty one */
      const other = device('d6', { transports, auth: { apiKey: 'sesame' } });
      assert.equal((await connectError(other)).message, 'Invalid API key');
      const empty = device('d7', { transports, query: { apiKey: '' } });
      assert.equal((await connectError(empty)).message, 'API key is required');
      closeAll(other, empty);
    } finally {
      closeAll(admitted);
    }
  });
}

test('the configured places and messages are the only ones looked at', async () => {
  const ok = io(`${emitd.url}/custom`, { forceNew: true, reconnection: false, query: { token: 'sesame' } });
  const inAuth = io(`${emitd.url}/custom`, { forceNew: true, reconnection: false, auth: { apiKey: 'sesame' } });
  const wrong = io(`${emitd.url}/custom`, { forceNew: true, reconnection: false, query: { token: 'open' } });
  const refusals = [connectError(inAuth), connectError(wrong)];
  try {
    await waitConnected(ok);
    const [e1, e2] = await Promise.all(refusals);
    assert.equal(e1.message, 'Who goes there?');
    assert.equal(e2.message, 'Wrong word');
  } finally {
    closeAll(ok, inAuth, wrong);
  }
});

test('a refused namespace leaves the connection\'s other namespaces alone', async () => {
  const root = await connect(emitd.url, '/', 'websocket');
  try {
    const refused = root.io.socket('/device/x');
    refused.connect();
    assert.equal((await connectError(refused)).message, 'API key is required');
    assert.deepEqual(await ack(root, 'echo', 'still here'), ['still here']);
    const r = await httpRequest(emitd.port, 'GET', '/socket.io/?EIO=4&transport=polling');
    assert.equal(r.status, 200);
  } finally {
    closeAll(root);
  }
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
