#!/usr/bin/env bash
# Instructions per request of each stack in benches/instructions.rs, measured with callgrind.
#
# Each stack runs at N=1,000 and N=11,000 requests; (I(11000) - I(1000)) / 10,000 is the cost of
# one request with start-up cancelled out. The figure over `identity` is the stack's own cost.
# Usage: benches/callgrind.sh [stack ...]   (default: every stack)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install -y valgrind" >&2; exit 1; }

bin=$(cargo bench --bench instructions --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*instructions-[0-9a-f]*\)).*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "could not find the instructions bench binary" >&2; exit 1; }

stacks=("$@")
[ ${#stacks[@]} -gt 0 ] || stacks=(identity noop2 noop-body floor-envelope envelope envelope-noid registry envelope+registry metrics user-metrics errors genro-without-errors genro genro-layer genro+watchdog genro-debug tower-http histogram-none histogram-genro histogram-prometheus)
[[ " ${stacks[*]} " == *" identity "* ]] || stacks=(identity "${stacks[@]}")
# The histogram rows are a loop of two observations, not requests: their anchor is
# `histogram-none`, printed in the last column instead of `identity`.

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. benches/common.sh

"$bin" sizes
printf '\n%-20s %14s %14s %12s %14s\n' stack "I(N=1000)" "I(N=11000)" "per request" "over identity"
base=""; hbase=""
for s in "${stacks[@]}"; do
  lo=$(stack_instructions "$bin" "$s" 1000); hi=$(stack_instructions "$bin" "$s" 11000)
  per=$(( (hi - lo) / 10000 ))
  case "$s" in
    histogram-*) [ -n "$hbase" ] || hbase=$per; over=$(( per - hbase )) ;;
    *) [ -n "$base" ] || base=$per; over=$(( per - base )) ;;
  esac
  printf '%-20s %14s %14s %12s %14s\n' "$s" "$lo" "$hi" "$per" "$over"
done
