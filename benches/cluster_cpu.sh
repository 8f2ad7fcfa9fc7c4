#!/usr/bin/env bash
# Cluster load with the nodes' CPU per operation (benches/README.md,
# "Cluster load"): for each ringkv binary given (default: the release
# build), starts `ringkv dev` in a temporary data dir, waits until it
# answers `status`, runs `ringkv bench` puts and gets at 32 in flight and
# prints ops/s, latencies and the node processes' user+system CPU per
# operation (from /proc); then stops the cluster. With several binaries
# (A/B) they take turns, ROUNDS times (default 2). Uses ports 7001-7003
# and 7101-7103, as `ringkv dev` does.
set -u
ROUNDS=${ROUNDS:-2}
[ "$#" -gt 0 ] || set -- "$(dirname "$0")/../target/release/ringkv"
bench_one() {
  local bin=$1 dir
  dir=$(mktemp -d /tmp/ringkv-cpu.XXXX)
  setsid "$bin" dev --data-dir "$dir" >"$dir/dev.log" 2>&1 </dev/null &
  for _ in $(seq 100); do "$bin" admin --addr 127.0.0.1:7003 status >/dev/null 2>&1 && break; sleep 0.2; done
  local pids
  pids=$(pgrep -f "ringkv node .*$dir" | tr '\n' ' ')
  cpu() { local t=0 p; for p in $pids; do read -r -a s <"/proc/$p/stat"; t=$((t + s[13] + s[14])); done; echo "$t"; }
  local op requests c0 c1 out ticks
  ticks=$(getconf CLK_TCK)
  for spec in "put 20000" "get 30000"; do
    read -r op requests <<<"$spec"
    c0=$(cpu)
    out=$("$bin" bench --op "$op" --concurrency 32 --requests "$requests" --keys 10000 2>&1 | tail -1)
    c1=$(cpu)
    echo "$bin $op :: $out :: cpu_us_per_op=$(( (c1 - c0) * 1000000 / ticks / requests ))"
  done
  pkill -INT -f "ringkv dev --data-dir $dir"
  sleep 2
  pkill -9 -f "$dir" 2>/dev/null
  rm -rf "$dir"
}
for _ in $(seq "$ROUNDS"); do
  for bin in "$@"; do bench_one "$bin"; done
done
