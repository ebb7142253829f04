'use strict';
/*
 * hostile.js - what the hostile-client tests share: a bystander that keeps
 * doing acks through the whole test and must keep its service, raw TCP and
 * WebSocket clients that send exactly the bytes a test gives (frames with
 * any length field), and the memory of the daemon's processes.
 *
 * Every wait is bounded; every loop has a count and a deadline.
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const { connect, ack, withTimeout, WAIT_MS } = require('./clients');
const { delay, childrenOf } = require('./harness');

/*
 * A socket.io-client socket (websocket, namespace "/") that sends an
 * "echo" with an ack every `everyMs` and counts the answers. check()
 * asserts what a user of the service would: still connected, not one ack
 * lost, and answers still coming (a fresh ack now).
 */
class Bystander {
  constructor(url, everyMs = 50) {
    this.url = url;
    this.everyMs = everyMs;
    this.sent = 0;
    this.answered = 0;
    this.wrong = 0;
    this.disconnects = [];
    this.running = false;
  }

  async start() {
    this.socket = await connect(this.url, '/', 'websocket');
    this.socket.on('disconnect', (reason) => this.disconnects.push(reason));
    this.running = true;
    this.loop = (async () => {
      for (let i = 0; i < 100000 && this.running; i++) {
        const n = ++this.sent;
        this.socket.emit('echo', n, (back) => {
          if (back === n) this.answered++;
          else this.wrong++;
        });
        await delay(this.everyMs);
      }
    })();
    return this;
  }

  /* Still served: connected, nothing dropped, a new ack answered now. */
  async check(what = '') {
    const at = `the bystander${what ? ` (${what})` : ''}`;
    if (this.disconnects.length) throw new Error(`${at} was disconnected: ${this.disconnects.join(', ')}`);
    if (this.wrong) throw new Error(`${at} got ${this.wrong} wrong answers`);
    const [back] = await ack(this.socket, 'echo', 'check').catch((e) => {
      throw new Error(`${at} got no answer: ${e.message}`);
    });
    if (back !== 'check') throw new Error(`${at} got ${JSON.stringify(back)} back`);
    /* every ack sent up to a moment ago has come back */
    const deadline = Date.now() + WAIT_MS;
    const want = this.sent;
    for (let i = 0; i < 1000 && this.answered < want - 1 && Date.now() < deadline; i++) await delay(10);
    if (this.answered < want - 1) throw new Error(`${at}: ${this.answered} of ${want} acks answered`);
    return this.answered;
  }

  async stop() {
    this.running = false;
    await this.loop;
    if (this.socket) this.socket.disconnect();
  }
}

/*
 * One raw TCP connection: send() writes bytes, received() is all that came
 * back, closed resolves when the server closed it (or reset it).
 */
class RawTcp {
  static open(port) {
    return withTimeout(new Promise((resolve, reject) => {
      const c = new RawTcp();
      c.sock = net.connect({ host: '127.0.0.1', port }, () => resolve(c));
      c.sock.setNoDelay(true);
      c.chunks = [];
      c.ended = false;
      c.closed = new Promise((res) => {
        c.sock.on('close', () => { c.ended = true; res(c.received()); });
      });
      c.sock.on('data', (d) => c.chunks.push(d));
      c.sock.on('error', (e) => { c.error = e; if (!c.sock.remoteAddress) reject(e); });
    }), WAIT_MS, `TCP connect to ${port}`);
  }

  send(bytes) {
    if (!this.ended) this.sock.write(bytes);
  }

  received() {
    return Buffer.concat(this.chunks);
  }

  /* The bytes received when the server has closed, within ms. */
  waitClosed(ms = WAIT_MS, what = 'the server to close the connection') {
    return withTimeout(this.closed, ms, what);
  }

  /* Wait until the response holds re (bounded). */
  async waitFor(re, ms = WAIT_MS) {
    const deadline = Date.now() + ms;
    for (let i = 0; i < 10000; i++) {
      const text = this.received().toString('latin1');
      if (re.test(text)) return text;
      if (this.ended || Date.now() > deadline) break;
      await delay(10);
    }
    throw new Error(`no ${re} within ${ms} ms; got ${JSON.stringify(this.received().toString('latin1').slice(0, 300))}`);
  }

