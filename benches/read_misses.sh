#!/usr/bin/env bash
# What one hot random read of the LSM engine costs, counted rather than
# timed: instructions, L1 data-cache misses and misses of a modelled
# second-level cache per read, from cachegrind (valgrind), which a noisy
# shared machine does not blur. Memory-bound code such as a hot read moves
# with cache misses; compare them between builds.
#
#   benches/read_misses.sh            # this checkout
#   LL=33554432,16,64 benches/read_misses.sh   # model a 32 MiB last level
#
# It builds the engine bench, lets it build its store once natively
# (benches/engine/main.rs, read_count), then runs N1 and N2 reads under
# cachegrind; the difference divided by N2 - N1 is the cost of one read,
# setup and warm-up cancelled. LL (cachegrind's --LL size,assoc,line)
# defaults to 512 KiB, 8-way, 64 B: the per-core L2 of the AMD EPYC VMs
# this project runs on, so "LL misses" are reads that leave the core's
# caches. Needs valgrind and jq (installed if missing and apt-get exists).
set -euo pipefail
cd "$(dirname "$0")/.."
n1="${N1:-100000}"
n2="${N2:-300000}"
ll="${LL:-524288,8,64}"
for tool in valgrind jq; do
  if ! command -v "$tool" >/dev/null; then
    apt-get install -y "$tool" >/dev/null
  fi
done
bin=$(cargo bench --bench engine --no-run --message-format=json 2>/dev/null |
  jq -r 'select(.executable != null and .target.name == "engine") | .executable' | tail -1)
[ -x "$bin" ] || { echo "no engine bench binary" >&2; exit 1; }
RINGKV_BENCH_READ_COUNT=0 "$bin" >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for n in "$n1" "$n2"; do
  RINGKV_BENCH_READ_COUNT="$n" valgrind --tool=cachegrind --cache-sim=yes --LL="$ll" \
    --cachegrind-out-file="$out/cg.$n" "$bin" 2>"$out/log.$n" >/dev/null
  awk '/^summary:/ {print $2, $6 + $9, $7 + $10}' "$out/cg.$n" >"$out/sum.$n"
done
paste "$out/sum.$n1" "$out/sum.$n2" | awk -v d=$((n2 - n1)) -v ll="$ll" '{
  printf "per hot read: %.0f instructions, %.2f L1d misses, %.2f LL misses (LL %s)\n",
    ($4 - $1) / d, ($5 - $2) / d, ($6 - $3) / d, ll }'
