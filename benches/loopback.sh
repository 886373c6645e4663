#!/usr/bin/env bash
# The loopback comparison: the same axum hello app served by bare hyper-util (the ceiling),
# axum::serve (the anchor), axum::serve behind GenroLayer, the AsgiServer with the whole stack
# and the watchdog running (on the caller's current-thread runtime, and on its own runtime of
# `workers = 2`), and the floors: the work GenroLayer and the AsgiServer are required to do,
# written with http and std alone (benches/floor). Two measures, each reported as ratios against
# axum::serve measured in the same run:
#
# 1. wrk -t1 -c64 -d${SECONDS_PER_RUN}s, ${ROUNDS} interleaved rounds (every mode once per round),
#    median requests/s and p99 latency;
# 2. the server's own instructions per request: callgrind on the server process while h2load
#    sends N and 11*N keep-alive HTTP/1.1 requests over 8 connections; the difference over 10*N.
#
# The last table puts both together, with the targets of the request-path budget.
#
# Usage: benches/loopback.sh [modes...]   (default: hyper axum floor genro floor-server asgi asgi-w2)
# Needs wrk and h2load (Debian: wrk, nghttp2-client) and valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
N=${N:-2000}
. benches/common.sh
need wrk h2load valgrind
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(hyper axum floor genro floor-server asgi asgi-w2)
[[ " ${modes[*]} " == *" axum "* ]] || modes=(axum "${modes[@]}")

bin=$(cargo bench --bench loopback --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*loopback-[0-9a-f]*\)).*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "could not find the loopback bench binary" >&2; exit 1; }
port=18080
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; kill $(jobs -p) 2>/dev/null || true' EXIT

to_ms() { # "1.23ms" / "850.00us" / "1.20s" -> milliseconds
  awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v } else { sub(/s$/, "", v); print v * 1000 } }'
}

echo "== wrk -t1 -c64 -d${SECONDS_PER_RUN}s, $ROUNDS interleaved rounds"
for round in $(seq 1 "$ROUNDS"); do
  for mode in "${modes[@]}"; do
    "$bin" "$mode" "$port" >/dev/null 2>&1 & pid=$!
    wait_up
    out=$(wrk -t1 -c64 -d"${SECONDS_PER_RUN}s" --latency "http://127.0.0.1:$port/")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    echo "$round $mode $rps $p99" >> "$tmp/wrk"
    printf '  round %s %-12s %10s req/s  p99 %s ms\n' "$round" "$mode" "$rps" "$p99"
    stop "$pid"
  done
done

echo
printf '%-12s %12s %10s %12s %10s\n' mode "median rps" "ratio" "median p99" "ratio"
base_rps=$(awk '$2 == "axum" {print $3}' "$tmp/wrk" | median)
base_p99=$(awk '$2 == "axum" {print $4}' "$tmp/wrk" | median)
for mode in "${modes[@]}"; do
  # The ratio of each round to the anchor of the same round, then the median of those ratios.
  ratio=$(awk -v m="$mode" '$2 == "axum" {a[$1]=$3} $2 == m {r[$1]=$3} END {for (k in r) print r[k]/a[k]}' "$tmp/wrk" | median)
  pratio=$(awk -v m="$mode" '$2 == "axum" {a[$1]=$4} $2 == m {r[$1]=$4} END {for (k in r) print r[k]/a[k]}' "$tmp/wrk" | median)
  rps=$(awk -v m="$mode" '$2 == m {print $3}' "$tmp/wrk" | median)
  p99=$(awk -v m="$mode" '$2 == m {print $4}' "$tmp/wrk" | median)
  printf '%-12s %12.0f %10.3f %12.3f %10.3f\n' "$mode" "$rps" "$ratio" "$p99" "$pratio"
done

echo
echo "== server instructions per request (callgrind; h2load --h1 -c8, N=$N and 11*N)"
printf '%-12s %14s %14s %12s %12s\n' mode "I(N)" "I(11N)" "per request" "over axum"
for mode in "${modes[@]}"; do
  lo=$(server_instructions "$bin" "$mode" "$N"); hi=$(server_instructions "$bin" "$mode" $((11 * N)))
  echo "$mode $(( (hi - lo) / (10 * N) ))" >> "$tmp/instructions"
  printf '%-12s %14s %14s %12s\n' "$mode" "$lo" "$hi" "$(( (hi - lo) / (10 * N) ))"
done
base=$(awk '$1 == "axum" {print $2}' "$tmp/instructions")

target() { # mode -> the budget's targets, or what the row is
  case "$1" in
    hyper) echo "the ceiling" ;;
    axum) echo "the anchor" ;;
    genro) echo ">= 0.90, +3,000" ;;
    asgi|asgi-w2) echo ">= 0.85, p99 <= 1.3, +4,500" ;;
    floor) echo "GenroLayer's required work" ;;
    floor-server) echo "the AsgiServer's required work" ;;
    *) echo "" ;;
  esac
}
echo
echo "== against axum::serve, this run"
printf '| %-12s | %12s | %10s | %22s | %-28s |\n' mode "req/s ratio" "p99 ratio" "instructions over axum" "target"
for mode in "${modes[@]}"; do
  ratio=$(awk -v m="$mode" '$2 == "axum" {a[$1]=$3} $2 == m {r[$1]=$3} END {for (k in r) print r[k]/a[k]}' "$tmp/wrk" | median)
  pratio=$(awk -v m="$mode" '$2 == "axum" {a[$1]=$4} $2 == m {r[$1]=$4} END {for (k in r) print r[k]/a[k]}' "$tmp/wrk" | median)
  per=$(awk -v m="$mode" '$1 == m {print $2}' "$tmp/instructions")
  printf '| %-12s | %12.3f | %10.3f | %+22d | %-28s |\n' "$mode" "$ratio" "$pratio" "$((per - base))" "$(target "$mode")"
done
