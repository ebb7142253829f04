'use strict';
/*
 * Running as a daemon: pid_file written atomically with the master's pid
 * once emitd serves, removed when it exits; a pid file that cannot be
 * written stops emitd with a clear message and exit code 1.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startEmitd, stopAndCheck, isReference, delay, timeMs, VALGRIND } = require('./lib/harness');
const { waitUntil } = require('./lib/clients');

const skip = isReference() && 'emitd-only: pid_file';

/* Wait (bounded) for a daemon that should stop by itself; 'timeout' if not. */
async function exited(d, ms = 20000) {
  let t;
  const r = await Promise.race([d.exitPromise, new Promise((resolve) => { t = setTimeout(resolve, ms, 'timeout'); })]);
  clearTimeout(t);
  return r;
}

test('pid_file holds the master\'s pid while it runs, and goes at exit', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-pid-'));
  const pidFile = path.join(dir, 'emitd.pid');
  const d = await startEmitd({ config: { pid_file: pidFile } });
  try {
    const text = await waitUntil('the pid file', () => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8'));
    assert.equal(text, `${d.pid}\n`);
    assert.deepEqual(fs.readdirSync(dir), ['emitd.pid'], 'no temporary file left');
    assert.deepEqual(await stopAndCheck(d), []);
    assert.equal(fs.existsSync(pidFile), false, 'removed at exit');
  } finally {
    await d.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a pid file that cannot be written: a clear message, exit code 1', { skip }, async () => {
  const d = await startEmitd({ config: { pid_file: '/nonexistent-dir/emitd.pid' }, wait: false });
  try {
    assert.notEqual(await exited(d), 'timeout', 'emitd stopped by itself');
    assert.equal(d.exitCode, 1);
    assert.match(d.log(), /cannot write the pid file \/nonexistent-dir\/emitd\.pid \(2: No such file or directory\)/);
  } finally {
    await d.stop();
  }
});

test('max_connections: past it a new client is refused with 503, the others go on; a freed place is taken again', { skip }, async () => {
  const { io, waitConnected, connectError, closeAll, httpRequest } = require('./lib/clients');
  const d = await startEmitd({ config: { max_connections: 3 } });
  const socks = [];
  try {
    for (let i = 0; i < 3; i++) {
      const s = io(d.url, { forceNew: true, reconnection: false, transports: [i % 2 ? 'polling' : 'websocket'] });
      socks.push(s);
      await waitConnected(s);
    }
    const r = await httpRequest(d.port, 'GET', '/socket.io/?EIO=4&transport=polling');
    assert.equal(r.status, 503);
    const over = io(d.url, { forceNew: true, reconnection: false, transports: ['websocket'] });
    socks.push(over);
    await connectError(over);
    await d.waitLog(/max_connections \(3\) reached: new sessions are refused with 503/);
    /* the three are still served */
    for (const s of socks.slice(0, 3)) assert.equal(s.connected, true);
    socks[0].close();
    /* a new client each time, until the freed place is seen (bounded) */
    await waitUntil('a freed place taken', async () => {
      const again = io(d.url, { forceNew: true, reconnection: false, transports: ['polling'] });
      socks.push(again);
      const ok = await new Promise((resolve) => {
        again.once('connect', () => resolve(true));
        again.once('connect_error', () => resolve(false));
      });
      if (!ok) again.close();
      return ok;
    }, timeMs(5000));
    assert.deepEqual(await stopAndCheck(d), []);
  } finally {
    closeAll(socks);
    await d.stop();
  }
});

test('max_connections the system cannot give files for: a clear message, and emitd runs', { skip }, async () => {
  /* more than fs.nr_open: refused even to root */
  const d = await startEmitd({ config: { max_connections: 10000000 } });
  try {
    await d.waitLog(/max_connections = 10000000 needs 10001024 open files, but the system allows \d+ \(ulimit -n, LimitNOFILE=/);
    const { httpRequest } = require('./lib/clients');
    assert.equal((await httpRequest(d.port, 'GET', '/socket.io/?EIO=4&transport=polling')).status, 200);
    assert.deepEqual(await stopAndCheck(d), []);
  } finally {
    await d.stop();
  }
});

test('a worker that keeps dying is restarted with a growing back-off, logged, and /health says it is down meanwhile', { skip }, async () => {
  const { httpRequest } = require('./lib/clients');
  const d = await startEmitd({ config: { health_path: '/health' } });
  const workerPid = () => (d.children().find((c) => c.args === 'emitd: worker 1') || {}).pid;
  try {
    const waits = [];
    let pid = await waitUntil('worker 1', workerPid);
    await delay(2200);                       /* a run of its own first: more than 2 s */
    for (let i = 0; i < 5; i++) {
      const from = d.logSize();
      process.kill(pid, 'SIGKILL');
      const m = await d.waitLog(/restarting worker 1 (at once|in (\d+) ms \((\d+) quick deaths in a row\))/, 5000, { from });
      waits.push(m[2] ? Number(m[2]) : 0);
      if (i === 4) {
        /* during the longest wait: degraded, worker 1 down */
        const h = await httpRequest(d.port, 'GET', '/health');
        assert.equal(h.status, 503);
        const v = JSON.parse(h.body);
        assert.equal(v.status, 'degraded');
        assert.deepEqual(v.details.workers.find((w) => w.worker === 1), { worker: 1, status: 'down' });
      }
      pid = await waitUntil('worker 1 again', () => { const p = workerPid(); return p && p !== pid ? p : null; }, 15000);
    }
    /* after a run of its own, and after the first quick death: at once; then doubling */
    assert.deepEqual(waits, [0, 0, 250, 500, 1000]);
    await d.waitLog(/worker 1 \(pid \d+\) was killed by signal 9/);
    assert.deepEqual(await stopAndCheck(d), []);
  } finally {
    await d.stop();
  }
});

test('kill -9 of the broker, again and again: restarted with the same back-off, logged, /health says it is down meanwhile', { skip }, async () => {
  const { httpRequest } = require('./lib/clients');
  const d = await startEmitd({ config: { health_path: '/health' } });
  const brokerPid = () => (d.children().find((c) => c.args === 'emitd: broker') || {}).pid;
  try {
    const waits = [];
    let pid = await waitUntil('the broker', brokerPid);
    await delay(2200);
    for (let i = 0; i < 5; i++) {
      const from = d.logSize();
      process.kill(pid, 'SIGKILL');
      const m = await d.waitLog(/restarting the broker (at once|in (\d+) ms \((\d+) quick deaths in a row\))/, 5000, { from });
      waits.push(m[2] ? Number(m[2]) : 0);
      if (i === 4) {
        /* during the longest wait */
        const h = await httpRequest(d.port, 'GET', '/health');
        assert.equal(h.status, 503);
        assert.deepEqual(JSON.parse(h.body).details.broker, { status: 'down' });
      }
      pid = await waitUntil('the broker again', () => { const p = brokerPid(); return p && p !== pid ? p : null; }, 15000);
    }
    assert.deepEqual(waits, [0, 0, 250, 500, 1000]);
    await d.waitLog(/the broker \(pid \d+\) was killed by signal 9/);
    assert.deepEqual(await stopAndCheck(d), []);
  } finally {
    await d.stop();
  }
});

test('error_log to a file; SIGUSR1 reopens it in the master, the workers and the broker (logrotate)', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-log-'));
  const file = path.join(dir, 'emitd.log');
  const d = await startEmitd({ config: { error_log: file } });
  try {
    await waitUntil('the start in the log file', () => fs.existsSync(file) && /started with 2 workers/.test(fs.readFileSync(file, 'utf8')));
    assert.equal(d.log(), '', 'nothing on standard error');
    fs.renameSync(file, `${file}.1`);
    process.kill(d.pid, 'SIGUSR1');
    const want = [/#master: reopened the log file/, /#worker 1: reopened the log file/, /#worker 2: reopened the log file/,
      /#broker: reopened the log file/];
    await waitUntil('every process in the new file', () => fs.existsSync(file)
      && want.every((re) => re.test(fs.readFileSync(file, 'utf8'))), timeMs(5000));
    assert.doesNotMatch(fs.readFileSync(`${file}.1`, 'utf8'), /reopened/, 'the old file gets nothing more');
    assert.deepEqual(await stopAndCheck(d), []);
    assert.match(fs.readFileSync(file, 'utf8'), /exiting/);
  } finally {
    await d.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an error_log that cannot be opened: a clear message, exit code 1', { skip }, async () => {
  const d = await startEmitd({ config: { error_log: '/nonexistent-dir/emitd.log' }, wait: false });
  try {
    assert.notEqual(await exited(d), 'timeout', 'emitd stopped by itself');
    assert.equal(d.exitCode, 1);
    assert.match(d.log(), /cannot open the error_log \/nonexistent-dir\/emitd\.log: No such file or directory/);
  } finally {
    await d.stop();
  }
});

const notRoot = (typeof process.getuid === 'function' && process.getuid() !== 0) && 'needs root (privilege drop)';
/* Under Valgrind the children's identities and titles are valgrind's to show. */
const underValgrind = VALGRIND && 'reads the children\'s /proc identities: not under Valgrind';

test('user/group: as root, the master keeps root to bind, every child runs as the user and serves', { skip: skip || notRoot || underValgrind || false }, async () => {
  const { connect, ack, closeAll } = require('./lib/clients');
  const ids = (pid) => {
    const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return { uid: st.match(/^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m).slice(1).map(Number),
      gid: st.match(/^Gid:\s+(\d+)\s+(\d+)\s+(\d+)/m).slice(1).map(Number),
      groups: st.match(/^Groups:\s*(.*)$/m)[1].trim() };
  };
  const d = await startEmitd({ config: { user: 'nobody', group: 'nogroup' } });
  let s;
  try {
    await d.waitLog(/the workers and the broker run as nobody \(uid 65534, gid 65534\)/);
    const kids = await waitUntil('three children', () => { const k = d.children(); return k.length === 3 ? k : null; });
    for (const k of kids) {
      const id = ids(k.pid);
      assert.deepEqual(id.uid, [65534, 65534, 65534], `${k.args} uid`);
      assert.deepEqual(id.gid, [65534, 65534, 65534], `${k.args} gid`);
      assert.equal(id.groups, '65534', `${k.args} supplementary groups`);
    }
    assert.equal(ids(d.pid).uid[0], 0, 'the master stays root');
    s = await connect(d.url, '/', 'websocket');
    assert.deepEqual(await ack(s, 'echo', 'still served'), ['still served']);
    closeAll(s);
    assert.deepEqual(await stopAndCheck(d), []);
  } finally {
    if (s) s.close();
    await d.stop();
  }
});

test('a user that does not exist: a clear message, exit code 1', { skip: skip || notRoot || false }, async () => {
  const d = await startEmitd({ config: { user: 'no-such-user-emitd' }, wait: false });
  try {
    assert.notEqual(await exited(d), 'timeout', 'emitd stopped by itself');
    assert.equal(d.exitCode, 1);
    assert.match(d.log(), /user "no-such-user-emitd" does not exist/);
  } finally {
    await d.stop();
  }
});

test('sd_notify (systemd Type=notify): READY with MAINPID, STATUS with the connections, RELOADING then READY on SIGHUP, STOPPING', { skip }, async () => {
  const { spawn } = require('node:child_process');
  const { connect, closeAll } = require('./lib/clients');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-notify-'));
  const sock = path.join(dir, 'notify');
  /* systemd's side: an AF_UNIX datagram socket, each message a line of JSON */
  const py = spawn('/usr/bin/python3', ['-u', '-c', `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
s.settimeout(60)
while True:
    try:
        m = s.recv(4096)
    except socket.timeout:
        break
    print(json.dumps(m.decode()), flush=True)
`, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  const got = [];
  let buf = '';
  py.stdout.on('data', (d) => { buf += d; const l = buf.split('\n'); buf = l.pop(); got.push(...l); });
  let d;
  let s;
  try {
    await waitUntil('the notify socket', () => got.includes('bound'));
    process.env.NOTIFY_SOCKET = sock;
    try {
      d = await startEmitd({});
    } finally {
      delete process.env.NOTIFY_SOCKET;
    }
    const msgs = () => got.filter((l) => l !== 'bound').map((l) => JSON.parse(l));
    const ready = await waitUntil('READY', () => msgs().find((m) => m.includes('READY=1')), timeMs(5000));
    assert.equal(ready, `READY=1\nMAINPID=${d.pid}\nSTATUS=0 connections, 2 workers`);
    s = await connect(d.url, '/', 'websocket');
    await waitUntil('STATUS with the client', () => msgs().some((m) => /^STATUS=1 connections, 2 workers$/.test(m)), timeMs(15000));
    closeAll(s);
    /* A reload: RELOADING (with the monotonic clock systemd asks for), then READY again. */
    process.kill(d.pid, 'SIGHUP');
    const at = await waitUntil('RELOADING', () => msgs().findIndex((m) => m.startsWith('RELOADING=1\n')) + 1, timeMs(10000));
    assert.match(msgs()[at - 1], /^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading the configuration$/);
    await waitUntil('READY after the reload', () => msgs().slice(at).some((m) => /^READY=1\nSTATUS=\d+ connections, 2 workers$/.test(m)), timeMs(10000));
    assert.deepEqual(await stopAndCheck(d), []);
    await waitUntil('STOPPING', () => msgs().some((m) => m.includes('STOPPING=1')), timeMs(5000));
  } finally {
    closeAll(s);
    if (d) await d.stop();
    py.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('shutdown_timeout: SIGTERM kills a worker that does not exit in time; SIGQUIT waits for it', { skip }, async () => {
  const { connect, ack, closeAll } = require('./lib/clients');
  /* worker 1's pid, once it serves (its signal handlers are in place) */
  const workerPid = async (d) => {
    const socks = [];
    try {
      for (let i = 0; i < 8; i++) {
        const s = await connect(d.url, '/', 'websocket');
        socks.push(s);
        if ((await ack(s, 'whoami'))[0].worker === 1) {
          return (d.children().find((c) => /worker 1$/.test(c.args)) || {}).pid;
        }
      }
      return null;
    } finally {
      closeAll(socks);
    }
  };
  /* SIGTERM, worker 1 stopped: killed after shutdown_timeout, the master exits */
  let d = await startEmitd({ config: { shutdown_timeout: 1000 } });
  try {
    const pid = await waitUntil('worker 1', () => workerPid(d), timeMs(5000));
    process.kill(pid, 'SIGSTOP');
    process.kill(d.pid, 'SIGTERM');
    assert.notEqual(await exited(d, timeMs(8000)), 'timeout', 'the master exited');
    assert.match(d.log(), /worker 1 did not exit within shutdown_timeout: SIGKILL/);
  } finally {
    await d.stop();
  }
  /* SIGQUIT: no deadline; the master waits until the worker can finish */
  d = await startEmitd({ config: { shutdown_timeout: 1000 } });
  let stopped;
  try {
    stopped = await waitUntil('worker 1', () => workerPid(d), timeMs(5000));
    process.kill(stopped, 'SIGSTOP');
    process.kill(d.pid, 'SIGQUIT');
    assert.equal(await exited(d, 2500), 'timeout', 'still waiting past shutdown_timeout');
    process.kill(stopped, 'SIGCONT');
    assert.notEqual(await exited(d, timeMs(8000)), 'timeout', 'the master exited once the worker did');
    assert.equal(d.exitCode, 0);
    assert.doesNotMatch(d.log(), /SIGKILL/);
  } finally {
    try { process.kill(stopped, 'SIGCONT'); } catch (_) { /* gone */ }
    await d.stop();
  }
});
