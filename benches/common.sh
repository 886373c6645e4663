# Shell helpers shared by benches/loopback.sh and benches/compare.sh (sourced, not run).

# Fails unless every tool named is installed.
need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install -y wrk nghttp2-client valgrind)" >&2; exit 1; }
  done
}

# Waits until the server on $port answers.
wait_up() { for _ in $(seq 1 400); do curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "server did not start" >&2; return 1; }

# Stops a server with SIGINT and waits for it.
stop() { kill -INT "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# The median of the numbers on standard input.
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# Instructions of a bench server process (callgrind) while h2load sends N keep-alive HTTP/1.1
# requests over 8 connections: server_instructions BINARY MODE N (uses $tmp and $port).
server_instructions() {
  rm -f "$tmp"/cg.*
  valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$1" "$2" "$port" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 400); do curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
  h2load --h1 -n "$3" -c 8 "http://127.0.0.1:$port/" >/dev/null 2>&1
  stop "$pid"
  sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$tmp"/cg.out*
}

# Instructions of the main thread of an in-process stack (callgrind; background threads are not
# the request path): stack_instructions BINARY STACK N (uses $tmp).
stack_instructions() {
  rm -f "$tmp"/cg.*
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$tmp/cg.out" "$1" "$2" "$3" >/dev/null 2>&1
  sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$tmp"/cg.out-01
}
