'use strict';
/*
 * The access log: a line per Engine.IO session as it closes (time, worker,
 * address, sid, transports, namespaces, user, duration, message bytes each
 * way, close reason), to its own file (reopened on SIGUSR1), with the error
 * log by default, or "off".
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startEmitd, stopAndCheck, handler, isReference, timeMs } = require('./lib/harness');
const { io, waitConnected, waitUntil, ack, closeAll } = require('./lib/clients');

const skip = isReference() && 'emitd-only: the access log';

const LINE = /^(\S+) access worker=(\d+) addr=(\S+) sid=([\w-]{20}) transport=(\S+) nsp=(\S+) user=(\S+) duration=(\d+\.\d{3}) in=(\d+) out=(\d+) reason="([^"]*)"$/;

function accessLines(text) {
  return text.split('\n').filter((l) => / access worker=/.test(l)).map((l) => {
    const m = LINE.exec(l);
    assert.ok(m, `an access line in the documented format: ${l}`);
    return { time: m[1], worker: +m[2], addr: m[3], sid: m[4], transport: m[5], nsp: m[6], user: m[7],
             duration: +m[8], bytesIn: +m[9], bytesOut: +m[10], reason: m[11] };
  });
}

test('access_log to a file: a line per session with its transports, namespaces, user, duration, bytes and reason; SIGUSR1 reopens it', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-access-'));
  const file = path.join(dir, 'access.log');
  const d = await startEmitd({
    config: {
      access_log: file,
      namespaces: [{ name: '/', script: handler('main.lua') }, { name: '/chat', script: handler('cluster.lua') }],
      engineio: undefined,
    },
  });
  const socks = [];
  try {
    /* polling upgraded to websocket, in / and /chat as "alice" */
    const a = io(d.url, { forceNew: true, transports: ['polling', 'websocket'], reconnection: false });
    socks.push(a);
    await waitConnected(a);
    const chat = a.io.socket('/chat', { auth: { user: 'alice' } });
    chat.connect();
    await waitConnected(chat);
    await waitUntil('the upgrade', () => a.io.engine.transport.name === 'websocket', timeMs(5000));
    await ack(a, 'echo', 'x'.repeat(1000));
    const sidA = a.io.engine.id;
    /* polling only */
    const b = io(d.url, { forceNew: true, transports: ['polling'], reconnection: false });
    socks.push(b);
    await waitConnected(b);
    const sidB = b.io.engine.id;
    /* a hostile user name cannot forge a line: it is escaped */
    const e = io(`${d.url}/chat`, { forceNew: true, transports: ['websocket'], reconnection: false,
                                   auth: { user: 'eve\naccess "x"' } });
    socks.push(e);
    await waitConnected(e);
    const sidE = e.io.engine.id;
    a.io.engine.close();
    b.io.engine.close();
    e.close();
    const lines = await waitUntil('three access lines', () => {
      const l = fs.existsSync(file) ? accessLines(fs.readFileSync(file, 'utf8')) : [];
      return l.length >= 3 ? l : null;
    }, timeMs(5000));
    assert.equal(lines.length, 3, 'one line per session, none forged');
    assert.equal(lines.find((l) => l.sid === sidE).user, 'eve%0Aaccess%20%22x%22');
    const la = lines.find((l) => l.sid === sidA);
    const lb = lines.find((l) => l.sid === sidB);
    assert.ok(la && lb, `a line for each session: ${JSON.stringify(lines)}`);
    assert.equal(la.addr, '127.0.0.1');
    assert.equal(la.transport, 'polling,websocket');
    assert.deepEqual(la.nsp.split(',').sort(), ['/', '/chat']);
    assert.equal(la.user, 'alice');
    assert.equal(la.reason, 'transport close');
    assert.ok(la.bytesIn > 1000 && la.bytesOut > 1000, `the echo's bytes each way: ${la.bytesIn} in, ${la.bytesOut} out`);
    assert.ok(la.duration > 0 && la.duration < 60);
    assert.ok(!Number.isNaN(Date.parse(la.time)));
    assert.ok([1, 2].includes(la.worker));
    assert.equal(lb.transport, 'polling');
    assert.equal(lb.nsp, '/');
    assert.equal(lb.user, '-');
    assert.equal(lb.reason, 'transport close');
    assert.doesNotMatch(d.log(), / access worker=/, 'not in the error log');

    /* logrotate: move the file, SIGUSR1, the next line goes to a new file */
    fs.renameSync(file, `${file}.1`);
    process.kill(d.pid, 'SIGUSR1');
    await waitUntil('the workers reopened it', () => (d.log().match(/worker \d: reopened the access log/g) || []).length >= 2, timeMs(5000));
    const c = io(d.url, { forceNew: true, transports: ['websocket'], reconnection: false });
    socks.push(c);
    await waitConnected(c);
    const sidC = c.io.engine.id;
    c.close();
    await waitUntil('a line in the new file', () => fs.existsSync(file) && accessLines(fs.readFileSync(file, 'utf8')).some((l) => l.sid === sidC), timeMs(5000));
    assert.equal(accessLines(fs.readFileSync(`${file}.1`, 'utf8')).some((l) => l.sid === sidC), false);
    assert.deepEqual(await stopAndCheck(d), []);
  } finally {
    closeAll(socks);
    await d.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('access_log: with the error log by default, and "off" writes none', { skip }, async () => {
  for (const [config, want] of [[{}, 1], [{ access_log: 'off' }, 0]]) {
    const d = await startEmitd({ config });
    try {
      const s = io(d.url, { forceNew: true, transports: ['websocket'], reconnection: false });
      await waitConnected(s);
      const sid = s.io.engine.id;
      s.close();
      if (want) {
        await waitUntil('the line in the error log', () => accessLines(d.log()).some((l) => l.sid === sid && l.reason === 'transport close'), timeMs(5000));
      } else {
        /* a later session's close is logged in the error log: the first one's line would be there by then */
        await new Promise((r) => setTimeout(r, timeMs(500)));
        assert.deepEqual(accessLines(d.log()), []);
      }
      assert.deepEqual(await stopAndCheck(d), []);
    } finally {
      await d.stop();
    }
  }
});
