'use strict';
/*
 * harness.js - start and stop a real emitd for the end-to-end tests.
 *
 * startEmitd() writes a libconfig file (listen on a free 127.0.0.1 port,
 * workers = 2, the test handler scripts), starts $EMITD_BIN -c <file> with its
 * stdout and stderr captured to a file, and resolves once the port accepts
 * connections. It fails with the tail of that log, never hangs: the wait is
 * bounded and an early exit of the daemon is reported at once. stop() sends
 * SIGTERM to the PID we started, then SIGKILL after a bounded wait; every
 * daemon still alive when the test process exits is killed by PID.
 *
 * The same settings are also written as <config>.json beside the libconfig
 * file so that a reference server (a script ending in .js given as EMITD_BIN)
 * can read them; that is how the suite itself is checked against Node's
 * socket.io.
 *
 * Under `tests/run --valgrind` (the meson test setup "valgrind"),
 * EMITD_VALGRIND names valgrind: every emitd then runs under memcheck with
 * its reports in <dir>/valgrind.<pid>.log, one per process, and stop() and
 * runEmitd() fail when any of them is not empty. EMITD_TIME_SCALE stretches
 * the harness's own waits (start, stop, waitLog) and timeMs() for tests.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const HANDLERS = path.resolve(__dirname, '..', 'handlers');
const VALGRIND = process.env.EMITD_VALGRIND || '';
const VALGRIND_SUPP = process.env.EMITD_VALGRIND_SUPP || '';
const TIME_SCALE = Math.max(1, Number(process.env.EMITD_TIME_SCALE) || 1);
/* A duration stretched by EMITD_TIME_SCALE (slow runs: Valgrind). */
const timeMs = (ms) => ms * TIME_SCALE;
const START_TIMEOUT_MS = timeMs(20000);   /* sanitizer builds start slowly */
const STOP_TIMEOUT_MS = timeMs(10000);

const live = new Set();

process.on('exit', () => {
  for (const d of live) {
    for (const pid of [d.pid, ...d.knownChildren]) {
      try { process.kill(pid, 'SIGKILL'); } catch (_) { /* already gone */ }
    }
  }
});

function emitdBin() {
  const bin = process.env.EMITD_BIN;
  if (!bin) throw new Error('EMITD_BIN is not set: it must name the built emitd (build/emitd)');
  if (!fs.existsSync(bin)) throw new Error(`EMITD_BIN=${bin} does not exist: build emitd first`);
  return path.resolve(bin);
}

/* Whether the emitd under test is an AddressSanitizer build (-Dsanitize=true):
 * its RSS then includes ASan's quarantine of freed blocks, as memcheck's does. */
function isSanitized() {
  const bin = process.env.EMITD_BIN || '';
  if (isReference() || !fs.existsSync(bin)) return false;
  return fs.readFileSync(bin).includes('__asan_init');
}

function isReference() {
  return /\.js$/.test(process.env.EMITD_BIN || '');
}

/* Valgrind's options for a process whose reports go to dir. */
function memcheckArgs(dir) {
  /*
   * --run-libc-freeres=no: glibc's exit-time cleanup clears environ, which
   * would make the environment that em_proc_title_init() moved look lost.
   */
  const vg = ['-q', '--tool=memcheck', `--log-file=${path.join(dir, 'valgrind.%p.log')}`,
    '--leak-check=full', '--show-leak-kinds=definite', '--errors-for-leak-kinds=definite',
    '--num-callers=30', '--run-libc-freeres=no'];
  if (VALGRIND_SUPP) vg.push(`--suppressions=${VALGRIND_SUPP}`);
  return vg;
}

/* The command that runs emitd with args: [file, argv]. */
function emitdCommand(args, dir) {
  const bin = emitdBin();
  if (isReference()) return [process.execPath, [bin, ...args]];
  if (!VALGRIND) return [bin, args];
  return [VALGRIND, [...memcheckArgs(dir), bin, ...args]];
}

/*
 * What memcheck reported for the processes run in dir: with -q a log is
 * empty unless there was an error or a definite leak. Killed processes
 * leave what they had written.
 */
