'use strict';
/*
 * examples.js - run a shipped example (deploy/examples/<name>/emitd.conf)
 * unchanged for the seed suites, and run a seed's own client example.
 *
 * startExample() starts emitd with `-c <the shipped file>` and `-g` giving
 * only what a test machine needs instead: a free public port, the number of
 * workers, and a free port for the admin listener (its group is the
 * shipped one, with only its "listen" replaced, so the shipped keys stay).
 * With `vars`, the shipped "vars" group goes the same way, with only the
 * named values replaced (the stand-in backend's URL on a free port).
 * Everything else - namespaces, scripts, limits, texts - is the file's.
 *
 * runSeedClient() copies a seed's client example (tests/e2e/seeds/) as it
 * stands, fills in its placeholders (the server's URL, keys, ids: each a
 * literal string of the example replaced by the test's value), and runs it
 * as its own process with node or Debian's python3; its output lines are
 * collected for the test to wait on.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startEmitd, freePort, delay } = require('./harness');

const REPO = path.resolve(__dirname, '..', '..', '..');
const EXAMPLES = path.join(REPO, 'deploy', 'examples');
const SEEDS = path.resolve(__dirname, '..', 'seeds');

function exampleConf(name) {
  return path.join(EXAMPLES, name, 'emitd.conf');
}

/* The shipped file's top-level "admin = { ... };" group, as text. */
function adminGroup(text) {
  const m = text.match(/^admin\s*=\s*\{[\s\S]*?^\};/m);
  return m ? m[0] : null;
}

/* The shipped "vars = { ... };" with the values of `vars` replaced. */
function varsGroup(text, vars) {
  const m = text.match(/^vars\s*=\s*\{[\s\S]*?^\};/m);
  if (!m) throw new Error('the example has no vars group');
  let g = m[0];
  for (const [k, v] of Object.entries(vars)) {
    const re = new RegExp(`^(\\s*${k}\\s*=\\s*)[^;]*;`, 'm');
    if (!re.test(g)) throw new Error(`the example's vars have no ${k}`);
    g = g.replace(re, `$1${JSON.stringify(v)};`);
  }
  return g;
}

async function startExample(name, { workers = 2, extra = '', env, vars } = {}) {
  const conf = exampleConf(name);
  const text = fs.readFileSync(conf, 'utf8');
  const port = await freePort();
  let over = `listen = "127.0.0.1:${port}"; workers = ${workers};\n`;
  let adminPort = null;
  let adminKey = null;
  const admin = adminGroup(text);
  if (admin) {
    adminPort = await freePort();
    over += admin.replace(/listen\s*=\s*"[^"]*"/, `listen = "127.0.0.1:${adminPort}"`) + '\n';
    adminKey = admin.match(/keys\s*=\s*\[\s*"([^"]+)"/)[1];
  }
  if (vars) over += varsGroup(text, vars) + '\n';
  const saved = {};
  for (const [k, v] of Object.entries(env || {})) { saved[k] = process.env[k]; process.env[k] = v; }
  let d;
  try {
    d = await startEmitd({ port, args: ['-c', conf, '-g', over + extra] });
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  }
  d.adminPort = adminPort;
  d.adminKey = adminKey;
  /* A call of the backend API: resolves {status, body (parsed JSON)}. */
  d.api = async (method, p, body, { key = adminKey } = {}) => {
    const headers = { 'Content-Type': 'application/json' };
    if (key) headers.Authorization = `Bearer ${key}`;
    const r = await fetch(`http://127.0.0.1:${adminPort}${p}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10000),
    });
    const t = await r.text();
    let json = null;
    try { json = JSON.parse(t); } catch (_) { /* not JSON */ }
    return { status: r.status, body: json, text: t };
  };
  return d;
}

/* A 'data' handler that calls fn(line) for each whole line; .flush() the rest. */
function lineReader(fn) {
  let partial = '';
  const take = (d) => {
    partial += d;
    const parts = partial.split('\n');
    partial = parts.pop();
    parts.forEach(fn);
  };
  take.flush = () => { if (partial) fn(partial); partial = ''; };
  return take;
}

/*
 * Run seeds/<file> with its placeholders replaced ([[from, to], ...], every
 * occurrence, each one required to be there), and `driver` code after it. Resolves at once to
 * {lines, waitLine(re, ms), stop()}.
 */
function runSeedClient(file, replacements, { python = false, driver = '' } = {}) {
  let text = fs.readFileSync(path.join(SEEDS, file), 'utf8');
  for (const [from, to] of replacements) {
    if (!text.includes(from)) throw new Error(`${file} has no "${from}" to replace`);
    text = text.split(from).join(to);
  }
  /* An example that only defines (studio.md's class) is used by a driver
   * the test appends after it, the example itself left as it is. */
  text += driver;
  /* Beside tests/e2e so that node resolves socket.io-client from its node_modules. */
  const dir = fs.mkdtempSync(path.join(path.resolve(__dirname, '..'), '.seed-'));
  const copy = path.join(dir, file);
  fs.writeFileSync(copy, text);
  const cmd = python ? '/usr/bin/python3' : process.execPath;
  const child = spawn(cmd, python ? ['-u', copy] : [copy], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  const lines = [];
  const take = lineReader((l) => lines.push(l));
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  let exited = false;
  child.once('close', () => { take.flush(); exited = true; });
  return {
    lines,
    child,
    /* Wait until the output (lines from index `from` on) matches re. */
    async waitLine(re, ms = 5000, from = 0) {
      const deadline = Date.now() + ms;
      for (let i = 0; i < 100000; i++) {
        const m = lines.slice(from).join('\n').match(re);
        if (m) return m;
        if (Date.now() > deadline || (exited && i > 0)) break;
        await delay(20);
      }
      throw new Error(`the seed client ${file} printed nothing matching ${re}; it printed:\n${lines.join('\n')}`);
    },
    async stop() {
      if (!exited) {
        try { child.kill('SIGKILL'); } catch (_) { /* gone */ }
        for (let i = 0; i < 100 && !exited; i++) await delay(20);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/*
 * A python-socketio client (lib/py_client.py) with opts (url,
 * socketio_path, namespaces, headers, auth, transports, emit): what it saw,
 * as parsed JSON lines in .seen; waitFor(fn) waits for a line fn accepts.
 */
function pyClient(opts) {
  const child = spawn('/usr/bin/python3', ['-u', path.join(__dirname, 'py_client.py'), JSON.stringify(opts)],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  const seen = [];
  let errors = '';
  let exited = false;
  child.stdout.on('data', lineReader((l) => { if (l.trim()) seen.push(JSON.parse(l)); }));
  child.stderr.on('data', (d) => { errors += d; });
  child.once('close', () => { exited = true; });
  return {
    seen,
    async waitFor(what, fn, ms = 10000) {
      const deadline = Date.now() + ms;
      for (let i = 0; i < 100000; i++) {
        const hit = seen.find(fn);
        if (hit) return hit;
        if (Date.now() > deadline || exited) break;
        await delay(20);
      }
      throw new Error(`python-socketio: no ${what}; it saw ${JSON.stringify(seen)}\n${errors}`);
    },
    events(name) { return seen.filter((x) => x.event === name).map((x) => x.args); },
    async stop() {
      if (!exited) {
        child.stdin.end();
        for (let i = 0; i < 150 && !exited; i++) await delay(20);
        if (!exited) child.kill('SIGKILL');
      }
    },
  };
}

module.exports = { REPO, EXAMPLES, exampleConf, startExample, runSeedClient, pyClient };
