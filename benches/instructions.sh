#!/usr/bin/env bash
# Instructions per local call, counted by callgrind: repeatable from run to
# run, unlike time, so small differences (one filter) are visible.
# Needs valgrind (Debian: apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --example call_cost
bin=target/release/examples/call_cost
calls=${CALLS:-20000}
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-12s %s\n' configuration instructions/call
for config in direct tower tower_shared sync pass1 pass5 logging mutex access future multicast3; do
    base=$(count "$config" 0)
    total=$(count "$config" "$calls")
    printf '%-12s %d\n' "$config" $(( (total - base) / calls ))
done
