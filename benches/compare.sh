#!/usr/bin/env bash
# The request path of this tree against another revision's, in one run: the same harnesses
# (benches/loopback.rs over a socket, benches/instructions.rs in process) built from both trees,
# measured interleaved, each figure as a ratio of this tree's to the other's.
#
# 1. wrk -t1 -c64 -d${SECONDS_PER_RUN}s, ${ROUNDS} interleaved rounds of each loopback mode from
#    both builds; the median of the per-round ratios (this / other);
# 2. the server process's own instructions per request of each loopback mode (callgrind while
#    h2load sends N and 11*N keep-alive requests), both builds;
# 3. instructions per request of each in-process stack (callgrind, N=1,000 and 11,000), both
#    builds.
#
# Usage: benches/compare.sh REVISION [loopback modes...]   (default modes: genro asgi)
# The other revision is built in a worktree under ${CACHE:-~/.cache/genro-asgi}. Needs wrk,
# h2load (Debian: nghttp2-client) and valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: benches/compare.sh REVISION [modes...]" >&2; exit 2; }
rev=$(git rev-parse --short "$1"); shift
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(genro asgi)
stacks=(identity genro-layer genro genro+watchdog)
ROUNDS=${ROUNDS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
N=${N:-2000}
. benches/common.sh
need wrk h2load valgrind
cache=${CACHE:-$HOME/.cache/genro-asgi}
tree="$cache/compare-$rev"
[ -d "$tree" ] || git worktree add --detach "$tree" "$rev" >/dev/null

bench_bin() { # dir target-dir bench -> the bench's executable
  (cd "$1" && CARGO_TARGET_DIR="$2" cargo bench --bench "$3" --no-run 2>&1) \
    | sed -n "s/.*Executable .*(\(.*$3-[0-9a-f]*\)).*/\1/p" | tail -n 1
}
new_loop=$(bench_bin . "${CARGO_TARGET_DIR:-target}" loopback)
new_inst=$(bench_bin . "${CARGO_TARGET_DIR:-target}" instructions)
old_loop=$(bench_bin "$tree" "$cache/target-compare" loopback)
old_inst=$(bench_bin "$tree" "$cache/target-compare" instructions)
for b in "$new_loop" "$new_inst" "$old_loop" "$old_inst"; do
  [ -x "$b" ] || { echo "a bench binary is missing: $b" >&2; exit 1; }
done

port=18080
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; kill $(jobs -p) 2>/dev/null || true' EXIT

echo "== wrk -t1 -c64 -d${SECONDS_PER_RUN}s, $ROUNDS interleaved rounds: this tree against $rev"
for round in $(seq 1 "$ROUNDS"); do
  for mode in "${modes[@]}"; do
    for build in old new; do
      bin=$new_loop; [ "$build" = old ] && bin=$old_loop
      "$bin" "$mode" "$port" >/dev/null 2>&1 & pid=$!
      wait_up
      rps=$(wrk -t1 -c64 -d"${SECONDS_PER_RUN}s" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}')
      stop "$pid"
      echo "$round $mode $build $rps" >> "$tmp/wrk"
      printf '  round %s %-8s %-4s %10s req/s\n' "$round" "$mode" "$build" "$rps"
    done
  done
done

echo
# Instructions per request of one row in both builds: per_request ROW COUNTER ARG N_LOW N_HIGH
# NEW_BINARY OLD_BINARY, with COUNTER server_instructions or stack_instructions.
per_request() {
  for build in old new; do
    local bin=$6; [ "$build" = old ] && bin=$7
    local lo hi
    lo=$("$2" "$bin" "$3" "$4"); hi=$("$2" "$bin" "$3" "$5")
    echo "$1 $build $(( (hi - lo) / ($5 - $4) ))" >> "$tmp/instructions"
  done
}
echo "== server instructions per request (callgrind; h2load --h1 -c8, N=$N and 11*N)"
for mode in "${modes[@]}"; do
  per_request "loopback:$mode" server_instructions "$mode" "$N" $((11 * N)) "$new_loop" "$old_loop"
done
echo "== in-process instructions per request (callgrind, N=1,000 and 11,000)"
for stack in "${stacks[@]}"; do
  per_request "in-process:$stack" stack_instructions "$stack" 1000 11000 "$new_inst" "$old_inst"
done

echo
echo "== this tree against $rev, one run"
printf '| %-26s | %12s | %12s | %8s |\n' "row" "$rev" "this tree" "ratio"
printf '|%s|%s|%s|%s|\n' "----------------------------" "--------------" "--------------" "----------"
for mode in "${modes[@]}"; do
  old=$(awk -v m="$mode" '$2 == m && $3 == "old" {print $4}' "$tmp/wrk" | median)
  new=$(awk -v m="$mode" '$2 == m && $3 == "new" {print $4}' "$tmp/wrk" | median)
  ratio=$(awk -v m="$mode" '$2 == m && $3 == "old" {o[$1]=$4} $2 == m && $3 == "new" {n[$1]=$4} END {for (k in n) print n[k]/o[k]}' "$tmp/wrk" | median)
  printf '| %-26s | %12.0f | %12.0f | %8.3f |\n' "req/s, loopback $mode" "$old" "$new" "$ratio"
done
while read -r row; do
  old=$(awk -v r="$row" '$1 == r && $2 == "old" {print $3}' "$tmp/instructions")
  new=$(awk -v r="$row" '$1 == r && $2 == "new" {print $3}' "$tmp/instructions")
  printf '| %-26s | %12s | %12s | %8.3f |\n' "instructions, $row" "$old" "$new" "$(awk -v o="$old" -v n="$new" 'BEGIN {print n / o}')"
done < <(awk '{print $1}' "$tmp/instructions" | uniq)
