'use strict';
/*
 * clients.js - helpers around the real socket.io-client and raw HTTP /
 * WebSocket clients. Every wait is bounded: a helper that waits takes a
 * timeout and rejects with a message that says what did not happen.
 */
const http = require('node:http');
const net = require('node:net');
const { io, Manager } = require('socket.io-client');
const WebSocket = require('ws');

const WAIT_MS = 5000;

/* The three ways a client can reach the server. */
const TRANSPORTS = {
  websocket: { transports: ['websocket'] },
  polling: { transports: ['polling'] },
  upgrade: { transports: ['polling', 'websocket'] },
};

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/* Resolve with the arguments of the next `event` on emitter. */
function once(emitter, event, ms = WAIT_MS) {
  let handler;
  const p = new Promise((resolve) => {
    handler = (...args) => resolve(args);
    emitter.once(event, handler);
  });
  return withTimeout(p, ms, `"${event}"`).catch((e) => {
    emitter.off(event, handler);
    throw e;
  });
}

/* Emit with an ack callback; resolve with the ack's arguments. */
function ack(socket, event, ...args) {
  return withTimeout(new Promise((resolve) => {
    socket.emit(event, ...args, (...reply) => resolve(reply));
  }), WAIT_MS, `the ack of "${event}"`);
}

function nspUrl(url, nsp) {
  return nsp === '/' ? url : url + nsp;
}

/*
 * Connect a socket.io-client socket over `transport` (a key of TRANSPORTS)
 * and resolve once it is connected (and, for "upgrade", once the transport
 * is websocket). Rejects with the connect_error.
 */
async function connect(url, nsp, transport, opts = {}) {
  const socket = io(nspUrl(url, nsp), {
    forceNew: true, reconnection: false, timeout: WAIT_MS, ...TRANSPORTS[transport], ...opts,
  });
  socket.seen = recordEvents(socket);
  await waitConnected(socket);
  if (transport === 'upgrade') await waitUpgraded(socket);
  return socket;
}

function waitConnected(socket, ms = WAIT_MS) {
  if (socket.connected) return Promise.resolve(socket);
  return withTimeout(new Promise((resolve, reject) => {
    const onConnect = () => { socket.off('connect_error', onError); resolve(socket); };
    const onError = (err) => { socket.off('connect', onConnect); reject(err); };
    socket.once('connect', onConnect);
    socket.once('connect_error', onError);
  }), ms, `socket ${socket.nsp} to connect`);
}

function waitUpgraded(socket, ms = WAIT_MS) {
  const engine = socket.io.engine;
  if (engine.transport && engine.transport.name === 'websocket') return Promise.resolve();
  return once(engine, 'upgrade', ms).then(() => undefined, () => {
    throw new Error(`the connection was not upgraded to websocket within ${ms} ms (transport ${engine.transport && engine.transport.name})`);
  });
}

/* Resolve with the connect_error of a socket that must be refused. */
function connectError(socket, ms = WAIT_MS) {
  return withTimeout(new Promise((resolve, reject) => {
    socket.once('connect', () => reject(new Error(`socket ${socket.nsp} connected but must be refused`)));
    socket.once('connect_error', resolve);
  }), ms, `connect_error on ${socket.nsp}`);
}

function closeAll(...sockets) {
  for (const s of sockets.flat()) {
    if (!s) continue;
    try {
      s.disconnect();
    } catch (_) { /* already closed */ }
  }
}

/*
 * A FIFO of events from an emitter; next() waits (bounded) for the next
 * one. Used for raw WebSocket messages and for "no other message arrived
 * before this barrier" checks.
 */
class Queue {
  constructor() {
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    const w = this.waiters.shift();
    if (w) w(item);
    else this.items.push(item);
  }

  next(ms = WAIT_MS, what = 'the next message') {
    if (this.items.length) return Promise.resolve(this.items.shift());
    let w;
    const p = new Promise((resolve) => { w = resolve; this.waiters.push(w); });
    return withTimeout(p, ms, what).catch((e) => {
      this.waiters = this.waiters.filter((x) => x !== w);
      throw e;
    });
  }
}

/* Record every event a socket receives (onAny) in order. */
function recordEvents(socket) {
  const seen = [];
  socket.onAny((event, ...args) => seen.push([event, ...args]));
  return seen;
}

/*
 * Open a raw WebSocket; resolves {ws, queue, closed} where queue receives
 * text messages as strings and binary ones as Buffers, and closed resolves
 * with {code, reason, at} when the connection closes.
 */
