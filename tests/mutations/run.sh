#!/usr/bin/env bash
# Mutation check (issue #11): each tests/mutations/NN-name.patch breaks the
# product on purpose; the whole-cluster simulation (tests/sim_cluster.rs)
# must catch it. For each patch: a scratch copy of this checkout (tracked and
# untracked files, not target/), the patch applied, the simulation run over
# RINGKV_MUT_SEEDS seeds with RINGKV_SIM_FAIL_FAST=1 (it stops at the first
# failing seed); then one table row: caught or not, the first seed that
# caught it, the seeds run, that seed's faults.
#
#   tests/mutations/run.sh             # every patch (slow: a build and a sweep each)
#   tests/mutations/run.sh 01 hint     # the patches whose name contains 01 or hint
#   tests/mutations/run.sh --check     # only: every patch still applies (drift)
#
# Environment: RINGKV_MUT_SEEDS (default 1000), RINGKV_MUT_DIR (the scratch
# directory, default /tmp/ringkv-mutations), CARGO_TARGET_DIR (default
# $RINGKV_MUT_DIR/target; the checkout's target dir works too and reuses the
# dependencies' builds: the copy's packages get a version of their own,
# 0.1.0-mutant), RINGKV_SIM_FAULTS (passed to the simulation).
# Exit status: 0 if every mutation was caught (or, with --check, every patch
# applies), 1 otherwise.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
patches_dir="$root/tests/mutations"
seeds="${RINGKV_MUT_SEEDS:-1000}"
scratch="${RINGKV_MUT_DIR:-/tmp/ringkv-mutations}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$scratch/target}"

check_only=0
filters=()
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    -h | --help)
      sed -n '2,20p' "$0"
      exit 0
      ;;
    *) filters+=("$arg") ;;
  esac
done

selected=()
for patch in "$patches_dir"/*.patch; do
  name="$(basename "$patch" .patch)"
  if [ "${#filters[@]}" -eq 0 ]; then
    selected+=("$patch")
    continue
  fi
  for f in "${filters[@]}"; do
    if [[ "$name" == *"$f"* ]]; then
      selected+=("$patch")
      break
    fi
  done
done
if [ "${#selected[@]}" -eq 0 ]; then
  echo "no patch in $patches_dir matches: ${filters[*]}" >&2
  exit 1
fi

# Drift: every patch must apply to this checkout as it is.
drifted=0
for patch in "${selected[@]}"; do
  if ! git -C "$root" apply --check "$patch" 2>/dev/null; then
    echo "does not apply any more: ${patch#"$root"/} (remake it against this checkout)" >&2
    drifted=1
  fi
done
if [ "$check_only" -eq 1 ]; then
  [ "$drifted" -eq 0 ] && echo "all ${#selected[@]} mutation patches apply"
  exit "$drifted"
fi
[ "$drifted" -eq 0 ] || exit 1

mkdir -p "$scratch/logs"
src="$scratch/src"
summary="$scratch/summary.md"
{
  echo "| mutation | caught | first seed | seeds run | faults of that seed |"
  echo "|---|---|---|---|---|"
} >"$summary"
survived=0
for patch in "${selected[@]}"; do
  name="$(basename "$patch" .patch)"
  log="$scratch/logs/$name.log"
  echo "== $name" >&2
  rm -rf "$src"
  mkdir -p "$src"
  # --touch: every file new, so cargo rebuilds what the previous patch changed.
  (cd "$root" && git ls-files -z --cached --others --exclude-standard |
    tar --null --ignore-failed-read -T - -cf -) | tar -x --touch -C "$src"
  (cd "$src" && git apply "$patch")
  # Cargo's freshness check ignores where a package lives: built as 0.1.0,
  # this copy's artifacts would pass for the checkout's in a shared target
  # dir (and the other way round). A version of their own keeps them apart.
  for manifest in "$src/Cargo.toml" "$src/actors/Cargo.toml"; do
    sed -i '0,/^version = "\(.*\)"$/s//version = "\1-mutant"/' "$manifest"
  done
  row=""
  if ! (cd "$src" && nice cargo test --test sim_cluster --no-run) >"$log" 2>&1; then
    row="| $name | build failed | | | see $log |"
    survived=1
  elif (cd "$src" && RINGKV_SIM_SEEDS="$seeds" RINGKV_SIM_FAIL_FAST=1 nice cargo test \
    --test sim_cluster seeds_keep_every_acknowledged_write -- --exact --nocapture) >>"$log" 2>&1; then
    run="$(sed -n 's/^\([0-9]*\) seeds from .*/\1/p' "$log" | tail -1)"
    row="| $name | **no** | | ${run:-?} | |"
    survived=1
  else
    run="$(sed -n 's/^\([0-9]*\) seeds from .*/\1/p' "$log" | tail -1)"
    first="$(sed -n 's/^seed \([0-9]*\):$/\1/p' "$log" | head -1)"
    faults="$(awk -v s="seed $first:" '$0 == s { on = 1 } on && sub(/^  faults: /, "") { print; exit }' "$log")"
    if [ -z "$first" ]; then
      row="| $name | failed, no seed reported | | ${run:-?} | see $log |"
      survived=1
    else
      row="| $name | yes | $first | ${run:-?} | ${faults:-none} |"
    fi
  fi
  echo "$row" >>"$summary"
  echo "$row" >&2
done
echo
cat "$summary"
exit "$survived"
