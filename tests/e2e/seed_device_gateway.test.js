'use strict';
/*
 * device-gateway.md against deploy/examples/device-gateway/ as shipped (2
 * workers): path /ws, a namespace per device (/device/:deviceId), the API
 * key in the query or a header with the seed's error texts, and the
 * backend publishing qr, ready, authenticated, message, state and
 * disconnected into one device's namespace. The real socket.io-client
 * (both transports) and python-socketio; the seed's JavaScript and Python
 * examples run as they stand.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { io, waitConnected, connectError, closeAll, waitUntil } = require('./lib/clients');
const { delay } = require('./lib/harness');
const { startExample, runSeedClient, pyClient } = require('./lib/examples');

const KEY = 'change-me-device-api-key';
const DEV = '12345678-1234-1234-1234-123456789abc';
const OTHER = '87654321-4321-4321-4321-cba987654321';
const EVENTS = ['qr', 'ready', 'authenticated', 'message', 'state', 'disconnected'];

let emitd;
test.before(async () => { emitd = await startExample('device-gateway'); });
test.after(async () => { if (emitd) await emitd.stop(); });

function device(id, opts = {}) {
  const s = io(`${emitd.url}/device/${id}`, { path: '/ws', forceNew: true, reconnection: false, ...opts });
  s.got = [];
  for (const e of EVENTS) s.on(e, (data) => s.got.push([e, data]));
  return s;
}

const now = Date.now();
const payload = (id) => ({
  qr: { deviceId: id, qr: '2@AbCdEf0123456789==,xyz', timestamp: now },
  ready: { deviceId: id, phoneNumber: '+15551234567', timestamp: now + 1 },
  authenticated: { deviceId: id, phoneNumber: '+15551234567', clientName: 'Office phone', timestamp: now + 2 },
  message: { deviceId: id, message: { id: 'ABCD', from: '15557654321@c.us', body: 'hello', hasMedia: false }, timestamp: now + 3 },
  state: { deviceId: id, status: 'CONNECTED', timestamp: now + 4 },
  disconnected: { deviceId: id, reason: 'LOGOUT', timestamp: now + 5 },
});

async function publish(namespace, event, data) {
  const r = await emitd.api('POST', '/v1/emit', { namespace, event, args: [data] });
  assert.equal(r.status, 200, r.text);
}

for (const transports of [['websocket'], ['polling']]) {
  test(`${transports[0]}: every device event reaches that device's clients only, with its fields`, async () => {
    const a = device(DEV, { transports, query: { apiKey: KEY } });
    const b = device(DEV, { transports, extraHeaders: { apiKey: KEY } });   /* the key as a header */
    const other = device(OTHER, { transports, query: { apiKey: KEY } });
    try {
      await Promise.all([a, b, other].map((s) => waitConnected(s)));
      const want = payload(DEV);
      for (const e of EVENTS) await publish(`/device/${DEV}`, e, want[e]);
      await publish(`/device/${OTHER}`, 'state', payload(OTHER).state);
      await waitUntil('every event', () => a.got.length === 6 && b.got.length === 6 && other.got.length === 1);
      for (const s of [a, b]) assert.deepEqual(s.got, EVENTS.map((e) => [e, want[e]]));
      assert.deepEqual(other.got, [['state', payload(OTHER).state]]);
      /* the pattern reaches every device */
      await publish('/device/:deviceId', 'state', { deviceId: '*', status: 'MAINTENANCE', timestamp: now });
      await waitUntil('the broadcast to every device', () => other.got.length === 2 && a.got.length === 7);
      assert.equal(other.got[1][1].status, 'MAINTENANCE');
    } finally {
      closeAll(a, b, other);
    }
  });
}

test('the seed\'s error texts: no key, a wrong key; an unknown namespace fails', async () => {
  const none = device(DEV, { transports: ['websocket'] });
  const wrong = device(DEV, { transports: ['polling'], query: { apiKey: 'not-the-key' } });
  const wrongHeader = device(DEV, { transports: ['websocket'], extraHeaders: { apiKey: 'nope' } });
  const bare = io(`${emitd.url}/device`, { path: '/ws', forceNew: true, reconnection: false, query: { apiKey: KEY } });
  const foo = io(`${emitd.url}/devices/${DEV}`, { path: '/ws', forceNew: true, reconnection: false, query: { apiKey: KEY } });
  const errs = [none, wrong, wrongHeader, bare, foo].map((s) => connectError(s));
  try {
    const [e1, e2, e3, e4, e5] = await Promise.all(errs);
    assert.equal(e1.message, 'API key is required');
    assert.equal(e2.message, 'Invalid API key');
    assert.equal(e3.message, 'Invalid API key');
    assert.equal(e4.message, 'Invalid namespace');
    assert.equal(e5.message, 'Invalid namespace');
  } finally {
    closeAll(none, wrong, wrongHeader, bare, foo);
  }
});

