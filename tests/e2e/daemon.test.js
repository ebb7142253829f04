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
const { startEmitd, stopAndCheck, isReference } = require('./lib/harness');
const { waitUntil } = require('./lib/clients');

const skip = isReference() && 'emitd-only: pid_file';

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
    const r = await Promise.race([d.exitPromise, new Promise((resolve) => setTimeout(resolve, 20000, 'timeout'))]);
    assert.notEqual(r, 'timeout', 'emitd stopped by itself');
    assert.equal(d.exitCode, 1);
    assert.match(d.log(), /cannot write the pid file \/nonexistent-dir\/emitd\.pid \(2: No such file or directory\)/);
  } finally {
    await d.stop();
  }
});
