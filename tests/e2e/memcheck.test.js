'use strict';
/*
 * memcheck.test.js - the Valgrind run catches what it is there for. Under
 * `tests/run --valgrind` it runs a small program with one heap over-read and
 * one definite leak (memcheck_probe.c) with the same memcheck options as
 * every emitd, and checks that the harness reports both; a clean run of
 * emitd -t reports nothing. Skipped outside that run.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { VALGRIND, memcheckArgs, memcheckReports, runEmitd } = require('./lib/harness');

const skip = VALGRIND ? false : 'only under tests/run --valgrind';

test('memcheck reports a heap over-read and a definite leak', { skip }, () => {
  const probe = process.env.MEMCHECK_PROBE;
  assert.ok(probe && fs.existsSync(probe), `MEMCHECK_PROBE=${probe} is not built`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emitd-vg-probe-'));
  try {
    const r = spawnSync(VALGRIND, [...memcheckArgs(dir), probe], { timeout: 60000 });
    assert.equal(r.status, 0, `the probe ran: ${r.stderr}`);
    const reports = memcheckReports(dir).join('\n');
    assert.match(reports, /Invalid read of size 1/);
    assert.match(reports, /64 bytes in 1 blocks are definitely lost/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('emitd -t runs clean under memcheck', { skip }, async () => {
  const r = await runEmitd(['-t']);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /test is successful/);
});
