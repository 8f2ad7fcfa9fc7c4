#!/usr/bin/env bash
# Allocations per operation (benches/README.md, "Session 14: allocations
# per request"; the RESP ops since "Session 25: three small cuts on the
# RESP path"): puts uprobes on mimalloc's entry points in BIN (default:
# the release build; `perf probe`, needs root and perf), counts them with
# `perf stat` over the node processes around one load of OP, and prints
# allocations per op. OP is one of
# - get, put: over a 3-node cluster (`ringkv dev` in a temporary data
#   dir), one `ringkv bench` at 32 in flight (get: of keys preloaded
#   first; put: new writes); WARMUP=5000 runs that many puts before
#   counting, so the cluster's start (joins, ring builds) is left out of
#   a short run;
# - resp-get, resp-set: over one node (N=1 R=1 W=1, `--resp-listen`)
#   filled with 100,000 SETs first, one `redis-benchmark -t get|set -c 50
#   -d 100 -r 100000` (needs redis-benchmark and redis-cli).
# RECORD=1 records the probes' call stacks into DIR/alloc-OP.data instead
# (`perf report -i` it, or `perf script`), with a shorter run
# (REQUESTS=3000 is plenty). Ports CLIENT_PORT..+2 and PEER_PORT..+2
# (default 27501, 27601; one node takes the first of each, and its RESP
# port is CLIENT_PORT + 3). The probes are removed at the end.
set -u
BIN=${1:-$(dirname "$0")/../target/release/ringkv}
OP=${2:-get}
REQUESTS=${REQUESTS:-20000}
CLIENT_PORT=${CLIENT_PORT:-27501}
PEER_PORT=${PEER_PORT:-27601}
RESP_PORT=$((CLIENT_PORT + 3))
DIR=${DIR:-/tmp/ringkv-allocs}
BIN=$(readlink -f "$BIN")
case $OP in
  get | put | resp-get | resp-set) ;;
  *)
    echo "OP must be get, put, resp-get or resp-set, not $OP" >&2
    exit 2
    ;;
esac
# The probes' group is named here: perf's default (after the binary, cut
# at its first character an event name does not take, so `probe_ringkv`
# for a binary named `ringkv-new`) did not match what this script
# counted and removed.
GROUP=ringkv_allocs
mkdir -p "$DIR"
addrs=127.0.0.1:$CLIENT_PORT,127.0.0.1:$((CLIENT_PORT + 1)),127.0.0.1:$((CLIENT_PORT + 2))
perf probe -q -d "$GROUP:*" 2>/dev/null
perf probe -q -x "$BIN" -a "$GROUP:mi_malloc_aligned=mi_malloc_aligned" \
  -a "$GROUP:mi_realloc_aligned=mi_realloc_aligned" \
  -a "$GROUP:mi_zalloc_aligned=mi_zalloc_aligned" || exit 1
data=$(mktemp -d /tmp/ringkv-allocs.XXXX)
if [ "${OP#resp-}" = "$OP" ]; then
  setsid "$BIN" dev --data-dir "$data" --client-port "$CLIENT_PORT" --peer-port "$PEER_PORT" \
    >"$data/dev.log" 2>&1 </dev/null &
else
  "$BIN" node --id a1 --listen "127.0.0.1:$PEER_PORT" --client-listen "127.0.0.1:$CLIENT_PORT" \
    --resp-listen "127.0.0.1:$RESP_PORT" --data-dir "$data" --n 1 --r 1 --w 1 \
    2>"$data/node.log" &
fi
server=$!
cleanup() {
  kill -TERM "$server" 2>/dev/null
  wait "$server" 2>/dev/null
  rm -rf "$data"
  perf probe -q -d "$GROUP:*" 2>/dev/null
}
trap cleanup EXIT
# The load to count, after what comes before it.
case $OP in
  get | put)
    for _ in $(seq 300); do
      grep -q "Ctrl-C stops the cluster" "$data/dev.log" && break
      sleep 0.2
    done
    pids=$(pgrep -P "$server" | paste -sd,)
    bench() { "$BIN" bench --addrs "$addrs" --concurrency 32 --keys 10000 "$@" >/dev/null; }
    if [ "$OP" = get ]; then
      bench --op put --requests 10000
      flags=(--read-ratio 1)
    else
      flags=(--op put)
    fi
    if [ "${WARMUP:-0}" -gt 0 ]; then
      bench --op put --requests "$WARMUP"
    fi
    load() { bench "${flags[@]}" --requests "$REQUESTS"; }
    ;;
  resp-*)
    for _ in $(seq 100); do
      redis-cli -p "$RESP_PORT" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    if ! redis-cli -p "$RESP_PORT" ping >/dev/null 2>&1; then
      echo "the node does not answer on $RESP_PORT; its log:" >&2
      tail -20 "$data/node.log" >&2
      exit 1
    fi
    pids=$server
    resp() { redis-benchmark -h 127.0.0.1 -p "$RESP_PORT" -c 50 -d 100 -r 100000 -q "$@" >/dev/null 2>&1; }
    resp -t set -n 100000
    load() { resp -t "${OP#resp-}" -n "$REQUESTS"; }
    ;;
esac
events="$GROUP:mi_malloc_aligned,$GROUP:mi_realloc_aligned,$GROUP:mi_zalloc_aligned"
if [ -n "${RECORD:-}" ]; then
  perf record -q -e "$events" --call-graph dwarf,8192 -p "$pids" -o "$DIR/alloc-$OP.data" 2>/dev/null &
else
  perf stat -e "$events" -p "$pids" -o "$DIR/stat-$OP.txt" &
fi
watcher=$!
sleep 0.5
load
kill -INT "$watcher"
wait "$watcher"
if [ -n "${RECORD:-}" ]; then
  echo "call stacks in $DIR/alloc-$OP.data"
else
  awk -v n="$REQUESTS" -v op="$OP" '$1 ~ /^[0-9,]+$/ && $2 ~ /mi_/ {
      gsub(",", "", $1); sub(/.*:/, "", $2); total += $1; printf "%s %.2f per %s\n", $2, $1 / n, op }
    END { printf "allocations %.2f per %s\n", total / n, op }' "$DIR/stat-$OP.txt"
fi