function memcheckReports(dir) {
  if (!VALGRIND || !dir) return [];
  let names = [];
  try { names = fs.readdirSync(dir).filter((n) => /^valgrind\.\d+\.log$/.test(n)); } catch (_) { return []; }
  const reports = [];
  for (const n of names.sort()) {
    let text = '';
    try { text = fs.readFileSync(path.join(dir, n), 'utf8'); } catch (_) { continue; }
    if (text.trim()) reports.push(`${n}:\n${text.slice(0, 6000)}`);
  }
  return reports;
}

/* A port that was free a moment ago on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/* True when nothing listens on 127.0.0.1:port and we may bind it. */
function portIsFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

function lcString(s) {
  return '"' + String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"')
    .replace(/\n/g, '\\n').replace(/\t/g, '\\t') + '"';
}

function lcValue(v, indent) {
  if (typeof v === 'string') return lcString(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`cannot write ${v} in libconfig`);
    return String(v);
  }
  if (Array.isArray(v)) {
    const inner = indent + '  ';
    if (v.some((x) => x !== null && typeof x === 'object')) {
      return '(\n' + v.map((x) => inner + lcValue(x, inner)).join(',\n') + '\n' + indent + ')';
    }
    return '[ ' + v.map((x) => lcValue(x, inner)).join(', ') + ' ]';
  }
  if (v && typeof v === 'object') {
    const inner = indent + '  ';
    const body = Object.entries(v).map(([k, x]) => `${inner}${k} = ${lcValue(x, inner)};`);
    return '{\n' + body.join('\n') + '\n' + indent + '}';
  }
  throw new Error(`cannot write ${typeof v} in libconfig`);
}

/* Serialise a plain object as a libconfig file (top-level settings). */
function toLibconfig(settings) {
  return Object.entries(settings).map(([k, v]) => `${k} = ${lcValue(v, '')};`).join('\n') + '\n';
}

function handler(name) {
  return path.join(HANDLERS, name);
}

/* The namespaces every test server serves. */
function defaultNamespaces() {
  return [
    { name: '/', script: handler('main.lua') },
    { name: '/custom', script: handler('main.lua') },
    { name: '/reject', script: handler('reject.lua') },
    { name: '/crash', script: handler('crash.lua') },
  ];
}

/* The raw Engine.IO echo endpoint with small ping values. */
function defaultEngineio() {
  return [
    { path: '/engine.io/', script: handler('eio_echo.lua'), ping_interval: 300,
      ping_timeout: 200, max_payload: 1000 },
  ];
}

function tail(file, bytes = 4000) {
  try {
    const buf = fs.readFileSync(file);
    return buf.subarray(Math.max(0, buf.length - bytes)).toString('utf8');
  } catch (e) {
    return `<no log: ${e.message}>`;
  }
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/* PIDs of the direct children of pid (Linux /proc). */
function childrenOf(pid) {
  let out = [];
  try {
    for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
      const s = fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (s) out = out.concat(s.split(/\s+/).map(Number));
    }
  } catch (_) { /* process gone */ }
  return out;
}

/* The command line as ps shows it (after setproctitle-style rewriting). */
function processArgs(pid) {
  try {
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ').trim();
    /* Under Valgrind the command line stays valgrind's; the title is in comm. */
    if (VALGRIND && args.startsWith(VALGRIND)) return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    return args;
  } catch (_) {
    return null;
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);   /* a zombie is dead */
  } catch (_) {
    return false;
  }
}

/* Resolve when 127.0.0.1:port accepts a TCP connection; bounded. */
async function waitListening(port, daemon, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (daemon.exited) {
      throw new Error(`emitd did not start (exit ${daemon.exitInfo()}); log tail:\n${tail(daemon.logPath)}`);
    }
    const ok = await new Promise((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline || attempt > 2000) {
      throw new Error(`emitd did not start listening on 127.0.0.1:${port} within ${timeoutMs} ms; log tail:\n${tail(daemon.logPath)}`);
    }
    await delay(25);
  }
}

