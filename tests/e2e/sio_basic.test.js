'use strict';
/*
 * The Socket.IO basics with the real socket.io-client, over websocket only,
 * polling only and polling upgraded to websocket, on "/" and on "/custom":
 * connect (auth, query, ids), events and acks both ways, binary
 * attachments, and JSON fidelity.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { startEmitd, stopAndCheck } = require('./lib/harness');
const {
  connect, ack, once, closeAll, normalize, TRANSPORTS, withTimeout,
} = require('./lib/clients');

let emitd;
test.before(async () => { emitd = await startEmitd(); });
test.after(async () => { if (emitd) await emitd.stop(); });

const NAMESPACES = ['/', '/custom'];

/* Strings that break naive framing or encoding. */
const CONTROL = Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join('') + '\x7f';
const TRICKY_STRINGS = [
  '\x1e', 'a\x1eb\x1e', '\u0000', 'x\u0000y', '\u2028\u2029', '😀𝄞', CONTROL,
  'quote " backslash \\ slash / tab \t', 'é ü ß ж 中文 🏳️‍🌈', '', '4', '42["x"]',
  '{"_placeholder":true,"num":0}', '😀'.repeat(3000),
];

for (const transport of Object.keys(TRANSPORTS)) {
  for (const nsp of NAMESPACES) {
    const name = (s) => `${transport} ${nsp}: ${s}`;

    test(name('connects with auth and query visible to the script; socket.id is not the Engine.IO sid'), async () => {
      const s = await connect(emitd.url, nsp, transport, {
        auth: { token: 'abc', n: 1, nested: { ok: true } },
        query: { room: 'x y', k: 'v&w' },
      });
      try {
        assert.equal(s.connected, true);
        const [who] = await ack(s, 'whoami');
        assert.equal(who.id, s.id, 'the script sees the id the client got');
        assert.equal(who.nsp, nsp);
        assert.equal(who.nsp_name, nsp);
        assert.deepEqual(who.auth, { token: 'abc', n: 1, nested: { ok: true } });
        assert.equal(who.query.room, 'x y');
        assert.equal(who.query.k, 'v&w');
        assert.equal(who.query.EIO, '4');
        assert.equal(who.address, '127.0.0.1');
        assert.ok([1, 2].includes(who.worker), `worker ${who.worker}`);
        assert.ok(who.rooms.includes(s.id), 'a socket is in the room of its own id');
        const sid = s.io.engine.id;
        assert.match(sid, /^[A-Za-z0-9_-]{20}$/, 'Engine.IO sid: 20 base64url characters');
        assert.match(s.id, /^[A-Za-z0-9_-]{20}$/, 'socket id: 20 base64url characters');
        assert.notEqual(s.id, sid, 'the Socket.IO id differs from the Engine.IO sid');
        assert.equal(s.io.engine.transport.name, transport === 'polling' ? 'polling' : 'websocket');
        /* the on_connect emit arrives after the connection */
        for (let i = 0; i < 100 && !s.seen.some((e) => e[0] === 'welcome'); i++) await ack(s, 'echo');
        const welcome = s.seen.find((e) => e[0] === 'welcome');
        assert.ok(welcome, 'the "welcome" emitted in on_connect arrived');
        assert.deepEqual(welcome[1], { id: s.id, nsp, worker: who.worker });
      } finally {
        closeAll(s);
      }
    });

    test(name('connects without auth: the script sees an empty auth object'), async () => {
      const s = await connect(emitd.url, nsp, transport);
      try {
        const [who] = await ack(s, 'whoami');
        assert.deepEqual(who.auth, {});
      } finally {
        closeAll(s);
      }
    });

    test(name('events both ways'), async () => {
      const s = await connect(emitd.url, nsp, transport);
      try {
        const got = once(s, 'echo');
        s.emit('echo', 'hello', 1, { a: [1, 2, { b: 'c' }] }, [true, false]);
        assert.deepEqual(await got, ['hello', 1, { a: [1, 2, { b: 'c' }] }, [true, false]]);
        /* no arguments at all */
        const got2 = once(s, 'echo');
        s.emit('echo');
        assert.deepEqual(await got2, []);
        /* many events in a row keep their order */
        const seen = [];
        const all = withTimeout(new Promise((resolve) => {
          s.on('echo', (i) => { seen.push(i); if (seen.length === 50) resolve(); });
        }), 5000, '50 echoes');
        for (let i = 0; i < 50; i++) s.emit('echo', i);
        await all;
        assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => i));
      } finally {
        closeAll(s);
      }
    });

    test(name('acks both ways'), async () => {
      const s = await connect(emitd.url, nsp, transport);
      try {
        /* client -> server, answered by the script's ack(...) */
        assert.deepEqual(await ack(s, 'echo', 'x', 2, { y: [3] }), ['x', 2, { y: [3] }]);
        assert.deepEqual(await ack(s, 'echo'), []);
        /* several acks in flight at once are matched to their callbacks */
        const many = await Promise.all(Array.from({ length: 20 }, (_, i) => ack(s, 'echo', i)));
        assert.deepEqual(many, Array.from({ length: 20 }, (_, i) => [i]));
        /* server -> client: the script's callback gets the client's reply and emits it back */
        s.on('question', (a, b, cb) => cb(`reply:${a}`, { b }));
        const answer = once(s, 'answer');
        assert.deepEqual(await ack(s, 'ask', 'question', 'q1', 7), [true]);
        assert.deepEqual(await answer, ['reply:q1', { b: 7 }]);
      } finally {
        closeAll(s);
      }
    });

    test(name('binary attachments both ways'), async () => {
      const s = await connect(emitd.url, nsp, transport);
      try {
        const payload = [
          Buffer.from([0, 1, 2, 255]),
          new Uint8Array([9, 8, 7]),
          Buffer.alloc(0),
          { nested: [Buffer.from('abc'), { deep: Buffer.from([0xff]) }], list: [1, null, Buffer.from('x')] },
          'text between',
          Buffer.alloc(3000, 0xab),
        ];
        /* the script sees buffers with the right bytes */
        const [desc] = await ack(s, 'describe', ...payload);
        assert.deepEqual(desc, [
          'buf:000102ff', 'buf:090807', 'buf:',
          { nested: ['buf:616263', { deep: 'buf:ff' }], list: ['int:1', 'null', 'buf:78'] },
          'str:12', `buf:${'ab'.repeat(3000)}`,
        ]);
        /* echoed through an ack */
        const back = await ack(s, 'echo', ...payload);
        assert.deepEqual(normalize(back), normalize(payload));
        assert.ok(Buffer.isBuffer(back[0]), 'a buffer comes back as a Buffer');
        /* echoed as an event */
        const ev = once(s, 'echo');
        s.emit('echo', ...payload);
        assert.deepEqual(normalize(await ev), normalize(payload));
        /* buffers made by the script */
        const expected = normalize([
          Buffer.from([0, 1, 2, 255]), Buffer.alloc(0),
          { list: [1, Buffer.from('abc'), null], deep: { b: Buffer.from([254]) } },
        ]);
        assert.deepEqual(normalize(await ack(s, 'make_binary')), expected);
        const bin = once(s, 'binary');
        s.emit('make_binary');
        assert.deepEqual(normalize(await bin), expected);
      } finally {
        closeAll(s);
      }
    });

    test(name('binary in acks both ways'), async () => {
      const s = await connect(emitd.url, nsp, transport);
      try {
        /* server -> client with binary data; the client's ack reply is binary too */
        let asked;
        s.on('question', (a, b, cb) => { asked = [a, b]; cb(Buffer.from([1, 2, 3]), { b: Buffer.alloc(0), c: [Buffer.from('z')] }); });
        const answer = once(s, 'answer');
        await ack(s, 'ask', 'question', Buffer.from('q'), { x: Buffer.from([0]) });
        assert.deepEqual(normalize(asked), normalize([Buffer.from('q'), { x: Buffer.from([0]) }]));
        assert.deepEqual(normalize(await answer), normalize([Buffer.from([1, 2, 3]), { b: Buffer.alloc(0), c: [Buffer.from('z')] }]));
        /* client -> server ack with a binary reply */
        const reply = await ack(s, 'echo', { only: Buffer.from([7, 7]) });
        assert.deepEqual(normalize(reply), [{ only: { hex: '0707' } }]);
      } finally {
        closeAll(s);
      }
    });

    test(name('JSON fidelity: strings, big integers, floats, empty containers, null'), async () => {
      const s = await connect(emitd.url, nsp, transport);
      try {
        const back = await ack(s, 'echo', ...TRICKY_STRINGS);
        assert.equal(back.length, TRICKY_STRINGS.length);
        for (let i = 0; i < TRICKY_STRINGS.length; i++) {
          assert.equal(Buffer.from(back[i]).toString('hex'), Buffer.from(TRICKY_STRINGS[i]).toString('hex'),
            `string #${i} ${JSON.stringify(TRICKY_STRINGS[i]).slice(0, 40)} round-trips byte-exact`);
        }
        const [sizes] = await ack(s, 'describe', ...TRICKY_STRINGS);
        assert.deepEqual(sizes, TRICKY_STRINGS.map((x) => `str:${Buffer.byteLength(x)}`),
          'the script sees the UTF-8 byte length of each string');

        const values = [
          2 ** 53 - 1, -(2 ** 53 - 1), 0, -1, 1.5, -2.25e-7, 1e300, 0.1,
          { a: { b: { c: [1, [2, [3, {}]]] } } }, [], {}, [[]], [{}], { e: [], o: {} },
          [null, 1, null], { k: null }, true, false, null,
        ];
        const back2 = await ack(s, 'echo', ...values);
        assert.deepEqual(back2, values);
        const [desc] = await ack(s, 'describe', 2 ** 53 - 1, -(2 ** 53 - 1), 1.5, null, true);
        assert.deepEqual(desc, ['int:9007199254740991', 'int:-9007199254740991', 'float:1.5', 'null', 'bool:true']);
      } finally {
        closeAll(s);
      }
    });
  }
}

