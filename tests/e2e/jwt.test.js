'use strict';
/*
 * JWT namespaces (jwt = {...}): tokens made here by another implementation
 * (npm jsonwebtoken, pinned) admit a client from auth.token, ?token= or
 * Authorization: Bearer; expired, not yet valid, wrong issuer or audience,
 * a bad signature, "alg": "none", an HS token "signed" with the RSA public
 * key (algorithm confusion) and garbage are refused with the configured
 * messages. HS256, RS256 and ES256; the claims in socket.claims and in room
 * templates. Real clients, 2 workers, both transports. Handlers: jwt.lua.
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const test = require('node:test');
const assert = require('node:assert/strict');
const jwt = require('jsonwebtoken');
const { startEmitd, stopAndCheck, handler } = require('./lib/harness');
const { io, waitConnected, connectError, ack, closeAll } = require('./lib/clients');

const SECRET = 'a secret of more than thirty-two bytes, for HS256';
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = (k) => k.export({ type: 'spki', format: 'pem' });
const now = () => Math.floor(Date.now() / 1000);

let emitd;
test.before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-jwt-'));
  fs.writeFileSync(path.join(dir, 'rs.pem'), pem(rsa.publicKey));
  fs.writeFileSync(path.join(dir, 'es.pem'), pem(ec.publicKey));
  emitd = await startEmitd({
    config: {
      namespaces: [
        { name: '/hs', script: handler('jwt.lua'), rooms: ['user:{claims.sub}', 'company:{claims.companyId}'],
          jwt: { secret: SECRET, issuer: 'emitd-tests', audience: 'chat', leeway: 5 } },
        { name: '/rs', script: handler('jwt.lua'), jwt: { public_key: path.join(dir, 'rs.pem'), algorithms: ['RS256'] } },
        { name: '/studio', script: handler('jwt.lua'), jwt: { secret: SECRET, required: false } },
        { name: '/es', script: handler('jwt.lua'),
          jwt: { public_key: path.join(dir, 'es.pem'), algorithms: ['ES256'], expired_message: 'Session expired' } },
      ],
    },
  });
});
test.after(async () => { if (emitd) await emitd.stop(); });

const hs = (claims, opts = {}) => jwt.sign({ iss: 'emitd-tests', aud: 'chat', ...claims }, SECRET,
  { algorithm: 'HS256', ...opts });

function client(nsp, opts) {
  return io(`${emitd.url}${nsp}`, { forceNew: true, reconnection: false, ...opts });
}

async function admitted(nsp, opts) {
  const s = client(nsp, opts);
  await waitConnected(s);
  return s;
}

async function refused(nsp, opts) {
  const s = client(nsp, opts);
  try {
    return (await connectError(s)).message;
  } finally {
    closeAll(s);
  }
}

/* base64url JSON, for tokens jsonwebtoken will not make */
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

