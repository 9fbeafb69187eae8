#!/usr/bin/env bash
# Records real node-to-node traffic as seeds of the raft_frame and bookie_wire fuzz targets.
#
# Usage: fuzz/tools/capture_cluster.sh DISTLOG_BIN OUT_DIR
#
# Starts three `distlog server` nodes on loopback (every role, 3/3/2 topics) whose Raft and bookie
# addresses, as the other nodes know them (--meta-voters, --advertised-bookie), are recording
# proxies (record_proxy.py) in front of the real ports; then produces and consumes with kcat.
# Frames land in OUT_DIR/{raft-req,raft-rep,bookie-req,bookie-rep}. Everything started is
# stopped on exit; the run is bounded by 120 s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=$1
OUT=$2
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DATA=$(mktemp -d /tmp/distlog-capture-cluster.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$DATA"
}
trap cleanup EXIT
declare -A K H R B PR PB
voters=""
for k in 1 2 3; do
  K[$k]=$(free_port); H[$k]=$(free_port); R[$k]=$(free_port); B[$k]=$(free_port)
  PR[$k]=$(free_port); PB[$k]=$(free_port)
  voters+="${voters:+,}$k=127.0.0.1:${PR[$k]}"
done
for k in 1 2 3; do
  timeout 120 python3 fuzz/tools/record_proxy.py "${PR[$k]}" "127.0.0.1:${R[$k]}" "$OUT/raft-req" "$OUT/raft-rep" &
  pids+=($!)
  timeout 120 python3 fuzz/tools/record_proxy.py "${PB[$k]}" "127.0.0.1:${B[$k]}" "$OUT/bookie-req" "$OUT/bookie-rep" &
  pids+=($!)
done
for k in 1 2 3; do
  timeout 120 "$BIN" server --node-id "$k" --data-dir "$DATA/n$k" --kafka-listen "127.0.0.1:${K[$k]}" \
    --http-listen "127.0.0.1:${H[$k]}" --raft-listen "127.0.0.1:${R[$k]}" \
    --advertised-raft "127.0.0.1:${PR[$k]}" --bookie-listen "127.0.0.1:${B[$k]}" \
    --advertised-bookie "127.0.0.1:${PB[$k]}" --meta-voters "$voters" >"$DATA/n$k.log" 2>&1 &
  pids+=($!)
done
boot="127.0.0.1:${K[1]},127.0.0.1:${K[2]},127.0.0.1:${K[3]}"
for _ in $(seq 60); do
  timeout 5 kcat -b "$boot" -L -m 2 2>/dev/null | grep -q "3 brokers" && break
  sleep 1
done
for i in 1 2 3; do
  seq 1 200 | sed "s/^/record-$i-/" | timeout 30 kcat -b "$boot" -P -t cluster-seed -X topic.request.required.acks=-1 || true
done
timeout 30 kcat -b "$boot" -C -t cluster-seed -o beginning -e -q >/dev/null || true
sleep 2
echo "capture_cluster: raft $(ls "$OUT/raft-req" | wc -l)+$(ls "$OUT/raft-rep" | wc -l), bookie $(ls "$OUT/bookie-req" 2>/dev/null | wc -l)+$(ls "$OUT/bookie-rep" 2>/dev/null | wc -l) frames"
