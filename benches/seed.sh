#!/usr/bin/env bash
# What the seed's configuration costs, part by part: the AsgiServer through `run()` on the
# seed's server.ini (benches/loopback.rs's `asgi-seed`, one worker), then with one part of it
# turned off at a time (GENRO_ASGI_* overrides through LOOPBACK_SEED), against the AsgiServer of
# the loopback harness on the caller's runtime (`asgi`, none of those parts) and axum::serve.
# Each row: HTTP/1.1 and HTTP/2 requests/s (interleaved rounds, median ratio to axum::serve)
# and the server's instructions per request (callgrind), as in benches/loopback.sh.
#
# Usage: benches/seed.sh   (ROUNDS, SECONDS_PER_RUN, H2_REQUESTS, N as in loopback.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
H2_REQUESTS=${H2_REQUESTS:-100000}
N=${N:-2000}
. benches/common.sh
need wrk h2load valgrind

# name | mode | overrides
rows=(
  "axum::serve|axum|"
  "seed, run(), per_core|asgi-seed|"
  "  without the export port (/metrics on the main port)|asgi-seed|METRICS_EXPORT_PORT="
  "  without the log file (stderr, WARNING)|asgi-seed|LOGGING_FILE="
  "  without the watchdog|asgi-seed|WATCHDOG_ENABLED=false"
  "  without the webhook notifier|asgi-seed|ERRORS_NOTIFY_CRITICAL=false"
  "  without HTTP/2 keep-alive pings|asgi-seed|LIMITS_KEEPALIVE_TIMEOUT=0"
  "  runtime = work_stealing|asgi-seed-ws|"
  "the harness's AsgiServer, serve()|asgi|"
)

bin=$(cargo bench --bench loopback --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*loopback-[0-9a-f]*\)).*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "could not find the loopback bench binary" >&2; exit 1; }
port=18080
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; kill $(jobs -p) 2>/dev/null || true' EXIT

start() { # row index -> starts the row's server, sets $pid
  local mode overrides
  mode=$(cut -d'|' -f2 <<<"${rows[$1]}"); overrides=$(cut -d'|' -f3 <<<"${rows[$1]}")
  LOOPBACK_SEED="$overrides" "$bin" "$mode" "$port" >/dev/null 2>&1 & pid=$!
  wait_up
}

echo "== $ROUNDS interleaved rounds: wrk -t1 -c64 -d${SECONDS_PER_RUN}s, then h2load -n $H2_REQUESTS -c16 -m10"
for round in $(seq 1 "$ROUNDS"); do
  for i in "${!rows[@]}"; do
    start "$i"
    h1=$(wrk -t1 -c64 -d"${SECONDS_PER_RUN}s" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}')
    stop "$pid"; start "$i"
    h2=$(h2load -n "$H2_REQUESTS" -c 16 -m 10 -t 1 "http://127.0.0.1:$port/" 2>&1 | awk '/^finished in/ {print $4}')
    stop "$pid"
    echo "$round $i $h1 $h2" >> "$tmp/rounds"
    printf '  round %s %-55s %10s %10s\n' "$round" "$(cut -d'|' -f1 <<<"${rows[$i]}")" "$h1" "$h2"
  done
done

for i in "${!rows[@]}"; do
  mode=$(cut -d'|' -f2 <<<"${rows[$i]}")
  export LOOPBACK_SEED; LOOPBACK_SEED=$(cut -d'|' -f3 <<<"${rows[$i]}")
  lo=$(server_instructions "$bin" "$mode" "$N"); hi=$(server_instructions "$bin" "$mode" $((11 * N)))
  echo "$i $(( (hi - lo) / (10 * N) ))" >> "$tmp/instructions"
done
unset LOOPBACK_SEED

ratio() { awk -v i="$1" -v c="$2" '$2 == 0 {a[$1]=$c} $2 == i {r[$1]=$c} END {for (k in r) print r[k]/a[k]}' "$tmp/rounds" | median; }
base=$(awk '$1 == 0 {print $2}' "$tmp/instructions")
echo
printf '| %-55s | %10s | %10s | %16s |\n' row "h1 req/s" "h2 req/s" "instr. over axum"
for i in "${!rows[@]}"; do
  per=$(awk -v i="$i" '$1 == i {print $2}' "$tmp/instructions")
  printf '| %-55s | %10.3f | %10.3f | %+16d |\n' "$(cut -d'|' -f1 <<<"${rows[$i]}")" "$(ratio "$i" 3)" "$(ratio "$i" 4)" "$((per - base))"
done