function openWs(url, opts = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...opts });
    const queue = new Queue();
    const closed = new Promise((res) => {
      ws.on('close', (code, reason) => {
        const c = { code, reason: reason.toString(), at: Date.now() };
        queue.push({ closed: c });
        res(c);
      });
    });
    ws.on('message', (data, isBinary) => queue.push(isBinary ? Buffer.from(data) : data.toString('utf8')));
    ws.once('open', () => resolve({ ws, queue, closed }));
    ws.once('error', (e) => reject(e));
    ws.on('error', () => { /* reported through close */ });
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => reject(Object.assign(new Error(`websocket refused: HTTP ${res.statusCode} ${body}`), { status: res.statusCode, body })));
    });
  }), WAIT_MS, `websocket ${url} to open`);
}

/* Wait (bounded) for a close, skipping any messages. */
async function waitClosed(conn, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (let i = 0; i < 10000; i++) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    let m;
    try {
      m = await conn.queue.next(left, 'the websocket to close');
    } catch (e) {
      break;
    }
    if (m && m.closed) return m.closed;
  }
  throw new Error(`the websocket was not closed within ${ms} ms`);
}

/*
 * One HTTP request on its own connection (no keep-alive); a body is sent
 * with Content-Length, or chunked when opts.chunked. Resolves
 * {status, headers, body} with the body as a string (utf8) and raw Buffer.
 */
function httpRequest(port, method, path, { headers = {}, body, ms = WAIT_MS, chunked = false } = {}) {
  const h = { ...headers };
  /* a browser always sends Content-Length; chunked only when asked for */
  if (body !== undefined && !chunked && !Object.keys(h).some((k) => k.toLowerCase() === 'content-length')) {
    h['Content-Length'] = String(Buffer.byteLength(body));
  }
  return withTimeout(new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        resolve({ status: res.statusCode, headers: res.headers, body: raw.toString('utf8'), raw });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  }), ms, `${method} ${path}`);
}

/*
 * A raw HTTP/1.1 client on ONE TCP connection, so that a test knows every
 * request travels on the same socket. request() may write the request in
 * several pieces with small pauses between them (TCP_NODELAY is set, so
 * each piece leaves as its own segment).
 */
class RawHttp {
  constructor(port) {
    this.port = port;
    this.buf = Buffer.alloc(0);
    this.closed = false;
    this.pending = null;
  }

  connect() {
    return withTimeout(new Promise((resolve, reject) => {
      this.sock = net.connect({ host: '127.0.0.1', port: this.port }, () => {
        this.sock.setNoDelay(true);
        resolve(this);
      });
      this.sock.on('error', (e) => { if (this.pending) this.pending.reject(e); else reject(e); });
      this.sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.parse(); });
      this.sock.on('close', () => {
        this.closed = true;
        if (this.pending) {
          const p = this.pending;
          this.pending = null;
          p.reject(new Error(`the server closed the connection before a complete response (had: ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))})`));
        }
      });
    }), WAIT_MS, 'TCP connect');
  }

  parse() {
    if (!this.pending) return;
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.buf.subarray(0, end).toString('latin1').split('\r\n');
    const m = head[0].match(/^HTTP\/1\.([01]) (\d{3})/);
    if (!m) {
      this.pending.reject(new Error(`bad status line ${JSON.stringify(head[0])}`));
      this.pending = null;
      return;
    }
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      const k = line.slice(0, i).trim().toLowerCase();
      const v = line.slice(i + 1).trim();
      headers[k] = headers[k] !== undefined ? `${headers[k]}, ${v}` : v;
    }
    const status = Number(m[2]);
    let bodyStart = end + 4;
    let body;
    let consumed;
    if (/chunked/i.test(headers['transfer-encoding'] || '')) {
      const parts = [];
      let pos = bodyStart;
      for (;;) {
        const le = this.buf.indexOf('\r\n', pos);
        if (le < 0) return;
        const size = parseInt(this.buf.subarray(pos, le).toString('latin1'), 16);
        if (this.buf.length < le + 2 + size + 2) return;
        if (size === 0) { consumed = le + 4; break; }
        parts.push(this.buf.subarray(le + 2, le + 2 + size));
        pos = le + 2 + size + 2;
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (this.buf.length < bodyStart + n) return;
      body = this.buf.subarray(bodyStart, bodyStart + n);
      consumed = bodyStart + n;
    } else if (status === 204 || status === 304 || this.pending.method === 'HEAD') {
      body = Buffer.alloc(0);
      consumed = bodyStart;
    } else {
      if (!this.closed) return;   /* read until close */
      body = this.buf.subarray(bodyStart);
      consumed = this.buf.length;
    }
    this.buf = this.buf.subarray(consumed);
    const p = this.pending;
    this.pending = null;
    p.resolve({ status, headers, raw: Buffer.from(body), body: Buffer.from(body).toString('utf8'), version: `1.${m[1]}` });
  }

  /*
   * Send one request and wait for its response. pieces > 1 splits the
   * request bytes into that many segments, pauseMs apart.
   */
  async request(method, path, { headers = {}, body, pieces = 1, pauseMs = 15, ms = WAIT_MS } = {}) {
    if (this.closed) throw new Error('the connection is already closed');
    if (this.pending) throw new Error('one request at a time');
    const b = body === undefined ? null : Buffer.from(body);
    const h = { Host: `127.0.0.1:${this.port}`, Connection: 'keep-alive', ...headers };
    if (b) h['Content-Length'] = String(b.length);
    const head = `${method} ${path} HTTP/1.1\r\n` +
      Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n';
    const bytes = b ? Buffer.concat([Buffer.from(head, 'latin1'), b]) : Buffer.from(head, 'latin1');
    const result = new Promise((resolve, reject) => { this.pending = { resolve, reject, method }; });
    const n = Math.max(1, Math.min(pieces, bytes.length));
    const step = Math.ceil(bytes.length / n);
    for (let off = 0, i = 0; off < bytes.length && i < 1000; off += step, i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, pauseMs));
      if (this.closed) break;
      this.sock.write(bytes.subarray(off, off + step));
    }
    this.parse();
    return withTimeout(result, ms, `the response to ${method} ${path}`);
  }

  close() {
    if (this.sock) this.sock.destroy();
  }
}

