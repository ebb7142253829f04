'use strict';
/*
 * TLS listeners (emitd.conf "tls"): wss:// and https:// polling from the
 * real clients, with a certificate the test makes (openssl); sessions
 * routed across workers behind TLS; ALPN http/1.1; TLS 1.2 at least; a
 * client that does not speak TLS is closed and the others go on; the
 * client's address reaches the scripts and the access log; a reload
 * (SIGHUP) takes a new certificate without closing the listener; a key
 * that does not match stops emitd -t with a clear message.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');
const { execFileSync } = require('node:child_process');
const { startEmitd, stopAndCheck, runEmitd, handler, freePort, isReference, timeMs, toLibconfig } = require('./lib/harness');
const { io, waitConnected, waitUntil, ack, closeAll } = require('./lib/clients');
const { pyClient } = require('./lib/examples');

const skip = isReference() && 'emitd-only: the tls group';

/* A self-signed certificate for 127.0.0.1: {cert, key} file names and the PEM. */
function makeCert(dir, name) {
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '2'],
  { stdio: 'ignore' });
  return { cert, key, pem: fs.readFileSync(cert) };
}

function fingerprint(pem) {
  return new crypto.X509Certificate(pem).fingerprint256;
}

/* A raw TLS connection: resolves {protocol, alpn, fingerprint} or rejects. */
function tlsProbe(port, opts = {}) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts }, () => {
      const r = { protocol: s.getProtocol(), alpn: s.alpnProtocol, fingerprint: s.getPeerCertificate().fingerprint256 };
      s.end();
      resolve(r);
    });
    s.setTimeout(timeMs(5000), () => { s.destroy(); reject(new Error('timeout')); });
    s.once('error', reject);
  });
}

