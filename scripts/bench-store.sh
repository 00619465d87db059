#!/usr/bin/env bash
# Runs the storage benchmarks recorded in docs/benchmarks.md, three times each, printing the
# summary line of every run. Usage: scripts/bench-store.sh [runs]   (needs a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p catmq >/dev/null 2>&1
B=target/release/catmq
RUNS=${1:-3}
run() {
  local name=$1; shift
  for i in $(seq "$RUNS"); do
    out=$("$B" bench store "$@" 2>&1) || { echo "$name: FAILED"; echo "$out"; exit 1; }
    echo "$name #$i: $(echo "$out" | grep -E '^(append|read|lookup|recovery):|^fsyncs' | tr '\n' ' ')"
  done
}
run "async 1 appender"        --count 1000000
run "async 4 appenders"       --count 1000000 --appenders 4
run "async 1 appender b32"    --count 2000000 --batch 32
run "sync 1 appender"         --flush sync --count 5000
run "sync 16 tasks"           --flush sync --tasks --appenders 16 --count 30000
run "sync 64 tasks"           --flush sync --tasks --appenders 64 --count 60000
run "sync 64 threads"         --flush sync --appenders 64 --count 60000
run "read warm"               --mode read --count 1000000
run "read cold"               --mode read --cold --count 1000000
run "key lookup"              --mode key-lookup --count 1000000 --lookups 20000
run "recovery 1GiB after cp"  --mode recovery --count 900000 --checkpoint-interval-secs 100000
run "recovery 1GiB before cp" --mode recovery --count 900000 --checkpoint-before
for n in 1000000 4000000; do
  /usr/bin/time -f '%M' -o /tmp/bench-rss.txt "$B" bench store --count "$n" >/dev/null 2>&1
  echo "peak RSS, async append of $n x 1 KiB: $(tail -1 /tmp/bench-rss.txt) KiB"
done