/* Split an Engine.IO polling payload into its packets. */
function splitPayload(body) {
  return body.split('\x1e');
}

/* Parse the handshake OPEN packet "0{...}". */
function parseOpen(packet) {
  if (typeof packet !== 'string' || packet[0] !== '0') throw new Error(`expected an OPEN packet, got ${JSON.stringify(packet)}`);
  return JSON.parse(packet.slice(1));
}

/* Buffers and typed arrays as {hex} so deepStrictEqual can compare them. */
function normalize(v) {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { hex: Buffer.from(v).toString('hex') };
  if (v instanceof ArrayBuffer) return { hex: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v)) o[k] = normalize(v[k]);
    return o;
  }
  return v;
}

/*
 * A WebSocket client of user (auth {user}) at url that records every event
 * in s.seen and knows its worker (s.worker, from the handlers' "whoami").
 */
async function userClient(url, user, opts = {}) {
  const s = io(url, {
    forceNew: true, transports: ['websocket'], reconnection: false, timeout: 5000,
    auth: user ? { user } : {}, ...opts,
  });
  s.seen = [];
  s.onAny((event, ...args) => s.seen.push([event, ...args]));
  await waitConnected(s);
  const [who] = await ack(s, 'whoami');
  s.worker = who.worker;
  return s;
}

/*
 * Clients of the given users, on both workers where there are two or more:
 * placement is by load, so keep opening (bounded) and close the extras.
 * make(user, opts) opens one and sets its .worker.
 */
async function spreadClients(make, users, opts) {
  const kept = [];
  const extra = [];
  try {
    for (let i = 0; i < 4 * users.length + 8 && kept.length < users.length; i++) {
      const s = await make(users[kept.length], opts);
      const workers = new Set(kept.map((k) => k.worker));
      if (kept.length === users.length - 1 && users.length > 1 && workers.size === 1
          && workers.has(s.worker)) extra.push(s);
      else kept.push(s);
    }
  } finally {
    closeAll(extra);
  }
  if (kept.length !== users.length) throw new Error('could not place clients on both workers');
  return kept;
}

/* The first values of the events `event` a socket recorded in s.seen. */
function payloadsOf(s, event) {
  return s.seen.filter((e) => e[0] === event).map((e) => e[1]);
}

/* Poll fn until it gives a true value (bounded in time and count). */
async function waitUntil(what, fn, ms = 5000) {
  const deadline = Date.now() + ms;
  for (let i = 0; i < 10000; i++) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

module.exports = {
  userClient, spreadClients, payloadsOf, waitUntil,
  io, Manager, WebSocket, TRANSPORTS, WAIT_MS, withTimeout, once, ack, nspUrl, connect,
  waitConnected, waitUpgraded, connectError, closeAll, Queue, recordEvents, openWs,
  waitClosed, httpRequest, RawHttp, splitPayload, parseOpen, normalize,
};
