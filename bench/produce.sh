#!/usr/bin/env bash
# Produce benchmark against the release build: 1 KiB messages, acks=all, one partition.
# Prints the load generator's throughput and ack latency, the broker's fsyncs per second during
# the run, and its RSS when idle (after start, before load) and after the load.
#
# Usage: bench/produce.sh [MESSAGES] [extra distlog-loadgen args...]
#   e.g. bench/produce.sh 200000 --linger-ms 10
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MESSAGES="${1:-200000}"
shift || true

cargo build --release -p distlog-broker -p distlog-bench --bin distlog --bin distlog-loadgen
BIN_DIR="${CARGO_TARGET_DIR:-target}/release"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

http_get() { # http_get PORT PATH -> body on stdout (bash /dev/tcp, no curl needed)
  local port="$1" path="$2"
  { exec 3<>"/dev/tcp/127.0.0.1/${port}"; } 2>/dev/null || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
  local response
  response="$(timeout 10 cat <&3)" || true
  exec 3<&- 3>&-
  printf '%s' "$response" | sed '1,/^\r\{0,1\}$/d'
}

http_status() {
  local port="$1" path="$2"
  { exec 3<>"/dev/tcp/127.0.0.1/${port}"; } 2>/dev/null || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
  local line
  line="$(timeout 5 head -n1 <&3)" || true
  exec 3<&- 3>&-
  [[ "$line" == *" 200"* ]]
}

fsyncs() { # sum of all distlog_bookie_fsyncs_total samples
  http_get "$HTTP_PORT" /metrics | awk '/^distlog_bookie_fsyncs_total[ {]/ { s += $NF } END { printf "%d\n", s }'
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

WORKDIR="$(mktemp -d -t distlog-bench-XXXXXX)"
BROKER_PID=""
cleanup() {
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORKDIR"
}
trap cleanup EXIT INT TERM

KAFKA_PORT="$(free_port)"
HTTP_PORT="$(free_port)"
RAFT_PORT="$(free_port)"
"$BIN_DIR/distlog" server \
  --data-dir "$WORKDIR/data" \
  --kafka-listen "127.0.0.1:${KAFKA_PORT}" \
  --advertised-kafka "127.0.0.1:${KAFKA_PORT}" \
  --http-listen "127.0.0.1:${HTTP_PORT}" \
  --raft-listen "127.0.0.1:${RAFT_PORT}" \
  >"$WORKDIR/distlog.log" 2>&1 &
BROKER_PID=$!

for _ in $(seq 1 300); do
  if http_status "$HTTP_PORT" /health; then break; fi
  if ! kill -0 "$BROKER_PID" 2>/dev/null; then
    echo "distlog exited during start-up; log:" >&2
    tail -n 50 "$WORKDIR/distlog.log" >&2
    exit 1
  fi
  sleep 0.1
done
http_status "$HTTP_PORT" /health || { echo "distlog not healthy after 30 s" >&2; tail -n 50 "$WORKDIR/distlog.log" >&2; exit 1; }

sleep 2
IDLE_RSS="$(rss_kib "$BROKER_PID")"
FSYNCS_BEFORE="$(fsyncs)"
STARTED="$(date +%s.%N)"
"$BIN_DIR/distlog-loadgen" --bootstrap "127.0.0.1:${KAFKA_PORT}" --topic bench \
  --messages "$MESSAGES" --size 1024 --acks all --linger-ms 5 --partitions 1 "$@"
ENDED="$(date +%s.%N)"
FSYNCS_AFTER="$(fsyncs)"
LOADED_RSS="$(rss_kib "$BROKER_PID")"

awk -v b="$FSYNCS_BEFORE" -v a="$FSYNCS_AFTER" -v s="$STARTED" -v e="$ENDED" -v n="$MESSAGES" 'BEGIN {
  d = a - b; t = e - s;
  printf "fsyncs: %d during the run (%.1f s): %.0f fsyncs/s, %.1f messages per fsync\n", d, t, d / t, (d > 0 ? n / d : 0)
}'
echo "broker RSS: idle ${IDLE_RSS} KiB ($((IDLE_RSS / 1024)) MiB), after load ${LOADED_RSS} KiB ($((LOADED_RSS / 1024)) MiB)"