let dir;
let one;
let d;
let tport;
test.before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-tls-'));
  one = makeCert(dir, 'one');
  tport = await freePort();
  d = await startEmitd({
    config: {
      access_log: path.join(dir, 'access.log'),
      limits: { request_timeout: 1500 },
      tls: { listen: [`127.0.0.1:${tport}`], certificate: one.cert, key: one.key },
      namespaces: [{ name: '/', script: handler('main.lua') }],
      engineio: undefined,
    },
  });
});
test.after(async () => {
  if (d) await d.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('wss:// and https:// polling from socket.io-client, on both workers, with a broadcast to a plain client', { skip }, async () => {
  const url = `https://127.0.0.1:${tport}`;
  const socks = [];
  try {
    const plain = io(d.url, { forceNew: true, transports: ['websocket'], reconnection: false });
    socks.push(plain);
    await waitConnected(plain);
    await ack(plain, 'join', 'tls-room');
    const workers = new Set();
    for (const transports of [['websocket'], ['polling'], ['polling', 'websocket'], ['polling'], ['websocket'], ['polling']]) {
      const s = io(url, { forceNew: true, transports, upgrade: transports.length > 1, ca: one.pem, reconnection: false });
      socks.push(s);
      await waitConnected(s);
      if (transports.length > 1) await waitUntil('the upgrade', () => s.io.engine.transport.name === 'websocket', timeMs(5000));
      /* a polling session's requests reach its worker over new TLS connections */
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(await ack(s, 'echo', `hello ${i}`, Buffer.from([1, 2, 3])), [`hello ${i}`, Buffer.from([1, 2, 3])]);
      }
      const [who] = await ack(s, 'whoami');
      workers.add(who.worker);
      assert.equal(s.io.engine.transport.name, transports.length > 1 ? 'websocket' : transports[0]);
    }
    assert.deepEqual([...workers].sort(), [1, 2], 'TLS sessions on both workers');
    const got = new Promise((resolve) => plain.once('news', resolve));
    const tlsClient = socks[2];
    await ack(tlsClient, 'to_room', 'tls-room', 'news', { from: 'tls' });
    assert.deepEqual(await got, { from: 'tls' });
  } finally {
    closeAll(socks);
  }
});

test('python-socketio over https (polling and websocket)', { skip }, async () => {
  for (const transports of [['polling'], ['websocket']]) {
    /* requests (polling) verifies with the test's certificate as its CA
     * bundle (an environment's bundle would override ssl_verify=False);
     * websocket-client does not verify with ssl_verify=False */
    const saved = [process.env.REQUESTS_CA_BUNDLE, process.env.CURL_CA_BUNDLE];
    process.env.REQUESTS_CA_BUNDLE = one.cert;
    process.env.CURL_CA_BUNDLE = one.cert;
    let py;
    try {
      py = pyClient({ url: `https://127.0.0.1:${tport}`, transports, ssl_verify: transports[0] === 'polling',
                      emit: [['/', 'echo', 'from python']] });
    } finally {
      for (const [k, v] of [['REQUESTS_CA_BUNDLE', saved[0]], ['CURL_CA_BUNDLE', saved[1]]]) {
        if (v === undefined) delete process.env[k]; else process.env[k] = v;
      }
    }
    try {
      await py.waitFor('connect', (x) => x.connect === '/');
      const a = await py.waitFor('the ack', (x) => x.ack === 0);
      assert.deepEqual(a.args, ['from python']);
    } finally {
      await py.stop();
    }
  }
});

test('ALPN http/1.1, TLS 1.2 and 1.3, nothing older; the served certificate', { skip }, async () => {
  const r = await tlsProbe(tport, { ALPNProtocols: ['h2', 'http/1.1'] });
  assert.equal(r.alpn, 'http/1.1');
  assert.equal(r.protocol, 'TLSv1.3');
  assert.equal(r.fingerprint, fingerprint(one.pem));
  assert.equal((await tlsProbe(tport, { maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
  assert.equal((await tlsProbe(tport, { ALPNProtocols: ['h2'] })).alpn, false, 'no shared protocol: no ALPN, still served');
  await assert.rejects(tlsProbe(tport, { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }), /protocol|version|alert|handshake|ECONNRESET/i);
});

test('a TLS session resumes on any worker (the workers share the ticket keys)', { skip }, async () => {
  /* one full handshake, and its session ticket */
  const session = await new Promise((resolve, reject) => {
    const c = tls.connect({ host: '127.0.0.1', port: tport, ca: one.pem });
    c.once('session', (sess) => { resolve(sess); c.end(); });
    c.once('error', reject);
    c.setTimeout(timeMs(5000), () => { c.destroy(); reject(new Error('no session ticket')); });
  });
  const reused = [];
  for (let i = 0; i < 8; i++) {
    reused.push(await new Promise((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port: tport, ca: one.pem, session }, () => {
        resolve(c.isSessionReused());
        c.end();
      });
      c.once('error', reject);
    }));
  }
  assert.deepEqual(reused, Array(8).fill(true), 'every connection resumed, whichever worker ran it');
});

test('a client that does not speak TLS is closed; the others go on; the address reaches the log', { skip }, async () => {
  const url = `https://127.0.0.1:${tport}`;
  const s = io(url, { forceNew: true, transports: ['websocket'], ca: one.pem, reconnection: false });
  try {
    await waitConnected(s);
    /* plain HTTP to the TLS port */
    const closed = await new Promise((resolve) => {
      const c = net.connect(tport, '127.0.0.1', () => c.write('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n'));
      let data = '';
      c.on('data', (b) => { data += b.toString('latin1'); });
      c.on('close', () => resolve(data));
      c.on('error', () => {});
      c.setTimeout(timeMs(10000), () => c.destroy());
    });
    assert.doesNotMatch(closed, /HTTP\/1\.1 200/, 'no plaintext answer');
    assert.deepEqual(await ack(s, 'echo', 'still here'), ['still here']);
    const sid = s.io.engine.id;
    s.close();
    const line = await waitUntil('its access line', () => {
      const text = fs.existsSync(path.join(dir, 'access.log')) ? fs.readFileSync(path.join(dir, 'access.log'), 'utf8') : '';
      return text.split('\n').find((l) => l.includes(`sid=${sid}`));
    }, timeMs(5000));
    assert.match(line, / addr=127\.0\.0\.1 /, 'the client\'s address behind TLS');
  } finally {
    s.close();
  }
});

test('a client that stops in the handshake is closed after request_timeout', { skip }, async () => {
  const t0 = Date.now();
  const closedAfter = await new Promise((resolve) => {
    const c = net.connect(tport, '127.0.0.1', () => c.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
    c.on('close', () => resolve(Date.now() - t0));
    c.on('error', () => {});
    c.setTimeout(timeMs(15000), () => c.destroy());
  });
  assert.ok(closedAfter >= 1000 && closedAfter < timeMs(15000), `closed after ${closedAfter} ms`);
});

test('large messages both ways through the TLS pump (its back-pressure), on websocket and polling', { skip }, async () => {
  const socks = [];
  try {
    for (const transports of [['websocket'], ['polling']]) {
      const s = io(`https://127.0.0.1:${tport}`, { forceNew: true, transports, ca: one.pem, reconnection: false });
      socks.push(s);
      await waitConnected(s);
      /* under max_payload (100000) as polling's base64 too */
      const big = crypto.randomBytes(transports[0] === 'polling' ? 60000 : 90000);
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => ack(s, 'echo', i, big)));
      answers.forEach(([i, b], k) => {
        assert.equal(i, k);
        assert.ok(Buffer.compare(b, big) === 0, `message ${k} came back whole`);
      });
    }
  } finally {
    closeAll(socks);
  }
});

test('SIGHUP takes a new certificate without closing the TLS listener; a key that does not match is refused', { skip }, async () => {
  const two = makeCert(dir, 'two');
  const conf = JSON.parse(fs.readFileSync(`${d.confPath}.json`, 'utf8'));
  /* emitd -t: a key of another certificate */
  const bad = path.join(dir, 'bad.conf');
  fs.writeFileSync(bad, toLibconfig({ ...conf, tls: { listen: [`127.0.0.1:${tport}`], certificate: one.cert, key: two.key } }));
  const t = await runEmitd(['-t', '-c', bad]);
  assert.equal(t.code, 1);
  assert.match(t.out, /tls: the key .*two\.key does not match the certificate .*one\.pem/);

  const before = d.log().length;
  fs.writeFileSync(d.confPath, toLibconfig({ ...conf, tls: { listen: [`127.0.0.1:${tport}`], certificate: two.cert, key: two.key } }));
  process.kill(d.pid, 'SIGHUP');
  await waitUntil('the reload', () => /reload: done/.test(d.log().slice(before)), timeMs(20000));
  assert.equal((await tlsProbe(tport)).fingerprint, fingerprint(two.pem), 'the new certificate');
  const s = io(`https://127.0.0.1:${tport}`, { forceNew: true, transports: ['polling'], ca: two.pem, reconnection: false });
  try {
    await waitConnected(s);
    assert.deepEqual(await ack(s, 'echo', 'two'), ['two']);
  } finally {
    s.close();
  }
  /* a reload whose key does not match: refused, the running one serves */
  fs.writeFileSync(d.confPath, toLibconfig({ ...conf, tls: { listen: [`127.0.0.1:${tport}`], certificate: two.cert, key: one.key } }));
  const mark = d.log().length;
  process.kill(d.pid, 'SIGHUP');
  await waitUntil('the failed reload', () => /reload failed: tls: the key .* does not match/.test(d.log().slice(mark)), timeMs(20000));
  assert.equal((await tlsProbe(tport)).fingerprint, fingerprint(two.pem));
  assert.deepEqual(await stopAndCheck(d), []);
});