test('two handlers of one event both run, in order; off() removes them', async () => {
  const s = await connect(emitd.url, '/', 'websocket');
  try {
    assert.deepEqual(await ack(s, 'twice'), [['first', 'second']]);
    assert.deepEqual(await ack(s, 'twice'), [['first', 'second', 'first', 'second']]);
    await ack(s, 'twice_off');
    /* No handler now: no answer within a round trip of another event. */
    let answered = false;
    s.emit('twice', () => { answered = true; });
    await ack(s, 'echo', 'barrier');
    assert.equal(answered, false);
  } finally {
    closeAll(s);
  }
});

for (const nsp of NAMESPACES) {
  test(`upgrade ${nsp}: events sent while the transport upgrades all arrive in order`, async () => {
    const { io } = require('./lib/clients');
    const s = io(nsp === '/' ? emitd.url : emitd.url + nsp, { forceNew: true, reconnection: false });
    try {
      const replies = [];
      const done = withTimeout(new Promise((resolve) => {
        s.on('connect', () => {
          for (let i = 0; i < 40; i++) s.emit('echo', i, (r) => { replies.push(r); if (replies.length === 40) resolve(); });
        });
      }), 8000, '40 acks across the upgrade');
      const upgraded = once(s.io.engine, 'upgrade', 8000);
      await done;
      await upgraded;
      assert.deepEqual(replies, Array.from({ length: 40 }, (_, i) => i));
      assert.equal(s.io.engine.transport.name, 'websocket');
      assert.deepEqual(await ack(s, 'echo', 'after'), ['after']);
    } finally {
      closeAll(s);
    }
  });
}

test('emitd exits cleanly on SIGTERM', async () => {
  const problems = await stopAndCheck(emitd);
  assert.deepEqual(problems, []);
});
