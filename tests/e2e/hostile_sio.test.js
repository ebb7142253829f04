'use strict';
/*
 * Hostile Socket.IO clients and misbehaving scripts against the real daemon
 * with 2 workers, while a bystander (socket.io-client over websocket) keeps
 * doing acks and must keep its service: JSON nested 10,000 deep, 10^6
 * attachments announced, placeholders out of range, acks never asked for
 * and ack ids over 2^53, 10,000 namespace CONNECTs on one connection,
 * another client's sid over polling and websocket, floods of events (read
 * and unread), and handlers that loop for ever, allocate a gigabyte or
 * recurse without end. Each hostile client is closed (or, where Node's
 * server ignores the packet, ignored) and no other client loses anything.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { startEmitd, stopAndCheck, handler, delay, VALGRIND } = require('./lib/harness');
const {
  connect, ack, closeAll, openWs, httpRequest, parseOpen, WAIT_MS,
} = require('./lib/clients');
const {
  Bystander, wsFrame, joinedWebSocket, serverFrames, violations,
} = require('./lib/hostile');

const SCRIPT_TIME = 500;
const SCRIPT_MEMORY = 64 * 1024 * 1024;
const NAMESPACES = 64;
const POLL = '/socket.io/?EIO=4&transport=polling';

let emitd;
let bystander;
test.before(async () => {
  emitd = await startEmitd({
    config: {
      namespaces: [{ name: '/', script: handler('hostile.lua') }, { name: '/dyn/:id', script: handler('hostile.lua') }],
      max_payload: 1000000,
      limits: {
        script_time: SCRIPT_TIME, script_memory: SCRIPT_MEMORY, namespaces: NAMESPACES,
        output_hard: 1 << 20, output_soft: 1 << 19, output_soft_time: 1000,
      },
    },
  });
  bystander = await new Bystander(emitd.url).start();
});
test.after(async () => {
  if (bystander) await bystander.stop();
  if (emitd) await emitd.stop();
});

/* A polling session that has joined "/". */
async function pollingSocket() {
  const open = await httpRequest(emitd.port, 'GET', POLL);
  const { sid } = parseOpen(open.body.split('\x1e')[0]);
  const url = `${POLL}&sid=${sid}`;
  await httpRequest(emitd.port, 'POST', url, { body: '40' });
  const joined = await httpRequest(emitd.port, 'GET', url);
  assert.match(joined.body, /^40\{"sid"/);
  return {
    sid,
    post: (body) => httpRequest(emitd.port, 'POST', url, { body }),
    get: () => httpRequest(emitd.port, 'GET', url),
    /* closed: a close packet or a 400 for the sid within a few polls */
    async closed() {
      for (let i = 0; i < 5; i++) {
        const r = await httpRequest(emitd.port, 'GET', url);
        if (r.status === 400 || r.body.split('\x1e').includes('1')) return true;
      }
      return false;
    },
  };
}

/* Send text packets on a fresh joined websocket: closed by the server? */
async function wsClosedBy(...packets) {
  const c = await joinedWebSocket(emitd.port);
  for (const p of packets) c.send(typeof p === 'string' ? wsFrame(1, p) : p);
  await c.waitClosed(WAIT_MS, 'the server to close the connection');
  return serverFrames(c.received());
}

/* The packet is refused over both transports: each connection is closed. */
async function refusedOverBoth(packet, what) {
  await wsClosedBy(packet);
  const p = await pollingSocket();
  await p.post(packet);
  assert.ok(await p.closed(), `polling: ${what} did not close the session`);
  await bystander.check(what);
}

test('JSON nested 10,000 deep closes the client over both transports', async () => {
  const deep = '['.repeat(10000) + ']'.repeat(10000);
  await refusedOverBoth(`42["echo",${deep}]`, 'deep arrays');
  const objs = '{"a":'.repeat(10000) + '1' + '}'.repeat(10000);
  await refusedOverBoth(`42["echo",${objs}]`, 'deep objects');
});

test('10^6 attachments announced close the client before any is awaited', async () => {
  const before = await violations(bystander.socket);
  await refusedOverBoth('451000000-["echo",{"_placeholder":true,"num":0}]', '10^6 attachments');
  await refusedOverBoth('4518446744073709551616-["echo",{"_placeholder":true,"num":0}]', '2^64 attachments');
  assert.ok(await violations(bystander.socket) > before, 'not counted in limitViolations');
});

test('placeholders out of range, negative, fractional or not numbers close the client', async () => {
  for (const num of ['1', '-1', '0.5', '1e300', '"0"', 'null']) {
    const frames = await wsClosedBy(`451-["echo",{"_placeholder":true,"num":${num}}]`, wsFrame(2, Buffer.from([1, 2])));
    assert.ok(!frames.some((f) => f.opcode === 1 && f.payload.toString().startsWith('43')), `num ${num} was answered`);
  }
  await bystander.check('placeholders');
});

test('an ack never asked for is ignored, as Node does: the client stays and is served', async () => {
  const c = await joinedWebSocket(emitd.port);
  c.send(wsFrame(1, '4317["not asked"]'));
  c.send(wsFrame(1, '430[]'));
  c.send(wsFrame(1, '439007199254740991["max id"]'));
  c.send(wsFrame(1, '425["echo","still here"]'));
  await c.waitFor(/435\["still here"\]/);
  assert.equal(c.ended, false);
  c.destroy();
  await bystander.check('acks not asked for');
});

test('ack ids over 2^53 - 1 close the client; 2^53 - 1 itself is answered', async () => {
  const c = await joinedWebSocket(emitd.port);
  c.send(wsFrame(1, '429007199254740991["echo","top"]'));
  await c.waitFor(/439007199254740991\["top"\]/);
  c.destroy();
  await refusedOverBoth('429007199254740992["echo",1]', 'ack id 2^53');
  await refusedOverBoth(`42${'9'.repeat(400)}["echo",1]`, 'ack id of 400 digits');
  await bystander.check('ack ids');
});

test('10,000 namespace CONNECTs on one connection: closed past limits.namespaces, logged', async () => {
  const c = await joinedWebSocket(emitd.port);
  const from = emitd.logSize();
  const frames = [];
  for (let i = 0; i < 10000; i++) frames.push(wsFrame(1, `40/dyn/${i},`));
  c.send(Buffer.concat(frames));
  const got = await c.waitClosed(WAIT_MS, 'the server to close the connection');
  const joined = serverFrames(got).filter((f) => f.opcode === 1 && /^40\/dyn\/\d+,\{"sid"/.test(f.payload.toString()));
  assert.ok(joined.length <= NAMESPACES, `${joined.length} namespaces joined`);
  await emitd.waitViolation('namespaces', { from });
  /* and as many CONNECTs to a namespace that does not exist: each refused, bounded */
  const d = await joinedWebSocket(emitd.port);
  const nope = [];
  for (let i = 0; i < 10000; i++) nope.push(wsFrame(1, `40/nope${i},`));
  d.send(Buffer.concat(nope));
  /* each answered with CONNECT_ERROR, as Node's server does */
  let refused = [];
  for (let i = 0; i < 500 && refused.length < 10000 && !d.ended; i++) {
    await delay(10);
    refused = serverFrames(d.received()).filter((f) => f.opcode === 1 && f.payload.toString().startsWith('44/nope'));
  }
  assert.equal(refused.length, 10000);
  assert.equal(refused[9999].payload.toString(), '44/nope9999,{"message":"Invalid namespace"}');
  d.destroy();
  await bystander.check('CONNECT flood');
});

test('past ten violations a second a worker sums the rest up in one line, even when no other follows', async () => {
  const N = 60;
  const clients = await Promise.all(Array.from({ length: N }, () => joinedWebSocket(emitd.port)));
  const from = emitd.logSize();
  /* all at once, so that each worker closes more than ten in one second */
  clients.forEach((c) => c.send(wsFrame(1, '4X')));
  await Promise.all(clients.map((c) => c.waitClosed(WAIT_MS, 'the server to close the connection')));
  /* every one of them is in the log, one by one or in a sum */
  let one = 0;
  let summed = 0;
  for (let i = 0; i < 500 && one + summed < N; i++) {
    await delay(20);
    const text = emitd.logFrom(from);
    one = (text.match(/closing client 127\.0\.0\.1 session \S+: .* \(limit "protocol"\)/g) || []).length;
    summed = [...text.matchAll(/(\d+) more clients closed for breaking limits \(protocol\) in the last second/g)]
      .reduce((n, m) => n + Number(m[1]), 0);
  }
  assert.ok(summed > 0, `${one} lines and no sum for ${N} clients closed at once`);
  /* (a sum may also count a client of an earlier test, closed in the same
   * second before this one began) */
  assert.ok(one + summed >= N, `${one} lines and ${summed} summed up`);
  await bystander.check('violations summed up');
});

/* A websocket that the server closes without a message. */
async function closedAtOnce(url) {
  const w = await openWs(url);
  const first = await w.queue.next(WAIT_MS, 'the server to close the websocket');
  assert.ok(first.closed, `the hijacking websocket got ${JSON.stringify(first)}`);
}

test('another client\'s sid over polling and over websocket is refused; the victim goes on', async () => {
  const victim = await connect(emitd.url, '/', 'websocket');
  let lost = 0;
  victim.on('disconnect', () => { lost++; });
  const sid = victim.io.engine.id;
  const get = await httpRequest(emitd.port, 'GET', `${POLL}&sid=${sid}`);
  assert.equal(get.status, 400, `GET ${get.status} ${get.body}`);
  const post = await httpRequest(emitd.port, 'POST', `${POLL}&sid=${sid}`, { body: '42["echo","hijack"]' });
  assert.equal(post.status, 400, `POST ${post.status} ${post.body}`);
  /* a websocket with the sid of an upgraded session is closed at once, as
   * Node's server does, having received nothing */
  await closedAtOnce(`ws://127.0.0.1:${emitd.port}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);
  const [back] = await ack(victim, 'echo', 'mine');
  assert.equal(back, 'mine');
  assert.equal(lost, 0, 'the victim was disconnected');
  closeAll(victim);
  await bystander.check('sid hijack');
});

test('a flood of 20,000 events with acks from a reading client is answered in full', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  const N = 20000;
  let answered = 0;
  let wrong = 0;
  const done = new Promise((resolve) => {
    for (let i = 0; i < N; i++) {
      s.emit('echo', i, (back) => {
        if (back !== i) wrong++;
        if (++answered === N) resolve();
      });
    }
  });
  await Promise.race([done, delay(30000)]);
  assert.equal(answered, N);
  assert.equal(wrong, 0);
  closeAll(s);
  await bystander.check('read flood');
});

test('a flood of 50,000 events from a client that reads none of its acks closes it alone', async () => {
  const c = await joinedWebSocket(emitd.port);
  const from = emitd.logSize();
  c.sock.pause();
  const blob = 'y'.repeat(200);
  for (let k = 0; k < 10; k++) {
    const frames = [];
    for (let i = 0; i < 5000; i++) frames.push(wsFrame(1, `42${k * 5000 + i}["echo","${blob}"]`));
    c.send(Buffer.concat(frames));
    await delay(20);
  }
  const sid = JSON.parse(serverFrames(c.received())[0].payload.toString().slice(1)).sid;
  await emitd.waitViolation('output', { sid, from, timeoutMs: 15000 });
  c.destroy();
  await bystander.check('unread flood');
});

test('a handler in an endless loop is stopped at script_time; its client and worker go on', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  const [w] = await ack(s, 'worker');
  s.emit('spin', () => { throw new Error('spin answered'); });
  await emitd.waitLog(/handler ran longer than 500 ms/, SCRIPT_TIME + WAIT_MS);
  const [n, gc] = await ack(s, 'after');
  assert.deepEqual([n, gc], [1000, true]);
  const [w2] = await ack(s, 'worker');
  assert.equal(w2, w, 'the worker changed');
  closeAll(s);
  await bystander.check('endless loop');
});

test('a handler allocating a gigabyte fails with "not enough memory" at script_memory; the worker goes on', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  s.emit('hog', () => { throw new Error('hog answered'); });
  await emitd.waitLog(/not enough memory/, WAIT_MS);
  const [n] = await ack(s, 'after');
  assert.equal(n, 1000);
  /* the memory came back: a 100 kB argument is still served */
  const [again] = await ack(s, 'echo', 'x'.repeat(100000));
  assert.equal(again.length, 100000);
  closeAll(s);
  await bystander.check('allocation');
});

test('a handler recursing without end fails with "stack overflow"; the worker goes on', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  s.emit('recurse', () => { throw new Error('recurse answered'); });
  /* Under Valgrind the recursion is slow enough for script_time to stop it
   * first: either way the handler is stopped with an error. */
  await emitd.waitLog(VALGRIND ? /"recurse": .*(stack overflow|handler ran longer than)/ : /stack overflow/, WAIT_MS);
  const [n] = await ack(s, 'after');
  assert.equal(n, 1000);
  closeAll(s);
  await bystander.check('recursion');
});

test('emitd stops cleanly after the hostile Socket.IO clients and scripts', async () => {
  await bystander.check('at the end');
  await bystander.stop();
  bystander = null;
  const problems = await stopAndCheck(emitd);
  emitd = null;
  assert.deepEqual(problems, []);
});