test('python-socketio on a device namespace: the key as a header and in the query, over both transports', async () => {
  const clients = [
    pyClient({ url: `${emitd.url}`, socketio_path: '/ws', namespaces: [`/device/${DEV}`], headers: { apiKey: KEY },
      transports: ['websocket'] }),
    pyClient({ url: `${emitd.url}?apiKey=${KEY}`, socketio_path: '/ws', namespaces: [`/device/${DEV}`],
      transports: ['polling'] }),
    pyClient({ url: `${emitd.url}`, socketio_path: '/ws', namespaces: [`/device/${DEV}`], headers: { apiKey: 'bad' } }),
  ];
  try {
    await clients[0].waitFor('connect', (x) => x.connect);
    await clients[1].waitFor('connect', (x) => x.connect);
    const refused = await clients[2].waitFor('connect_error', (x) => x.connect_error || x.failed);
    assert.match(JSON.stringify(refused), /Invalid API key/);
    const want = payload(DEV);
    for (const e of EVENTS) await publish(`/device/${DEV}`, e, want[e]);
    /* python-socketio runs each handler in a thread of its own, so the order
     * its handlers record in is not the order of arrival (socket.io-client's
     * suites above check the order): each event once, with its payload */
    const key = (x) => JSON.stringify(x);
    for (const c of clients.slice(0, 2)) {
      await waitUntil('the six events', () => c.seen.filter((x) => x.event).length >= 6);
      await delay(100);
      assert.deepEqual(c.seen.filter((x) => x.event).map((x) => key([x.event, x.ns, x.args])).sort(),
        EVENTS.map((e) => key([e, `/device/${DEV}`, [want[e]]])).sort());
    }
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
  }
});

test('the seed\'s JavaScript example, as it stands', async () => {
  const host = emitd.url.replace('http://', '');
  const fill = [['localhost:3000', host], ['your-device-id-here', DEV], ['your-api-key-here', KEY]];
  const seed = runSeedClient('device-gateway.client.mjs', fill);
  const refused = runSeedClient('device-gateway.client.mjs',
    [['localhost:3000', host], ['your-device-id-here', DEV], ['your-api-key-here', 'a-wrong-key']]);
  try {
    await seed.waitLine(/^Connected to device namespace: \S{20}$/m);
    const want = payload(DEV);
    for (const e of EVENTS) await publish(`/device/${DEV}`, e, want[e]);
    await seed.waitLine(/QR Code received: \{[^}]*qr: '2@AbCdEf0123456789==,xyz'/);
    await seed.waitLine(/Device ready: \{[^}]*phoneNumber: '\+15551234567'/);
    await seed.waitLine(/Device authenticated: \{[^}]*clientName: 'Office phone'/);
    await seed.waitLine(/Message received: \{[^]*body: 'hello'/);
    await seed.waitLine(/Device state changed: \{[^}]*status: 'CONNECTED'/);
    await seed.waitLine(/Device disconnected: \{[^}]*reason: 'LOGOUT'/);
    await refused.waitLine(/^Connection failed: Invalid API key$/m);
  } finally {
    await seed.stop();
    await refused.stop();
  }
});

test('the seed\'s Python example, as it stands: it joins "/" on /ws, where the backend publishes too', async () => {
  const host = emitd.url.replace('http://', '');
  const seed = runSeedClient('device-gateway.client.py',
    [['localhost:3000', host], ['your-device-id-here', DEV], ['your-api-key-here', KEY]], { python: true });
  try {
    await seed.waitLine(/^Connected to device namespace$/m, 10000);
    const want = payload(DEV);
    for (const e of EVENTS) await publish('/', e, want[e]);
    /* python-socketio runs each handler in a thread of its own, so the two
     * halves of one print() may interleave with another's: each label and
     * each payload is looked for on its own */
    for (const label of ['QR Code received:', 'Device ready:', 'Device authenticated:', 'Message received:',
      'Device state changed:', 'Device disconnected:']) {
      await seed.waitLine(new RegExp(label));
    }
    await seed.waitLine(/\{'deviceId': '12345678-1234-1234-1234-123456789abc', 'qr': '2@AbCdEf0123456789==,xyz', 'timestamp': \d+\}/);
    await seed.waitLine(/\{'deviceId': '[^']+', 'phoneNumber': '\+15551234567', 'timestamp': \d+\}/);
    await seed.waitLine(/\{'deviceId': '[^']+', 'phoneNumber': '\+15551234567', 'clientName': 'Office phone', 'timestamp': \d+\}/);
    await seed.waitLine(/\{'deviceId': '[^']+', 'message': \{'id': 'ABCD', 'from': '15557654321@c.us', 'body': 'hello', 'hasMedia': False\}, 'timestamp': \d+\}/);
    await seed.waitLine(/\{'deviceId': '[^']+', 'status': 'CONNECTED', 'timestamp': \d+\}/);
    await seed.waitLine(/\{'deviceId': '[^']+', 'reason': 'LOGOUT', 'timestamp': \d+\}/);
  } finally {
    await seed.stop();
  }
});

test('emitd exits cleanly on SIGTERM', async () => {
  const { stopAndCheck } = require('./lib/harness');
  assert.deepEqual(await stopAndCheck(emitd), []);
});
