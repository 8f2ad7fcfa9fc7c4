#!/usr/bin/env bash
# Allocations per RESP command on one node (benches/README.md, "Session
# 25: three small cuts on the RESP path"): starts a 1-node ringkv from BIN
# (default: the release build; N=1 R=1 W=1, LSM, `--resp-listen`) in a
# temporary data dir, fills it with 100,000 redis-benchmark SETs, puts
# uprobes on mimalloc's entry points in BIN (`perf probe`; needs root,
# perf and redis-benchmark), counts them over the node with `perf stat`
# around `redis-benchmark -t CMD -c 50 -d 100 -r 100000 -n REQUESTS`
# (CMD get or set, default get) and prints allocations per command.
# RECORD=1 records the probes' call stacks into DIR/resp-alloc-CMD.data
# instead (`perf script -i` it). Ports RESP_PORT (default 16701; the
# node's peer and client ports are +1000 and +900). The probes are
# removed at the end.
set -u
BIN=$(readlink -f "${1:-$(dirname "$0")/../target/release/ringkv}")
CMD=${2:-get}
REQUESTS=${REQUESTS:-100000}
RESP_PORT=${RESP_PORT:-16701}
DIR=${DIR:-/tmp/ringkv-allocs}
GROUP=probe_$(basename "$BIN" | tr -c 'a-zA-Z0-9_\n' '_')
mkdir -p "$DIR"
perf probe -q -d "$GROUP:*" 2>/dev/null
perf probe -q -x "$BIN" -a mi_malloc_aligned -a mi_realloc_aligned -a mi_zalloc_aligned || exit 1
data=$(mktemp -d /tmp/ringkv-resp-allocs.XXXX)
"$BIN" node --id a1 --listen "127.0.0.1:$((RESP_PORT + 1000))" \
  --client-listen "127.0.0.1:$((RESP_PORT + 900))" --resp-listen "127.0.0.1:$RESP_PORT" \
  --data-dir "$data" --n 1 --r 1 --w 1 2>"$data/node.log" &
node=$!
cleanup() {
  kill "$node" 2>/dev/null
  wait "$node" 2>/dev/null
  rm -rf "$data"
  perf probe -q -d "$GROUP:*" 2>/dev/null
}
trap cleanup EXIT
for _ in $(seq 100); do
  redis-cli -p "$RESP_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-benchmark -h 127.0.0.1 -p "$RESP_PORT" -t set -c 50 -d 100 -r 100000 -n 100000 -q >/dev/null 2>&1
if [ -n "${RECORD:-}" ]; then
  perf record -q -e "$GROUP:mi_malloc_aligned" --call-graph dwarf,8192 -p "$node" \
    -o "$DIR/resp-alloc-$CMD.data" 2>/dev/null &
else
  perf stat -e "$GROUP:mi_malloc_aligned,$GROUP:mi_realloc_aligned,$GROUP:mi_zalloc_aligned" \
    -p "$node" -o "$DIR/resp-alloc-$CMD.txt" &
fi
watcher=$!
sleep 0.3
redis-benchmark -h 127.0.0.1 -p "$RESP_PORT" -t "$CMD" -c 50 -d 100 -r 100000 -n "$REQUESTS" -q >/dev/null 2>&1
kill -INT "$watcher"
wait "$watcher"
[ -n "${RECORD:-}" ] && exit 0
awk -v n="$REQUESTS" -v cmd="$CMD" '$1 ~ /^[0-9,]+$/ {
    gsub(",", "", $1); t += $1; sub(/.*:/, "", $2); printf "%s %.2f  ", $2, $1 / n
  } END { printf "total %.2f per %s\n", t / n, cmd }' "$DIR/resp-alloc-$CMD.txt"