  destroy() {
    this.sock.destroy();
  }
}

/* An HTTP status line and its code, from what a raw connection received. */
function statusOf(bytes) {
  const m = bytes.toString('latin1').match(/^HTTP\/1\.1 (\d{3})/);
  return m ? Number(m[1]) : null;
}

/*
 * A client WebSocket frame. opts.len: the length to announce instead of
 * the payload's (any value up to 2^64 - 1, as a BigInt or number);
 * opts.fin false for a fragment; opts.mask false for an unmasked one.
 */
function wsFrame(opcode, payload, opts = {}) {
  const data = Buffer.from(payload);
  const fin = opts.fin === false ? 0 : 0x80;
  const len = opts.len !== undefined ? BigInt(opts.len) : BigInt(data.length);
  const masked = opts.mask !== false;
  let head;
  if (len < 126n) head = Buffer.from([fin | opcode, (masked ? 0x80 : 0) | Number(len)]);
  else if (len < 65536n) {
    head = Buffer.alloc(4);
    head[0] = fin | opcode;
    head[1] = (masked ? 0x80 : 0) | 126;
    head.writeUInt16BE(Number(len), 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = fin | opcode;
    head[1] = (masked ? 0x80 : 0) | 127;
    head.writeBigUInt64BE(len, 2);
  }
  if (!masked) return Buffer.concat([head, data]);
  const key = crypto.randomBytes(4);
  const body = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) body[i] = data[i] ^ key[i & 3];
  return Buffer.concat([head, key, body]);
}

/*
 * A WebSocket opened by hand on a raw TCP connection (so that any frame can
 * be sent): resolves the RawTcp after the 101, with `rest` the bytes that
 * followed the response head.
 */
async function rawWebSocket(port, path) {
  const c = await RawTcp.open(port);
  const key = crypto.randomBytes(16).toString('base64');
  c.send(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  await c.waitFor(/\r\n\r\n/);
  const text = c.received().toString('latin1');
  if (!/^HTTP\/1\.1 101/.test(text)) throw new Error(`websocket refused: ${text.slice(0, 200)}`);
  return c;
}

/* A raw WebSocket whose "/" CONNECT has been answered (OPEN, then 40{sid}). */
async function joinedWebSocket(port, path = '/socket.io/?EIO=4&transport=websocket') {
  const c = await rawWebSocket(port, path);
  c.send(wsFrame(1, '40'));
  await c.waitFor(/"sid"[\s\S]*40\{"sid"/);
  return c;
}

/* Parse the server frames in bytes (after the 101 head): [{opcode, payload}]. */
function serverFrames(bytes) {
  let p = bytes.indexOf('\r\n\r\n');
  p = p < 0 ? 0 : p + 4;
  const out = [];
  for (let i = 0; i < 100000 && p + 2 <= bytes.length; i++) {
    const opcode = bytes[p] & 0x0f;
    let len = bytes[p + 1] & 0x7f;
    let h = 2;
    if (len === 126) { if (p + 4 > bytes.length) break; len = bytes.readUInt16BE(p + 2); h = 4; }
    else if (len === 127) { if (p + 10 > bytes.length) break; len = Number(bytes.readBigUInt64BE(p + 2)); h = 10; }
    if (p + h + len > bytes.length) break;
    out.push({ opcode, payload: bytes.subarray(p + h, p + h + len) });
    p += h + len;
  }
  return out;
}

/* The close code of the server's close frame in bytes, or null. */
function closeCode(bytes) {
  const f = serverFrames(bytes).find((x) => x.opcode === 8);
  return f && f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null;
}

/* Resident memory of the daemon and its children, in bytes. */
function rssOf(daemon) {
  let sum = 0;
  for (const pid of [daemon.pid, ...childrenOf(daemon.pid)]) {
    try {
      const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
      if (m) sum += Number(m[1]) * 1024;
    } catch (_) { /* gone */ }
  }
  return sum;
}

/* Count the limit violations the daemon reports (every worker's). */
async function violations(socket) {
  const [n] = await ack(socket, 'violations');
  return n;
}

module.exports = {
  Bystander, RawTcp, statusOf, wsFrame, rawWebSocket, joinedWebSocket, serverFrames, closeCode, rssOf, violations,
};
