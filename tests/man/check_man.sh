#!/bin/sh
# check_man.sh - every man page renders without a warning (groff -ww, the
# man macros). Prints TAP: one test per page; a page fails when groff
# writes anything to standard error or exits non-zero.
n=0
echo "1..$#"
for page in "$@"; do
  n=$((n + 1))
  out=$(groff -ww -man -Tutf8 -z "$page" 2>&1)
  rc=$?
  if [ $rc -eq 0 ] && [ -z "$out" ]; then
    echo "ok $n - $(basename "$page") renders without warnings"
  else
    echo "not ok $n - $(basename "$page") (groff exit $rc)"
    printf '%s\n' "$out" | sed 's/^/# /'
  fi
done