class Daemon {
  constructor(child, opts) {
    this.child = child;
    this.pid = child.pid;
    this.port = opts.port;
    this.url = opts.port ? `http://127.0.0.1:${opts.port}` : null;
    this.dir = opts.dir;
    this.confPath = opts.confPath;
    this.logPath = opts.logPath;
    this.knownChildren = new Set();
    this.exited = false;
    this.exitCode = null;
    this.exitSignal = null;
    this.exitPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exited = true;
        this.exitCode = code;
        this.exitSignal = signal;
        live.delete(this);
        resolve({ code, signal });
      });
    });
  }

  exitInfo() {
    return this.exitSignal ? `signal ${this.exitSignal}` : `code ${this.exitCode}`;
  }

  /* Everything the daemon wrote so far. */
  log() {
    try { return fs.readFileSync(this.logPath, 'utf8'); } catch (_) { return ''; }
  }

  logTail(bytes) {
    return tail(this.logPath, bytes);
  }

  /* Current direct children as [{pid, args}]. */
  children() {
    const kids = childrenOf(this.pid).filter(isAlive);
    kids.forEach((k) => this.knownChildren.add(k));
    return kids.map((pid) => ({ pid, args: processArgs(pid) }));
  }

  /* The log from byte `from` on. */
  logFrom(from) {
    try { return fs.readFileSync(this.logPath).subarray(from).toString('utf8'); } catch (_) { return ''; }
  }

  /* The log's length now: a mark for waitLog's `from`. */
  logSize() {
    try { return fs.statSync(this.logPath).size; } catch (_) { return 0; }
  }

  /* Wait until the log (from byte `from` on) matches re (bounded by the
   * deadline, which EMITD_TIME_SCALE stretches). */
  async waitLog(re, timeoutMs = 5000, { from = 0 } = {}) {
    const limit = timeMs(timeoutMs);
    const deadline = Date.now() + limit;
    for (let i = 0; i <= Math.ceil(limit / 20); i++) {
      const m = this.logFrom(from).match(re);
      if (m) return m;
      if (Date.now() > deadline) break;
      await delay(20);
    }
    throw new Error(`emitd log did not match ${re} within ${timeoutMs} ms; tail:\n${this.logTail(3000)}`);
  }

  /*
   * Wait for the line of a client closed for breaking `limit` (of session
   * `sid` when given), logged after byte `from`. Past ten such lines a
   * second a worker sums the rest up in one line naming their limits; that
   * line counts too (its m[1], m[2] are then undefined).
   */
  waitViolation(limit, { sid = '\\S+', from = 0, timeoutMs = 5000 } = {}) {
    const one = `closing client 127\\.0\\.0\\.1 session (${sid}): (.*) \\(limit "${limit}"\\)`;
    const sum = `\\d+ more clients closed for breaking limits \\([^)]*\\b${limit}\\b[^)]*\\) in the last second`;
    return this.waitLog(new RegExp(`${one}|${sum}`), timeoutMs, { from });
  }

  /*
   * SIGTERM, then SIGKILL after a bounded wait. Children still alive after
   * the master is gone are killed by PID too. Returns {code, signal,
   * killed, orphans}.
   */
  async stop(timeoutMs = STOP_TIMEOUT_MS, { memcheck = true } = {}) {
    this.children();
    let killed = false;
    if (!this.exited) {
      try { process.kill(this.pid, 'SIGTERM'); } catch (_) { /* gone */ }
      let t;
      const timer = new Promise((resolve) => { t = setTimeout(resolve, timeoutMs, 'timeout'); });
      const r = await Promise.race([this.exitPromise, timer]);
      clearTimeout(t);
      if (r === 'timeout') {
        killed = true;
        try { process.kill(this.pid, 'SIGKILL'); } catch (_) { /* gone */ }
        await this.exitPromise;
      }
    }
    /* Give the children a bounded moment to follow their master. */
    let orphans = [];
    for (let i = 0; i < 100; i++) {
      orphans = [...this.knownChildren].filter(isAlive);
      if (orphans.length === 0) break;
      await delay(50);
    }
    for (const pid of orphans) {
      try { process.kill(pid, 'SIGKILL'); } catch (_) { /* gone */ }
    }
    const reports = memcheckReports(this.dir);
    if (memcheck && reports.length) {
      throw new Error(`valgrind memcheck found errors in emitd:\n${reports.join('\n')}`);
    }
    return { code: this.exitCode, signal: this.exitSignal, killed, orphans, reports };
  }
}

