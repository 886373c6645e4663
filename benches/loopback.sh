#!/usr/bin/env bash
# The loopback comparison: the same hello app served by bare hyper-util (the ceiling),
# axum::serve (the anchor, on a current-thread runtime) and on a one-worker multi-threaded
# runtime, axum::serve behind GenroLayer, the AsgiServer with the whole stack on the caller's
# runtime (`serve`) and as users run it (`run()` on the seed's server.ini, one worker, both
# runtime layouts), actix-web bare and with tracing-actix-web and actix-web-prom (benches/peers),
# and the floors: the work GenroLayer and the AsgiServer are required to do, written with http
# and std alone (benches/floor). Three measures, each reported as ratios against axum::serve
# measured in the same run:
#
# 1. HTTP/1.1: wrk -t1 -c64 -d${SECONDS_PER_RUN}s, ${ROUNDS} interleaved rounds (every mode once
#    per round), median requests/s and p99 latency;
# 2. HTTP/2 (h2c, prior knowledge): h2load -n ${H2_REQUESTS} -c16 -m10 -t1, ${ROUNDS}
#    interleaved rounds, median requests/s;
# 3. the server's own instructions per request: callgrind on the server process while h2load
#    sends N and 11*N keep-alive HTTP/1.1 requests over 8 connections; the difference over 10*N.
#
# The last table puts them together, with the targets of the request-path budget.
#
# Usage: benches/loopback.sh [modes...]   (default: every row below; see benches/loopback.rs)
# PIN=1 gives each server the second core and the load generator the first (taskset);
# CALLGRIND=0 skips the instruction counts.
# Needs wrk and h2load (Debian: wrk, nghttp2-client) and valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
H2_REQUESTS=${H2_REQUESTS:-150000}
N=${N:-2000}
. benches/common.sh
need wrk h2load valgrind
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(hyper axum axum-mt floor genro floor-server asgi asgi-seed asgi-seed-ws actix actix-stack)
[[ " ${modes[*]} " == *" axum "* ]] || modes=(axum "${modes[@]}")

bin=$(cargo bench --bench loopback --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*loopback-[0-9a-f]*\)).*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "could not find the loopback bench binary" >&2; exit 1; }
peers=
if [[ " ${modes[*]} " == *" actix"* ]]; then
  peers=$(cargo build --release --manifest-path benches/peers/Cargo.toml --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*loopback-peers\)".*/\1/p' | tail -n 1)
  [ -x "$peers" ] || { echo "could not build benches/peers" >&2; exit 1; }
fi
port=18080
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; kill $(jobs -p) 2>/dev/null || true' EXIT

server_bin() { case "$1" in actix*) echo "$peers" ;; *) echo "$bin" ;; esac; }
server_pin=(); load_pin=()
if [ -n "${PIN:-}" ]; then server_pin=(taskset -c 1); load_pin=(taskset -c 0); fi

to_ms() { # "1.23ms" / "850.00us" / "1.20s" -> milliseconds
  awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v } else { sub(/s$/, "", v); print v * 1000 } }'
}

# ratio FILE MODE COLUMN: the median over rounds of MODE's figure over axum's of the same round.
ratio() {
  awk -v m="$2" -v c="$3" '$2 == "axum" {a[$1]=$c} $2 == m {r[$1]=$c} END {for (k in r) print r[k]/a[k]}' "$1" | median
}

echo "== HTTP/1.1: wrk -t1 -c64 -d${SECONDS_PER_RUN}s, $ROUNDS interleaved rounds"
for round in $(seq 1 "$ROUNDS"); do
  for mode in "${modes[@]}"; do
    "${server_pin[@]}" "$(server_bin "$mode")" "$mode" "$port" >/dev/null 2>&1 & pid=$!
    wait_up
    out=$("${load_pin[@]}" wrk -t1 -c64 -d"${SECONDS_PER_RUN}s" --latency "http://127.0.0.1:$port/")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    echo "$round $mode $rps $p99" >> "$tmp/wrk"
    printf '  round %s %-14s %10s req/s  p99 %s ms\n' "$round" "$mode" "$rps" "$p99"
    stop "$pid"
  done
done

echo
echo "== HTTP/2 (h2c): h2load -n $H2_REQUESTS -c16 -m10 -t1, $ROUNDS interleaved rounds"
for round in $(seq 1 "$ROUNDS"); do
  for mode in "${modes[@]}"; do
    "${server_pin[@]}" "$(server_bin "$mode")" "$mode" "$port" >/dev/null 2>&1 & pid=$!
    wait_up
    out=$("${load_pin[@]}" h2load -n "$H2_REQUESTS" -c 16 -m 10 -t 1 "http://127.0.0.1:$port/" 2>&1)
    rps=$(awk '/^finished in/ {print $4}' <<<"$out")
    ok=$(awk '/^requests:/ {print $8}' <<<"$out")
    [ "$ok" = "$H2_REQUESTS" ] || { echo "  $mode: only $ok of $H2_REQUESTS requests succeeded" >&2; exit 1; }
    echo "$round $mode $rps" >> "$tmp/h2"
    printf '  round %s %-14s %10s req/s\n' "$round" "$mode" "$rps"
    stop "$pid"
  done
done

echo
echo "== server instructions per request (callgrind; h2load --h1 -c8, N=$N and 11*N)"
printf '%-14s %14s %14s %12s\n' mode "I(N)" "I(11N)" "per request"
for mode in "${modes[@]}"; do
  if [ "${CALLGRIND:-1}" = 0 ]; then echo "$mode 0" >> "$tmp/instructions"; continue; fi
  lo=$(server_instructions "$(server_bin "$mode")" "$mode" "$N"); hi=$(server_instructions "$(server_bin "$mode")" "$mode" $((11 * N)))
  echo "$mode $(( (hi - lo) / (10 * N) ))" >> "$tmp/instructions"
  printf '%-14s %14s %14s %12s\n' "$mode" "$lo" "$hi" "$(( (hi - lo) / (10 * N) ))"
done
base=$(awk '$1 == "axum" {print $2}' "$tmp/instructions")

target() { # mode -> the budget's targets, or what the row is
  case "$1" in
    hyper) echo "the ceiling" ;;
    axum) echo "the anchor" ;;
    axum-mt) echo "axum, multi-threaded runtime" ;;
    genro) echo ">= 0.95, h2 >= 0.90, floor+300" ;;
    asgi) echo ">= 0.90, h2 >= 0.85, floor+1000" ;;
    asgi-seed*) echo ">= 0.90, h2 >= 0.85, > actix-stack" ;;
    floor) echo "GenroLayer's required work" ;;
    floor-server) echo "the AsgiServer's required work" ;;
    actix) echo "actix-web, bare" ;;
    actix-stack) echo "actix-web + tracing + prom" ;;
    *) echo "" ;;
  esac
}
echo
echo "== against axum::serve, this run"
printf '| %-14s | %10s | %10s | %10s | %14s | %-36s |\n' mode "h1 req/s" "h1 p99" "h2 req/s" "instr. over axum" "target"
for mode in "${modes[@]}"; do
  h2=$(printf '%.3f' "$(ratio "$tmp/h2" "$mode" 3)")
  per=$(awk -v m="$mode" '$1 == m {print $2}' "$tmp/instructions")
  printf '| %-14s | %10.3f | %10.3f | %10s | %+14d | %-36s |\n' "$mode" "$(ratio "$tmp/wrk" "$mode" 3)" \
    "$(ratio "$tmp/wrk" "$mode" 4)" "$h2" "$((per - base))" "$(target "$mode")"
done
