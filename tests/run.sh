#!/usr/bin/env bash
# Runs every cmocka test binary in $1/tests and the vector check; prints one
# closing line "N passed, N failed" (test binaries, each a cmocka group).
set -u
build=${1:-build}
pass=0; fail=0; failed=()
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    if "$t"; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$(basename "$t")"); fi
done
if bash tests/check-vectors.sh "$build"; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("check-vectors"); fi
[ ${#failed[@]} -eq 0 ] || echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