/*
 * Start emitd. opts.config: settings merged over the defaults (listen,
 * workers = 2, log_level, namespaces, engineio, cors); a value of undefined
 * removes a default. opts.args: argument list instead of ["-c", conf].
 * opts.port: a fixed port (else a free one). opts.wait: false to skip the
 * wait for the listener.
 */
async function startEmitd(opts = {}) {
  const bin = emitdBin();
  const port = opts.port || await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-e2e-'));
  const settings = {
    listen: `127.0.0.1:${port}`,
    workers: 2,
    log_level: 'info',
    max_payload: 100000,
    cors: { origins: ['http://good.example'], credentials: true },
    namespaces: defaultNamespaces(),
    engineio: defaultEngineio(),
    ...(opts.config || {}),
  };
  for (const k of Object.keys(settings)) if (settings[k] === undefined) delete settings[k];
  const confPath = path.join(dir, 'emitd.conf');
  fs.writeFileSync(confPath, toLibconfig(settings));
  fs.writeFileSync(confPath + '.json', JSON.stringify(settings, null, 2));
  const logPath = path.join(dir, 'emitd.log');
  const logFd = fs.openSync(logPath, 'w');
  const args = opts.args || ['-c', confPath];
  const [cmd, argv] = emitdCommand(args, dir);
  let child;
  try {
    child = spawn(cmd, argv, { cwd: opts.cwd || dir, stdio: ['ignore', logFd, logFd], env: process.env });
  } finally {
    fs.closeSync(logFd);
  }
  const daemon = new Daemon(child, { port, dir, confPath, logPath });
  live.add(daemon);
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (e) => reject(new Error(`cannot start ${bin}: ${e.message}`)));
  });
  if (opts.wait !== false) {
    try {
      await waitListening(port, daemon, START_TIMEOUT_MS);
    } catch (e) {
      await daemon.stop(2000);
      throw e;
    }
  }
  return daemon;
}

/*
 * Run emitd to completion (for -v, -t): resolves {code, signal, out} with
 * stdout and stderr together; killed after timeoutMs.
 */
function runEmitd(args, { timeoutMs = 10000, cwd } = {}) {
  const vgdir = VALGRIND ? fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-vg-')) : null;
  const [cmd, argv] = emitdCommand(args, vgdir);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd: cwd || os.tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => { try { child.kill('SIGKILL'); } catch (_) { /* gone */ } }, timeMs(timeoutMs));
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const reports = memcheckReports(vgdir);
      if (vgdir) fs.rmSync(vgdir, { recursive: true, force: true });
      if (reports.length) reject(new Error(`valgrind memcheck found errors in emitd ${args.join(' ')}:\n${reports.join('\n')}`));
      else resolve({ code, signal, out });
    });
  });
}

/*
 * Stop the daemon and check what a user sees at shutdown: it exits by
 * itself on SIGTERM, leaves no process behind, and (in sanitizer builds)
 * reported no memory or undefined-behaviour error. Returns a list of
 * problems (empty when fine).
 */
async function stopAndCheck(daemon) {
  const r = await daemon.stop(STOP_TIMEOUT_MS, { memcheck: false });
  const problems = [];
  if (r.killed) problems.push(`emitd did not exit within ${STOP_TIMEOUT_MS / 1000} s of SIGTERM (killed)`);
  else if (!(r.code === 0 || (isReference() && r.signal === 'SIGTERM'))) {
    problems.push(`emitd exited with ${daemon.exitInfo()} on SIGTERM`);
  }
  if (r.orphans.length) problems.push(`child processes outlived the master: ${r.orphans.join(' ')}`);
  const log = daemon.log();
  const san = log.match(/(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)[^\n]*/);
  if (san) problems.push(`sanitizer report: ${san[0]}`);
  for (const rep of r.reports) problems.push(`valgrind memcheck report: ${rep}`);
  if (problems.length) problems.push(`log tail:\n${daemon.logTail(3000)}`);
  return problems;
}

module.exports = {
  HANDLERS, startEmitd, runEmitd, stopAndCheck, freePort, portIsFree, toLibconfig,
  handler, delay, tail, isAlive, processArgs, childrenOf, isReference, isSanitized, timeMs, VALGRIND,
  memcheckArgs, memcheckReports,
};
