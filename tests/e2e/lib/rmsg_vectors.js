'use strict';
/*
 * rmsg_vectors.js - prints tests/unit/rmsg_vectors.h: the bytes that the
 * pinned npm packages publish on Redis for a few broadcasts, made by the
 * packages' own code (@socket.io/redis-emitter's Emitter and
 * @socket.io/redis-adapter's RedisAdapter) with a client object that
 * records each publish instead of sending it.
 *
 *   cd tests/e2e && node lib/rmsg_vectors.js > ../unit/rmsg_vectors.h
 */
const { Emitter } = require('@socket.io/redis-emitter');
const { RedisAdapter } = require('@socket.io/redis-adapter');

const published = [];
const client = {
  publish: (channel, msg) => { published.push([channel, Buffer.from(msg)]); },
  psubscribe() {}, subscribe() {}, on() {},
};

function capture(name, fn) {
  published.length = 0;
  fn();
  if (published.length !== 1) throw new Error(`${name}: ${published.length} messages`);
  return { name, channel: published[0][0], bytes: published[0][1] };
}

const emitter = new Emitter(client);
/* An adapter as a socket.io server makes one for namespace "/chat". */
const nsp = { name: '/chat', server: { encoder: { encode: (p) => [p] } }, sockets: new Map() };
const adapter = new RedisAdapter(nsp, client, client, {});
adapter.uid = 'Ab12Cd';     /* its random uid, pinned */

const vectors = [
  capture('emitter_emit', () => emitter.emit('news', { a: 1, b: [true, null, 1.5, -3, 'x', 300, -200, 70000] })),
  capture('emitter_room', () => emitter.of('/chat').to('r1').except('r2').volatile.emit('ev', 'hi')),
  capture('emitter_rooms', () => emitter.to(['a', 'b']).emit('two', 'é', '')),
  capture('emitter_binary', () => emitter.emit('bin', Buffer.from([1, 2, 3]), { nested: Buffer.alloc(0), s: 'x'.repeat(40) })),
  capture('adapter_broadcast', () => adapter.broadcast({ type: 2, data: ['tick', 42, { deep: [[1]] }] },
    { rooms: new Set(['room']), except: new Set(['sid1']), flags: {} })),
  capture('adapter_request_ack', () => {
    const uid2 = Math.random; /* the request id is random: pinned below */
    void uid2;
    adapter.broadcastWithAck({ type: 2, data: ['ask', 'q', Buffer.from([9])] },
      { rooms: new Set(['r']), except: new Set(), flags: { timeout: 1500 } }, () => {}, () => {});
  }),
];
/* The ack response as the adapter's onrequest publishes it (parser.encode). */
const msgpack = require('notepack.io');
vectors.push({ name: 'adapter_ack', channel: 'socket.io-response#/chat#',
               bytes: msgpack.encode({ type: 9, requestId: 'Rq12ab', packet: { ok: true, b: Buffer.from([1, 2]) } }) });

const hex = (b) => [...b].map((x) => `\\x${x.toString(16).padStart(2, '0')}`).join('');
console.log('/* Made by tests/e2e/lib/rmsg_vectors.js with the pinned npm packages: do not edit. */');
for (const v of vectors) {
  console.log(`#define RMSG_${v.name.toUpperCase()}_CHANNEL "${v.channel}"`);
  console.log(`#define RMSG_${v.name.toUpperCase()} "${hex(v.bytes)}"`);
}
