#!/usr/bin/env bash
# The speed goals of issue 13 measured in one run, each printed next to its
# goal (benches/README.md, "Session 15: the goals in one run"):
#   1. one node over RESP (`resp_cpu.sh`): redis-benchmark SET and GET
#      against ringkv (N=1, durable) and redis-server (appendfsync always)
#      on the same disk; ringkv's requests per second over Redis's, >= 1.0;
#   2. three nodes (`ringkv dev`, N=3 R=2 W=2) at 128 in flight
#      (`cluster_cpu.sh`): >= 40 k puts/s and >= 80 k gets/s, at most 45 and
#      22 us of node CPU per op;
#   3. at half that peak: an open loop (`ringkv bench --rate`) at half
#      the puts/s and gets/s of step 2, for HALF_SECONDS (default 5) each,
#      at most HALF_MAX_IN_FLIGHT (default 1024) in flight: p99.9 <= 10 ms
#      for puts and gets, each request timed from when it was due;
#   4. a lone put (one in flight): p50 <= 400 us.
# Usage: benches/goals.sh [BIN] (default: the release build). N_RESP,
# PUTS, GETS, HALF_SECONDS, LONE_PUTS set the run lengths; CLIENT_PORT / PEER_PORT the
# cluster's ports (default 27501 / 27601), RESP_PORT / REDIS_PORT the one
# node's. Needs redis-server, redis-benchmark, redis-cli and jq. Runs for
# about three minutes; run it on a machine that is otherwise idle.
set -u
here=$(dirname "$0")
BIN=${1:-$here/../target/release/ringkv}
N_RESP=${N_RESP:-200000}
PUTS=${PUTS:-150000}
GETS=${GETS:-300000}
LONE_PUTS=${LONE_PUTS:-3000}
HALF_SECONDS=${HALF_SECONDS:-5}
HALF_MAX_IN_FLIGHT=${HALF_MAX_IN_FLIGHT:-1024}
export CLIENT_PORT=${CLIENT_PORT:-27501} PEER_PORT=${PEER_PORT:-27601}

# verdict VALUE OP LIMIT: "met" when VALUE OP LIMIT holds (OP is >= or <=).
verdict() {
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    ok = (op == ">=") ? (v + 0 >= l + 0) : (v + 0 <= l + 0)
    print (v == "" ? "no result" : (ok ? "met" : "NOT met"))
  }'
}
row() { # what, measured, goal, verdict
  printf '%-44s %-26s %-16s %s\n' "$1" "$2" "$3" "$4"
}
# field LINE NAME: the number after NAME in a cluster_cpu.sh line.
field() {
  sed -n "s/.*$2[ =]\([0-9.]*\).*/\1/p" <<<"$1"
}
cluster() { # concurrency workloads
  BENCH=$BIN CONCURRENCY=$1 ROUNDS=1 WORKLOADS=$2 "$here/cluster_cpu.sh" "$BIN"
}

resp=$(N=$N_RESP TESTS="set get" "$here/resp_cpu.sh" "$BIN" 2>&1)
rps() { # which-server SET|GET
  awk -v server="$1" -v t="$2:" '
    /^== ringkv/ {s = "ringkv"} /^== redis/ {s = "redis"}
    s == server && $1 == t {print $2; exit}' <<<"$resp"
}
cpu_of() { # which-server set|get
  sed -n "s/.*$1 $2: cpu \([0-9.]*\) us per op.*/\1/p" <<<"$resp" | head -1
}
peak=$(cluster 128 "put:--op put --requests $PUTS|get:--op get --requests $GETS")
put_line=$(grep ' put: ' <<<"$peak")
get_line=$(grep ' get: ' <<<"$peak")
# Half the peak rates (1000/s if a peak run failed), for HALF_SECONDS.
half_rate() {
  awk -v r="$1" 'BEGIN {r = int(r / 2); print (r > 0 ? r : 1000)}'
}
put_rate=$(half_rate "$(field "$put_line" put:)")
get_rate=$(half_rate "$(field "$get_line" get:)")
half=$(cluster "$HALF_MAX_IN_FLIGHT" "put:--op put --rate $put_rate --requests $((put_rate * HALF_SECONDS))|get:--op get --rate $get_rate --requests $((get_rate * HALF_SECONDS))")
lone=$(cluster 1 "put:--op put --requests $LONE_PUTS")
half_put=$(grep ' put: ' <<<"$half")
half_get=$(grep ' get: ' <<<"$half")

echo "ringkv $BIN, $(nproc) cores, $(date -u +%FT%TZ)"
row "goal" "measured" "target" "verdict"
for t in SET GET; do
  lower=$(tr 'A-Z' 'a-z' <<<"$t")
  ours=$(rps ringkv "$t")
  theirs=$(rps redis "$t")
  ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN {if (b > 0) printf "%.2f", a / b}')
  row "1 node $t / Redis (req/s)" "$ratio ($ours / $theirs)" ">= 1.0" "$(verdict "$ratio" ">=" 1.0)"
  row "  CPU per $t, ringkv / Redis" "$(cpu_of ringkv "$lower") / $(cpu_of redis "$lower") us" "" ""
done
row "3 nodes, 128 in flight: puts/s" "$(field "$put_line" put:)" ">= 40000" "$(verdict "$(field "$put_line" put:)" ">=" 40000)"
row "  node CPU per put (us)" "$(field "$put_line" node_cpu_us_per_op)" "<= 45" "$(verdict "$(field "$put_line" node_cpu_us_per_op)" "<=" 45)"
row "3 nodes, 128 in flight: gets/s" "$(field "$get_line" get:)" ">= 80000" "$(verdict "$(field "$get_line" get:)" ">=" 80000)"
row "  node CPU per get (us)" "$(field "$get_line" node_cpu_us_per_op)" "<= 22" "$(verdict "$(field "$get_line" node_cpu_us_per_op)" "<=" 22)"
row "open loop, half the peak: put p99.9 (us)" "$(field "$half_put" p99.9) at $(field "$half_put" put:)/s" "<= 10000" "$(verdict "$(field "$half_put" p99.9)" "<=" 10000)"
row "  puts sent late (all workers busy)" "$(field "$half_put" late)" "" ""
row "open loop, half the peak: get p99.9 (us)" "$(field "$half_get" p99.9) at $(field "$half_get" get:)/s" "<= 10000" "$(verdict "$(field "$half_get" p99.9)" "<=" 10000)"
row "  gets sent late (all workers busy)" "$(field "$half_get" late)" "" ""
row "lone put p50 (us)" "$(field "$lone" p50)" "<= 400" "$(verdict "$(field "$lone" p50)" "<=" 400)"
