#!/usr/bin/env bash
# Records real client traffic as seeds of the kafka_request fuzz target.
#
# Usage: fuzz/tools/capture.sh DISTLOG_BIN OUT_DIR
#
# Starts `distlog server` on free loopback ports (data in a temp dir), advertising a recording
# proxy (record_proxy.py) in front of it, then drives it with kcat (metadata, produce in every
# codec, consume, a group consumer) and the Python clients of target/python-clients
# (scripts/install-python-clients.sh): admin (create topics/partitions, configs, groups,
# offsets, delete records), idempotent and transactional producers, a group consumer with
# commits. Every request frame lands in OUT_DIR; fuzz/tools/pick_seeds.py keeps a few per
# API and version. Everything started is stopped on exit; the whole run is bounded by 240 s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=$1
OUT=$2
PY=${PYTHON:-target/python-clients/bin/python}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
KPORT=$(free_port); HPORT=$(free_port); RPORT=$(free_port); PPORT=$(free_port)
DATA=$(mktemp -d /tmp/distlog-capture.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$DATA"
}
trap cleanup EXIT
timeout 240 "$BIN" server --data-dir "$DATA/d" --kafka-listen "127.0.0.1:$KPORT" \
  --http-listen "127.0.0.1:$HPORT" --raft-listen "127.0.0.1:$RPORT" \
  --advertised-kafka "127.0.0.1:$PPORT" >"$DATA/broker.log" 2>&1 &
pids+=($!)
timeout 240 python3 fuzz/tools/record_proxy.py "$PPORT" "127.0.0.1:$KPORT" "$OUT" &
pids+=($!)
for _ in $(seq 100); do
  (echo >/dev/tcp/127.0.0.1/$PPORT) 2>/dev/null && (echo >/dev/tcp/127.0.0.1/$KPORT) 2>/dev/null && break
  sleep 0.1
done
B="127.0.0.1:$PPORT"
timeout 60 "$PY" fuzz/tools/clients.py "$B" admin
kc() { timeout 20 kcat -b "$B" "$@" || true; }
kc -L
for z in none gzip snappy lz4 zstd; do
  printf 'k1:v1-%s\nk2:v2-%s\n' "$z" "$z" | kc -P -t fuzz-a -z "$z" -K:
done
printf 'x\ny\nz\n' | kc -P -t fuzz-b -p 1 -H h1=v1
kc -C -t fuzz-a -o beginning -e -q >/dev/null
kc -C -t fuzz-b -p 1 -o -2 -e -q >/dev/null
timeout 60 "$PY" fuzz/tools/clients.py "$B" clients
kc -G capture-group-k fuzz-a -o beginning -e -q >/dev/null
timeout 30 "$PY" fuzz/tools/clients.py "$B" cleanup
echo "capture: $(ls "$OUT" | wc -l) frames in $OUT"
