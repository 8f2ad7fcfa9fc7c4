#!/usr/bin/env bash
# Cluster load with the nodes' CPU per operation (benches/README.md,
# "Cluster load"): for each ringkv binary given (default: the release
# build), starts `ringkv dev` (3 nodes, N=3 R=2 W=2) in a temporary data
# dir, waits until every node answers `status` and says it is serving
# (its start-up handoff done), and runs one `ringkv bench` per
# workload (puts of fresh keys, gets of preloaded keys, a 50/50 mix over
# preloaded keys; a key space of KEYS, default 10000) at CONCURRENCY in
# flight. `ringkv bench` itself reads the
# node processes' user+system CPU from /proc (they are found listening on
# the client ports) and reports it per operation; this script prints one
# line per run and stops the cluster. With several binaries (A/B) they take
# turns, ROUNDS times (default 2), all driven by the same load generator,
# BENCH (default: the release build; it needs `--json`, so a build of this
# version or later). Ports CLIENT_PORT..+2 and PEER_PORT..+2 (default
# 7001, 7101, as `ringkv dev`). Needs jq.
set -u
here=$(dirname "$0")
ROUNDS=${ROUNDS:-2}
CONCURRENCY=${CONCURRENCY:-32}
KEYS=${KEYS:-10000}
CLIENT_PORT=${CLIENT_PORT:-7001}
PEER_PORT=${PEER_PORT:-7101}
BENCH=${BENCH:-$here/../target/release/ringkv}
# name:flags, separated by |
WORKLOADS=${WORKLOADS:-"put:--op put --requests 20000|get:--op get --requests 30000|mixed:--read-ratio 0.5 --preload --requests 30000"}
[ "$#" -gt 0 ] || set -- "$here/../target/release/ringkv"
addrs=127.0.0.1:$CLIENT_PORT,127.0.0.1:$((CLIENT_PORT + 1)),127.0.0.1:$((CLIENT_PORT + 2))

bench_one() {
  local bin=$1 dir dev spec name flags out
  dir=$(mktemp -d /tmp/ringkv-cpu.XXXX)
  setsid "$bin" dev --data-dir "$dir" --client-port "$CLIENT_PORT" --peer-port "$PEER_PORT" \
    >"$dir/dev.log" 2>&1 </dev/null &
  dev=$!
  # `ringkv dev` prints this once every node answers, and only then
  # handles SIGTERM by stopping its nodes.
  for _ in $(seq 300); do
    grep -q "Ctrl-C stops the cluster" "$dir/dev.log" && break
    kill -0 "$dev" 2>/dev/null || break
    sleep 0.2
  done
  if ! grep -q "Ctrl-C stops the cluster" "$dir/dev.log"; then
    echo "$bin: the dev cluster did not come up; its log:" >&2
    tail -20 "$dir/dev.log" >&2
    stop_dev "$dev"
    rm -rf "$dir"
    return 1
  fi
  # Nodes that start together answer at once but first pull their ranges
  # from each other ("joining: streaming" in `admin status`); load sent
  # then is pulled again by that handoff (about 100 k keys per node, 10 s
  # of a core, in a run of 150 k puts): wait until each says "serving".
  local port serving
  for _ in $(seq 150); do
    serving=0
    for port in $CLIENT_PORT $((CLIENT_PORT + 1)) $((CLIENT_PORT + 2)); do
      "$bin" admin --addr "127.0.0.1:$port" status 2>/dev/null | head -1 | grep -q serving &&
        serving=$((serving + 1))
    done
    [ "$serving" -eq 3 ] && break
    sleep 0.2
  done
  [ "$serving" -eq 3 ] || echo "$bin: not every node says serving after 30 s; measuring anyway" >&2
  IFS='|' read -r -a specs <<<"$WORKLOADS"
  for spec in "${specs[@]}"; do
    name=${spec%%:*}
    flags=${spec#*:}
    # shellcheck disable=SC2086 # flags are words on purpose
    if out=$("$BENCH" bench --addrs "$addrs" --concurrency "$CONCURRENCY" --keys "$KEYS" $flags --json); then
      jq -r --arg bin "$bin" --arg name "$name" '
        "\($bin) \($name): \(.totals.throughput_ops_per_s | floor) ops/s, requests \(.totals.requests), "
        + "p50 \(.latency_us.all.p50_us) us, p99 \(.latency_us.all.p99_us) us, "
        + "p99.9 \(.latency_us.all.p999_us) us, errors \(.totals.errors), "
        + (if .config.rate then "rate \(.config.rate), late \(.totals.late_requests), " else "" end)
        + "node_cpu_us_per_op=\(.cpu.node_cpu_us_per_op // "n/a" | if type == "number" then (. * 10 | round / 10) else . end) "
        + "(\(.cpu.nodes | length) nodes, \(.cpu.node_source)), "
        + "bench_cpu_us_per_op=\(.cpu.bench_cpu_us_per_op // 0 | . * 10 | round / 10)"' <<<"$out"
    else
      echo "$bin $name: bench failed"
    fi
  done
  stop_dev "$dev"
  rm -rf "$dir"
}

# SIGTERM to `ringkv dev` (a background job ignores SIGINT), up to 30 s for
# it to stop its nodes, then SIGKILL to it and to any node left.
stop_dev() {
  local dev=$1 children
  children=$(pgrep -P "$dev")
  kill -TERM "$dev" 2>/dev/null
  for _ in $(seq 150); do
    kill -0 "$dev" 2>/dev/null || break
    sleep 0.2
  done
  kill -9 "$dev" 2>/dev/null
  wait "$dev" 2>/dev/null
  # Nodes left behind (dev killed before it could stop them).
  # shellcheck disable=SC2086 # one pid per word
  [ -z "$children" ] || kill -9 $children 2>/dev/null
}

for _ in $(seq "$ROUNDS"); do
  for bin in "$@"; do bench_one "$bin"; done
done
