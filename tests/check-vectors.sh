#!/usr/bin/env bash
# The committed known-answer vectors must equal what tools/tokmark-vectors
# prints now, through every AES backend this machine has.  A difference means
# either the library changed behaviour (a bug, or SPEC.md and the vectors must
# change together: `make vectors`) or a backend disagrees with the others.
set -u
build=${1:-build}
gen="$build/tokmark-vectors"
[ -x "$gen" ] || { echo "check-vectors: $gen not built"; exit 1; }
status=0
for backend in portable auto; do
    out=$(mktemp -d)
    if [ "$backend" = portable ]; then TOKMARK_BACKEND=portable "$gen" "$out"; else "$gen" "$out"; fi || status=1
    for f in keys prf embed detect; do
        if ! cmp -s "$out/$f.jsonl" "testvectors/$f.jsonl"; then
            echo "check-vectors: testvectors/$f.jsonl differs from the generator's output (backend $backend):"
            diff "testvectors/$f.jsonl" "$out/$f.jsonl" | head -5
            status=1
        fi
    done
    rm -rf "$out"
done
[ $status -eq 0 ] && echo "check-vectors: testvectors/{keys,prf,embed,detect}.jsonl up to date on portable and auto backends"
exit $status