for (const transport of ['websocket', 'polling']) {
  const transports = [transport];

  test(`${transport}: HS256 from auth.token, ?token= and Authorization: Bearer; claims and templates`, async () => {
    const token = hs({ sub: 'u1', companyId: 42, exp: now() + 60 });
    const clients = await Promise.all([
      admitted('/hs', { transports, auth: { token } }),
      admitted('/hs', { transports, query: { token } }),
      admitted('/hs', { transports, extraHeaders: { Authorization: `Bearer ${token}` } }),
    ]);
    try {
      for (const s of clients) {
        const [claims] = await ack(s, 'claims');
        assert.equal(claims.sub, 'u1');
        assert.equal(claims.companyId, 42);
        assert.equal(claims.iss, 'emitd-tests');
        const [rooms] = await ack(s, 'rooms');
        assert.deepEqual(rooms.slice(1).sort(), ['company:42', 'user:u1']);
      }
    } finally {
      closeAll(clients);
    }
  });

  test(`${transport}: refused tokens get the configured messages`, async () => {
    assert.equal(await refused('/hs', { transports }), 'Authentication required');
    assert.equal(await refused('/hs', { transports, auth: { token: '' } }), 'Authentication required');
    assert.equal(await refused('/hs', { transports, auth: { token: hs({ sub: 'u', exp: now() - 10 }) } }), 'Token expired');
    /* within the leeway of 5 s: still good */
    const s = await admitted('/hs', { transports, auth: { token: hs({ sub: 'u', exp: now() - 2 }) } });
    closeAll(s);
    const invalid = [
      hs({ sub: 'u', nbf: now() + 60 }),
      hs({ sub: 'u', iat: now() + 60 }),
      hs({ sub: 'u', iss: 'someone-else' }),
      hs({ sub: 'u', aud: 'other' }),
      jwt.sign({ sub: 'u', iss: 'emitd-tests', aud: 'chat' }, 'another secret of thirty-two bytes at least'),
      hs({ sub: 'u' }, { algorithm: 'HS512' }),            /* an algorithm the key was not configured for */
      `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'u', iss: 'emitd-tests', aud: 'chat' })}.`,
      'not a token', 'a.b.c', `${hs({ sub: 'u' })}x`,
    ];
    for (const token of invalid) {
      assert.equal(await refused('/hs', { transports, auth: { token } }), 'Invalid token', token.slice(0, 60));
    }
  });
}

test('RS256 and ES256 with PEM public keys; algorithm confusion is refused', async () => {
  const rs = jwt.sign({ sub: 'r' }, rsa.privateKey, { algorithm: 'RS256', expiresIn: 60 });
  const es = jwt.sign({ sub: 'e' }, ec.privateKey, { algorithm: 'ES256', expiresIn: 60 });
  const a = await admitted('/rs', { auth: { token: rs } });
  const b = await admitted('/es', { auth: { token: es } });
  try {
    assert.equal((await ack(a, 'claims'))[0].sub, 'r');
    assert.equal((await ack(b, 'claims'))[0].sub, 'e');
  } finally {
    closeAll(a, b);
  }
  /* HS256 "signed" with the RSA public key's PEM text as the secret */
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64({ sub: 'attacker', exp: now() + 60 });
  const sig = crypto.createHmac('sha256', pem(rsa.publicKey)).update(`${head}.${body}`).digest('base64url');
  assert.equal(await refused('/rs', { auth: { token: `${head}.${body}.${sig}` } }), 'Invalid token');
  /* the right algorithm family with the wrong key, and across namespaces */
  assert.equal(await refused('/es', { auth: { token: rs } }), 'Invalid token');
  const otherEc = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  assert.equal(await refused('/es', { auth: { token: jwt.sign({ sub: 'x' }, otherEc.privateKey, { algorithm: 'ES256' }) } }),
    'Invalid token');
  assert.equal(await refused('/es', { auth: { token: jwt.sign({ sub: 'x', exp: now() - 1 }, ec.privateKey, { algorithm: 'ES256' }) } }),
    'Session expired');
});

test('required = false: no token admits without claims; a script verifies one sent later', async () => {
  const s = await admitted('/studio', { auth: {} });
  try {
    assert.deepEqual(await ack(s, 'claims'), [null]);
    const authenticated = new Promise((resolve) => s.once('authenticated', resolve));
    assert.deepEqual(await ack(s, 'authenticate', { token: jwt.sign({ sub: 'u5' }, SECRET) }), [{ success: true }]);
    assert.deepEqual(await authenticated, { userId: 'u5' });
    const authError = new Promise((resolve) => s.once('authError', resolve));
    const expired = jwt.sign({ sub: 'u5', exp: now() - 10 }, SECRET);
    assert.deepEqual(await ack(s, 'authenticate', { token: expired }), [{ success: false, error: 'Token expired' }]);
    assert.deepEqual(await authError, { message: 'Token expired' });
    assert.deepEqual(await ack(s, 'authenticate', { token: 'garbage' }), [{ success: false, error: 'Invalid token' }]);
  } finally {
    closeAll(s);
  }
  /* a token that is sent at connect must still be valid */
  assert.equal(await refused('/studio', { auth: { token: 'garbage' } }), 'Invalid token');
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});
