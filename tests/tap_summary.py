#!/usr/bin/python3
"""tap_summary.py - count every TAP test point of a `meson test` run.

usage: tap_summary.py BUILD/meson-logs/testlog.json

Reads the JSON lines meson writes (one object per test, with the test's
stdout) and counts the top-level TAP points of each test: "ok" is passed
(or skipped with "# SKIP"), "not ok" is failed (unless "# TODO"). Indented
points are a subtest's details and the subtest itself is counted once. A
meson test that did not pass and left no failing point (it crashed, timed
out, broke its plan, or speaks no TAP) counts as one failure; a passing
test without TAP points counts as one pass. Prints the failures, then
"N skipped" and the last line "N passed, N failed". Exit status 1 if
anything failed.
"""

import json
import re
import sys

POINT = re.compile(r"^(not ok|ok)\b(?:\s+\d+)?(?:\s*-?\s*)(.*)$")
DIRECTIVE = re.compile(r"#\s*(SKIP|TODO)\b", re.IGNORECASE)
GOOD_RESULTS = {"OK", "EXPECTEDFAIL"}


def count_points(stdout):
    """Returns (passed, failed, skipped, failed_names, bailed)."""
    passed = failed = skipped = 0
    failed_names = []
    bailed = False
    for line in stdout.splitlines():
        if line.startswith("Bail out!"):
            bailed = True
            continue
        m = POINT.match(line)
        if not m:
            continue
        ok = m.group(1) == "ok"
        rest = m.group(2)
        d = DIRECTIVE.search(rest)
        directive = d.group(1).upper() if d else None
        if directive == "SKIP":
            skipped += 1
        elif directive == "TODO":
            if ok:
                passed += 1
            else:
                skipped += 1
        elif ok:
            passed += 1
        else:
            failed += 1
            failed_names.append(rest.strip())
    return passed, failed, skipped, failed_names, bailed


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    passed = failed = skipped = 0
    failures = []
    try:
        with open(argv[1], encoding="utf-8", errors="replace") as f:
            lines = [ln for ln in f if ln.strip()]
    except OSError as e:
        print("tap_summary: cannot read %s: %s" % (argv[1], e.strerror))
        lines = []
    if not lines:
        print("tap_summary: no test results recorded")
        print("0 passed, 1 failed")
        return 1
    for ln in lines:
        try:
            t = json.loads(ln)
        except ValueError:
            failed += 1
            failures.append("<unreadable testlog line>")
            continue
        name = t.get("name", "?")
        result = t.get("result", "ERROR")
        p, f, s, names, bailed = count_points(t.get("stdout") or "")
        passed += p
        failed += f
        skipped += s
        failures += ["%s: %s" % (name, n) for n in names]
        if result == "SKIP" and p + f == 0:
            skipped += 1
        elif result not in GOOD_RESULTS and f == 0:
            failed += 1
            why = "bail out" if bailed else result.lower()
            failures.append("%s: %s (exit status %s)" % (name, why, t.get("returncode")))
        elif result in GOOD_RESULTS and p + f + s == 0:
            passed += 1
    for f in failures:
        print("FAILED %s" % f)
    print("%d skipped" % skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
