#!/usr/bin/env bash
# RESP load with the node's CPU per operation (benches/README.md, "RESP"):
# for each ringkv binary given (default: the release build), starts a
# 1-node ringkv (N=1 R=1 W=1, LSM, `--resp-listen`) in a fresh data dir
# and runs redis-benchmark's SET, then GET (-c 50 -d 100 -r 100000 -n N),
# reading the node's utime+stime from /proc/PID/stat around each; then the
# same against redis-server with `--appendonly yes --appendfsync always`
# on the same disk. Several binaries take turns (an A/B). PERF=1 also
# records each ringkv node with `perf record -e cpu-clock -g` into
# DIR/perf-<i>.data. SYSCALLS=1 counts each ringkv node's system calls
# and context switches with `perf stat` and prints them per operation
# (run one test at a time, TESTS=set or TESTS=get). Ports RESP_PORT (ringkv; its peer and client ports
# are +1000 and +900) and REDIS_PORT.
set -euo pipefail
DIR=${DIR:-/tmp/ringkv-resp-cpu}
N=${N:-200000}
RESP_PORT=${RESP_PORT:-16501}
REDIS_PORT=${REDIS_PORT:-16579}
TESTS=${TESTS:-set get}
[ "$#" -gt 0 ] || set -- "$(dirname "$0")/../target/release/ringkv"
TCK=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
bench() { # name port pid
  local before after t
  for t in $TESTS; do
    before=$(cpu "$3")
    redis-benchmark -h 127.0.0.1 -p "$2" -t "$t" -c 50 -d 100 -r 100000 -n "$N" -q 2>&1 |
      tr '\r' '\n' | grep -v 'rps=' | grep -v WARNING | grep '[a-z]' | tr '\n' ' '
    after=$(cpu "$3")
    echo "$1 $t: cpu $(((after - before) * 1000000 / TCK / N)).$(((after - before) * 10000000 / TCK / N % 10)) us per op ($((after - before)) ticks over $N ops)"
  done
}
rm -rf "$DIR"
mkdir -p "$DIR/redis"
redis-server --port "$REDIS_PORT" --appendonly yes --appendfsync always --save '' \
  --dir "$DIR/redis" >"$DIR/redis.log" 2>&1 &
RS=$!
trap 'kill $RS 2>/dev/null; wait' EXIT
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
i=0
for BIN in "$@"; do
  i=$((i + 1))
  rm -rf "$DIR/ringkv"
  mkdir -p "$DIR/ringkv"
  "$BIN" node --id b1 --listen "127.0.0.1:$((RESP_PORT + 1000))" \
    --client-listen "127.0.0.1:$((RESP_PORT + 900))" --resp-listen "127.0.0.1:$RESP_PORT" \
    --data-dir "$DIR/ringkv" --n 1 --r 1 --w 1 2>"$DIR/ringkv.log" &
  RK=$!
  until redis-cli -p "$RESP_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
  echo "== ringkv $BIN"
  if [ -n "${PERF:-}" ]; then
    perf record -e cpu-clock -g -p "$RK" -o "$DIR/perf-$i.data" 2>/dev/null &
    PP=$!
  fi
  if [ -n "${SYSCALLS:-}" ]; then
    EVENTS=context-switches
    for s in recvfrom sendto write futex epoll_wait pwrite64 fdatasync; do
      EVENTS="$EVENTS,syscalls:sys_enter_$s"
    done
    perf stat -e "$EVENTS" -p "$RK" -o "$DIR/syscalls-$i.txt" 2>/dev/null &
    SP=$!
  fi
  bench ringkv "$RESP_PORT" "$RK"
  if [ -n "${PERF:-}" ]; then kill -INT "$PP"; wait "$PP" || true; fi
  if [ -n "${SYSCALLS:-}" ]; then
    kill -INT "$SP"
    wait "$SP" || true
    awk -v n="$N" '$1 ~ /^[0-9,]+$/ {gsub(",", "", $1); sub("syscalls:sys_enter_", "", $2); printf "%s %.3f  ", $2, $1 / n} END {print "(per op)"}' "$DIR/syscalls-$i.txt"
  fi
  kill "$RK"
  wait "$RK" || true
done
echo "== redis-server $(redis-server --version | awk '{print $3}') --appendonly yes --appendfsync always"
bench redis "$REDIS_PORT" "$RS"
