#!/usr/bin/env bash
# Allocations per operation over a 3-node cluster (benches/README.md,
# "Session 14: allocations per request"): starts `ringkv dev` from BIN
# (default: the release build) in a temporary data dir, puts uprobes on
# mimalloc's entry points in BIN (`perf probe`; needs root and perf),
# counts them over the node processes with `perf stat` around one
# `ringkv bench` of OP (get: of keys preloaded first; put: new writes),
# and prints allocations per op. RECORD=1 also records the probes' call
# stacks into DIR/alloc-OP.data (`perf report -i` it, or `perf script`),
# with a shorter run (REQUESTS=3000 is plenty; WARMUP=5000 runs that many
# puts before counting, so the cluster's start (joins, ring builds) is
# left out of a short run). Ports CLIENT_PORT..+2 and
# PEER_PORT..+2 (default 27501, 27601). The probes are removed at the end.
set -u
BIN=${1:-$(dirname "$0")/../target/release/ringkv}
OP=${2:-get}
REQUESTS=${REQUESTS:-20000}
CLIENT_PORT=${CLIENT_PORT:-27501}
PEER_PORT=${PEER_PORT:-27601}
DIR=${DIR:-/tmp/ringkv-allocs}
BIN=$(readlink -f "$BIN")
# perf names the probe group after the binary, with characters it does
# not take in event names replaced.
GROUP=probe_$(basename "$BIN" | tr -c 'a-zA-Z0-9_\n' '_')
mkdir -p "$DIR"
addrs=127.0.0.1:$CLIENT_PORT,127.0.0.1:$((CLIENT_PORT + 1)),127.0.0.1:$((CLIENT_PORT + 2))
perf probe -q -d "$GROUP:*" 2>/dev/null
perf probe -q -x "$BIN" -a mi_malloc_aligned -a mi_realloc_aligned -a mi_zalloc_aligned || exit 1
data=$(mktemp -d /tmp/ringkv-allocs.XXXX)
setsid "$BIN" dev --data-dir "$data" --client-port "$CLIENT_PORT" --peer-port "$PEER_PORT" \
  >"$data/dev.log" 2>&1 </dev/null &
dev=$!
cleanup() {
  kill -TERM "$dev" 2>/dev/null
  wait "$dev" 2>/dev/null
  rm -rf "$data"
  perf probe -q -d "$GROUP:*" 2>/dev/null
}
trap cleanup EXIT
for _ in $(seq 300); do
  grep -q "Ctrl-C stops the cluster" "$data/dev.log" && break
  sleep 0.2
done
pids=$(pgrep -P "$dev" | paste -sd,)
if [ "$OP" = get ]; then
  "$BIN" bench --addrs "$addrs" --concurrency 32 --keys 10000 --op put --requests 10000 >/dev/null
  flags=(--read-ratio 1)
else
  flags=(--op put)
fi
if [ "${WARMUP:-0}" -gt 0 ]; then
  "$BIN" bench --addrs "$addrs" --concurrency 32 --keys 10000 --op put --requests "$WARMUP" >/dev/null
fi
events="$GROUP:mi_malloc_aligned,$GROUP:mi_realloc_aligned,$GROUP:mi_zalloc_aligned"
if [ -n "${RECORD:-}" ]; then
  perf record -q -e "$events" --call-graph dwarf,8192 -p "$pids" -o "$DIR/alloc-$OP.data" 2>/dev/null &
else
  perf stat -e "$events" -p "$pids" -o "$DIR/stat-$OP.txt" &
fi
watcher=$!
sleep 0.5
"$BIN" bench --addrs "$addrs" --concurrency 32 --keys 10000 "${flags[@]}" --requests "$REQUESTS" >/dev/null
kill -INT "$watcher"
wait "$watcher"
if [ -n "${RECORD:-}" ]; then
  echo "call stacks in $DIR/alloc-$OP.data"
else
  awk -v n="$REQUESTS" -v op="$OP" '$1 ~ /^[0-9,]+$/ && $2 ~ /mi_/ {
      gsub(",", "", $1); sub(/.*:/, "", $2); total += $1; printf "%s %.1f per %s\n", $2, $1 / n, op }
    END { printf "allocations %.1f per %s\n", total / n, op }' "$DIR/stat-$OP.txt"
fi
