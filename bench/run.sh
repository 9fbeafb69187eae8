#!/usr/bin/env bash
# distlog benchmark suite (issue 3): one command, from a clean clone.
#
#   bench/run.sh                 # full run (~15-20 min on 2 cores; scenario 8 alone ~6 min)
#   BENCH_QUICK=1 bench/run.sh   # smoke run (~2-3 min): short durations, small partitions
#
# It installs its tools (bench/install-deps.sh: fio, iperf3), builds the release binaries,
# starts target/release/distlog on free loopback ports with a fresh data dir under bench/tmp/ (same
# filesystem as the repository), runs every scenario BENCH_RUNS times with the librdkafka-based
# load generator target/release/distlog-bench (one JSON line per run), measures the machine's own
# limits (fio, iperf3), and prints a markdown table that it also writes to bench/results/latest.md
# (raw JSON lines: bench/results/latest.jsonl). Everything it starts is stopped and its temp data
# removed on exit, failure or Ctrl-C; every step runs under `timeout`.
#
# Environment knobs (defaults: full / BENCH_QUICK=1):
#   BENCH_RUNS=3                 runs per scenario (min/median/max over them)
#   BENCH_SECS=10 / 2            seconds of producing per produce, tail and e2e run
#   BENCH_WINDOW_KB=4096         producer in-flight window, queue.buffering.max.kbytes (scenarios 1, 2, 4-tail)
#   BENCH_WINDOW_MSGS=100000     producer in-flight window, queue.buffering.max.messages (scenarios 1, 2)
#   BENCH_SMALL_WINDOW_KB=65536  window of scenario 3 (100-byte messages), kbytes
#   BENCH_SMALL_WINDOW_MSGS=1000000  window of scenario 3, messages
#   BENCH_CATCHUP_MB=2048 / 256  size of the catch-up partition (scenario 4), MiB
#   BENCH_FANOUT_MB=128 / 32     data read by each fan-out consumer (scenario 6), MiB
#   BENCH_FANOUT_CONSUMERS=8     fan-out consumers
#   BENCH_E2E_RATE=20000         end-to-end scenario rate, msgs/s
#   BENCH_IDLE_PARTITIONS=1000   partitions of the idle-RSS topic
#   BENCH_IDLE_SETTLE=10 / 5     seconds to wait before measuring idle RSS
#   BENCH_FIO_SECS=10 / 3        seconds per fio job and for iperf3
#   BENCH_FIO_BS=                fio write size in bytes (default: scenario 1's bytes per fsync)
#   BENCH_FIO_READ_MB=1024 / 256 file size of the fio sequential read job, MiB
#   BENCH_PERF=1                 also profile the broker with `perf record` during one extra (unreported)
#                                run of scenarios 1-3; top symbols go to bench/results/profile-*.txt
#   BENCH_DROP_CACHES=1          try `echo 3 > /proc/sys/vm/drop_caches` before each catch-up run
#   BENCH_SKIP_INSTALL=1         do not run bench/install-deps.sh
#   BENCH_SKIP_BUILD=1           do not run cargo build (use the existing release binaries)
#   BENCH_OUT=bench/results/latest.md  where the table goes
#   BENCH_ONLY="idle main idem transactions rebuild retention machine"  which groups to run (default: all):
#                                idle = idle RSS, main = scenarios 1-6, idem = scenario 8 (idempotent vs plain produce),
#                                transactions = scenario 11 (transactional vs idempotent produce, read_committed latency),
#                                rebuild = scenario 9 (producer-state rebuild on restart),
#                                retention = scenario 10 (retention freeing an expired topic under load),
#                                machine = scenario 7 (fio, iperf3)
#   BENCH_IDEM_RUNS=3            runs of scenario 8 (each run: both producers back to back; the
#                                order alternates with the run number)
#   BENCH_IDEM_VARIANTS="default mif5"  scenario-8 variants: default = librdkafka's defaults (an
#                                idempotent producer then has at most 5 requests in flight per
#                                connection, a plain one 1,000,000); mif5 = both capped at 5
#   BENCH_IDEM_WARMUP=1          seconds each scenario-8 producer runs before its measured window
#                                (librdkafka's idempotent producer asks for its producer id on a
#                                500 ms timer: a start-up cost, reported apart as first_ack_ms)
#   BENCH_TXN_RUNS=$BENCH_RUNS   runs of scenario 11 (each run: transactional and idempotent producers back to
#                                back, order alternating with the run number, then the commit-visibility latency)
#   BENCH_TXN_SECS=5 / 2         seconds each scenario-11 producer sends (transactions of 100 x 1 KiB)
#   BENCH_TXN_PRODUCERS=8        the concurrent-producer count of scenario 11 (besides 1), on 8 partitions; each
#                                leg has the BENCH_WINDOW_KB / BENCH_WINDOW_MSGS window, split over its producers
#   BENCH_TXN_MESSAGES=          also stop each scenario-11 producer after this many messages (default: none)
#   BENCH_TXN_LAT_TXNS=200       scenario 11's commit-visibility transactions (10 messages, one every 20 ms)
#   BENCH_REBUILD_PRODUCERS=10000 / 2000  idempotent producers written before the restart (scenario 9)
#   BENCH_REBUILD_BATCHES=3      batches per producer (scenario 9)
#   BENCH_REBUILD_SEGMENT_BYTES=1048576  segment.bytes of the snapshot case of scenario 9
#   BENCH_RETENTION_RUNS=$BENCH_RUNS runs of scenario 10 (each fills BENCH_RETENTION_GIB on disk, then
#                                frees it; a run is skipped with an error line when the disk has less
#                                than 1.1 x that + 2 GiB free)
#   BENCH_RETENTION_GIB=10 / 0.5 GiB of expired records scenario 10 fills and retention frees
#   BENCH_RETENTION_PARTITIONS=100  partitions they are spread over (segment.bytes 16 MiB)
#   BENCH_RETENTION_LOAD_RATE=20000  msgs/s (1 KiB, acks=all, 8 partitions) of the load whose ack
#                                latency scenario 10 reports during and after the truncation
#   BENCH_RETENTION_CHECK_MS=5000  --log-retention-check-interval-ms of scenario 10's restarted broker
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

QUICK="${BENCH_QUICK:-0}"
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }
RUNS="${BENCH_RUNS:-3}"
SECS="${BENCH_SECS:-$(q 10 2)}"
WINDOW_KB="${BENCH_WINDOW_KB:-4096}"
WINDOW_MSGS="${BENCH_WINDOW_MSGS:-100000}"
SMALL_WINDOW_KB="${BENCH_SMALL_WINDOW_KB:-65536}"
SMALL_WINDOW_MSGS="${BENCH_SMALL_WINDOW_MSGS:-1000000}"
CATCHUP_MB="${BENCH_CATCHUP_MB:-$(q 2048 256)}"
FANOUT_MB="${BENCH_FANOUT_MB:-$(q 128 32)}"
FANOUT_CONSUMERS="${BENCH_FANOUT_CONSUMERS:-8}"
E2E_RATE="${BENCH_E2E_RATE:-20000}"
IDLE_PARTITIONS="${BENCH_IDLE_PARTITIONS:-1000}"
IDLE_SETTLE="${BENCH_IDLE_SETTLE:-$(q 10 5)}"
FIO_SECS="${BENCH_FIO_SECS:-$(q 10 3)}"
FIO_BS="${BENCH_FIO_BS:-}"
FIO_READ_MB="${BENCH_FIO_READ_MB:-$(q 1024 256)}"
DROP_CACHES="${BENCH_DROP_CACHES:-1}"
PERF="${BENCH_PERF:-0}"
OUT="${BENCH_OUT:-bench/results/latest.md}"
ONLY="${BENCH_ONLY:-idle main idem transactions rebuild retention machine}"
IDEM_RUNS="${BENCH_IDEM_RUNS:-$RUNS}"
IDEM_WARMUP="${BENCH_IDEM_WARMUP:-1}"
IDEM_VARIANTS="${BENCH_IDEM_VARIANTS:-default mif5}"
TXN_RUNS="${BENCH_TXN_RUNS:-$RUNS}"
TXN_SECS="${BENCH_TXN_SECS:-$(q 5 2)}"
TXN_PRODUCERS="${BENCH_TXN_PRODUCERS:-8}"
TXN_MESSAGES="${BENCH_TXN_MESSAGES:-}"
TXN_LAT_TXNS="${BENCH_TXN_LAT_TXNS:-200}"
REBUILD_PRODUCERS="${BENCH_REBUILD_PRODUCERS:-$(q 10000 2000)}"
REBUILD_BATCHES="${BENCH_REBUILD_BATCHES:-3}"
REBUILD_SEGMENT_BYTES="${BENCH_REBUILD_SEGMENT_BYTES:-1048576}"
RETENTION_RUNS="${BENCH_RETENTION_RUNS:-$RUNS}"
RETENTION_GIB="${BENCH_RETENTION_GIB:-$(q 10 0.5)}"
RETENTION_PARTITIONS="${BENCH_RETENTION_PARTITIONS:-100}"
RETENTION_LOAD_RATE="${BENCH_RETENTION_LOAD_RATE:-20000}"
RETENTION_CHECK_MS="${BENCH_RETENTION_CHECK_MS:-5000}"
want() { [[ " $ONLY " == *" $1 "* ]]; }

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [ "${BENCH_SKIP_INSTALL:-0}" != 1 ]; then
  timeout 900 bench/install-deps.sh >&2
fi
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building release binaries"
  timeout 3600 cargo build --release -p distlog-broker -p distlog-bench >&2
fi
BIN_DIR="${CARGO_TARGET_DIR:-target}/release"
DISTLOG="$BIN_DIR/distlog"
BENCH="$BIN_DIR/distlog-bench"
for b in "$DISTLOG" "$BENCH"; do [ -x "$b" ] || { echo "missing $b" >&2; exit 1; }; done

mkdir -p bench/tmp "$(dirname "$OUT")"
RUN_DIR="$(mktemp -d "$ROOT/bench/tmp/run.XXXXXX")"
JSONL="$RUN_DIR/results.jsonl"
: >"$JSONL"
BROKER_PID=""
IPERF_PID=""

stop_broker() {
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  BROKER_PID=""
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_broker
  if [ -n "$IPERF_PID" ]; then kill "$IPERF_PID" 2>/dev/null || true; wait "$IPERF_PID" 2>/dev/null || true; fi
  rm -rf "$RUN_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

http_ok() { # http_ok PORT PATH: true on a 200 (bash /dev/tcp, no curl needed)
  local line
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
  line="$(timeout 5 head -n1 <&3)" || true
  exec 3<&- 3>&-
  [[ "$line" == *" 200"* ]]
}

# start_broker NAME: a fresh broker with its data in $RUN_DIR/NAME; sets BROKER_PID, KAFKA, HTTP.
start_broker() {
  local name="$1" kport hport rport
  kport="$(free_port)"; hport="$(free_port)"; rport="$(free_port)"
  mkdir -p "$RUN_DIR/$name"
  "$DISTLOG" server --data-dir "$RUN_DIR/$name/data" \
    --kafka-listen "127.0.0.1:$kport" --advertised-kafka "127.0.0.1:$kport" \
    --http-listen "127.0.0.1:$hport" --raft-listen "127.0.0.1:$rport" \
    --log-level warn >"$RUN_DIR/$name/distlog.log" 2>&1 &
  BROKER_PID=$!
  KAFKA="127.0.0.1:$kport"
  HTTP="127.0.0.1:$hport"
  for _ in $(seq 1 300); do
    http_ok "$hport" /health && return 0
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "distlog did not become healthy; log tail:" >&2
  tail -n 40 "$RUN_DIR/$name/distlog.log" >&2
  exit 1
}

# bench LABEL RUN TIMEOUT SUBCOMMAND ARGS...: one distlog-bench run against the running broker (a
# scenario that runs its own broker, state-rebuild, needs none); its JSON line (or an error line if
# it died or timed out) goes to $JSONL.
bench() {
  local label="$1" run="$2" limit="$3" out rc=0 target=()
  shift 3
  if [ -n "$BROKER_PID" ]; then
    target=(--bootstrap "$KAFKA" --broker-pid "$BROKER_PID" --http "$HTTP")
  fi
  log "$label run $run: $*"
  out="$(timeout --kill-after=10 "$limit" "$BENCH" "${target[@]}" \
    --label "$label" --run "$run" --timeout-secs "$((limit - 5))" "$@" 2>>"$RUN_DIR/bench.log")" || rc=$?
  out="$(printf '%s\n' "$out" | grep '^{' | tail -n 1 || true)"
  if [ -z "$out" ]; then
    out="{\"scenario\":\"$label\",\"run\":$run,\"error\":\"distlog-bench exited with $rc (124 = timeout) and printed nothing\"}"
  fi
  printf '%s\n' "$out" >>"$JSONL"
  printf '  %s\n' "$out" | cut -c1-240 >&2
}

record() { printf '%s\n' "$1" >>"$JSONL"; }

# evict_cache RUN: push the broker's data out of the page cache before a catch-up read.
evict_cache() {
  local dropped=false resident
  sync
  if [ "$DROP_CACHES" = 1 ] && { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then dropped=true; fi
  # Targeted eviction works without privileges for clean pages; it also covers a failed drop_caches.
  resident="$(timeout 120 python3 - "$RUN_DIR/main/data" <<'PY'
import os, subprocess, sys
files = []
for d, _, names in os.walk(sys.argv[1]):
    for n in names:
        p = os.path.join(d, n)
        try:
            fd = os.open(p, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
            files.append(p)
        except OSError:
            pass
res = 0
for i in range(0, len(files), 200):
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES"] + files[i:i+200],
                             capture_output=True, text=True, timeout=60).stdout
        res += sum(int(x) for x in out.split())
    except Exception:
        res = -1 * 1024 * 1024
        break
print(f"{res / 1048576:.1f}")
PY
)" || resident=-1
  record "{\"scenario\":\"cache\",\"run\":$1,\"drop_caches\":$dropped,\"resident_mib\":$resident}"
}

START_EPOCH="$(date +%s)"
python3 - "$RUN_DIR" "$ROOT" >"$RUN_DIR/facts.json" <<'PY'
import json, os, platform, subprocess, sys, datetime
run_dir, root = sys.argv[1], sys.argv[2]
def sh(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, timeout=20, cwd=root).stdout.strip()
    except Exception:
        return ""
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal:")), "0")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
fs = sh("df", "-T", run_dir).splitlines()[-1].split()
dirty = sh("git", "status", "--porcelain", "--untracked-files=no")
print(json.dumps({
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "commit": sh("git", "rev-parse", "--short=12", "HEAD") + (" (dirty)" if dirty else ""),
    "nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(int(mem) / 1048576, 1),
    "kernel": platform.release(), "fs": f"{fs[1]} on {fs[0]} ({fs[6]})" if len(fs) >= 7 else "?",
    "loadavg_start": open("/proc/loadavg").read().split()[:3],
    "rustc": sh("rustc", "--version"), "fio": sh("fio", "--version"),
    "iperf3": sh("iperf3", "--version").splitlines()[0] if sh("iperf3", "--version") else "",
}))
PY

# --- idle RSS: a fresh broker with one topic of many partitions -----------------------------------
if want idle; then
start_broker idle
bench idle-rss 1 $((IDLE_SETTLE * 2 + 180)) idle-rss --topic idle --partitions "$IDLE_PARTITIONS" \
  --settle-secs "$IDLE_SETTLE"
stop_broker
rm -rf "$RUN_DIR/idle"
fi

# --- the main broker ----------------------------------------------------------------------------
if want main || want idem || want transactions; then start_broker main; fi
PT=$((SECS * 3 + 120))
if want main; then
for r in $(seq 1 "$RUNS"); do
  bench s1-produce-1p "$r" "$PT" produce --topic "s1-$r" --partitions 1 --size 1024 --linger-ms 5 \
    --window-kbytes "$WINDOW_KB" --window-messages "$WINDOW_MSGS" --duration-secs "$SECS"
done
for r in $(seq 1 "$RUNS"); do
  bench s2-produce-16p "$r" "$PT" produce --topic "s2-$r" --partitions 16 --size 1024 --linger-ms 5 \
    --window-kbytes "$WINDOW_KB" --window-messages "$WINDOW_MSGS" --duration-secs "$SECS"
done
for r in $(seq 1 "$RUNS"); do
  bench s3-produce-100b "$r" "$PT" produce --topic "s3-$r" --partitions 1 --size 100 --linger-ms 5 \
    --batch-bytes 1000000 --batch-messages 100000 \
    --window-kbytes "$SMALL_WINDOW_KB" --window-messages "$SMALL_WINDOW_MSGS" --duration-secs "$SECS"
done
fi

# Scenario 8: idempotent vs plain producer (issue 12), 1 KiB, acks=all, 1 and 16 partitions. Each run
# measures both producers back to back on fresh topics (odd runs idempotent first, even runs plain
# first), so the machine's drift and the order stay out of the overhead.
if want idem; then
for r in $(seq 1 "$IDEM_RUNS"); do
  for p in 1 16; do
    for v in $IDEM_VARIANTS; do
      if [ "$v" = mif5 ]; then label="s8-idem-${p}p-mif5"; mif=(--max-in-flight 5); else label="s8-idem-${p}p"; mif=(); fi
      bench "$label" "$r" $((SECS * 6 + 180)) idem-overhead --topic "$label-$r" --partitions "$p" \
        --size 1024 --linger-ms 5 --window-kbytes "$WINDOW_KB" --window-messages "$WINDOW_MSGS" \
        --duration-secs "$SECS" --warmup-secs "$IDEM_WARMUP" "${mif[@]}"
    done
  done
done
fi

# Scenario 11: transactional vs idempotent producers (issue 14), 1 KiB, acks=all, transactions of 100
# messages, 1 and TXN_PRODUCERS producers on an 8-partition topic (producer i writes partition i), back
# to back on fresh topics (odd runs transactional first); then a transactional producer commits
# TXN_LAT_TXNS transactions of 10 messages, one every 20 ms, and a read_committed consumer times them.
if want transactions; then
for r in $(seq 1 "$TXN_RUNS"); do
  cap=()
  if [ -n "$TXN_MESSAGES" ]; then cap=(--messages-per-producer "$TXN_MESSAGES"); fi
  bench s11-transactions "$r" $((TXN_SECS * 8 + 240)) transactions --topic "s11-txn-$r" \
    --partitions 8 --producers "1,$TXN_PRODUCERS" --size 1024 --txn-messages 100 --linger-ms 5 \
    --window-kbytes "$WINDOW_KB" --window-messages "$WINDOW_MSGS" --duration-secs "$TXN_SECS" "${cap[@]}" \
    --latency-txns "$TXN_LAT_TXNS" --latency-txn-messages 10 --latency-interval-ms 20
  grep 'transactions summary' "$RUN_DIR/bench.log" | tail -n 1 | sed 's/^/  /' >&2 || true
done
fi

if want main; then
# Optional profiles: one extra run of scenarios 1-3 with `perf record` attached to the broker.
profile() { # profile NAME SUBCOMMAND ARGS...
  local name="$1" data="$RUN_DIR/perf-$1.data"
  shift
  timeout $((SECS + 30)) perf record -F 499 -g -p "$BROKER_PID" -o "$data" -- sleep $((SECS + 2)) \
    >/dev/null 2>>"$RUN_DIR/bench.log" &
  local perf_pid=$!
  sleep 0.5
  bench "profile-$name" 1 "$PT" "$@"
  wait "$perf_pid" 2>/dev/null || true
  {
    echo "# perf profile of the broker during $name (perf record -F 499 -g, self time, top symbols)"
    timeout 300 perf report -i "$data" --no-children --stdio --sort dso,symbol -g none --percent-limit 0.7 \
      2>/dev/null | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | cut -c1-160 | head -n 45
  } >"$(dirname "$OUT")/profile-$name.txt" || log "perf report for $name failed"
}
if [ "$PERF" = 1 ]; then
  profile s1 produce --topic p1 --partitions 1 --size 1024 --linger-ms 5 \
    --window-kbytes "$WINDOW_KB" --window-messages "$WINDOW_MSGS" --duration-secs "$SECS"
  profile s2 produce --topic p2 --partitions 16 --size 1024 --linger-ms 5 \
    --window-kbytes "$WINDOW_KB" --window-messages "$WINDOW_MSGS" --duration-secs "$SECS"
  profile s3 produce --topic p3 --partitions 1 --size 100 --linger-ms 5 --batch-bytes 1000000 \
    --batch-messages 100000 --window-kbytes "$SMALL_WINDOW_KB" --window-messages "$SMALL_WINDOW_MSGS" \
    --duration-secs "$SECS"
fi

# Scenario 4: catch-up read of a CATCHUP_MB partition (filled once), evicted from the page cache.
bench s4-fill 1 3600 produce --topic catchup --partitions 1 --size 1024 --linger-ms 5 \
  --window-kbytes 16384 --window-messages "$WINDOW_MSGS" --total-mib "$CATCHUP_MB"
for r in $(seq 1 "$RUNS"); do
  evict_cache "$r"
  bench s4-catch-up "$r" 1800 catch-up --topic catchup
done
for r in $(seq 1 "$RUNS"); do
  bench s4-tail "$r" "$PT" tail --topic "tail-$r" --size 1024 --linger-ms 5 \
    --window-kbytes "$WINDOW_KB" --window-messages "$WINDOW_MSGS" --duration-secs "$SECS"
done
for r in $(seq 1 "$RUNS"); do
  bench s5-e2e "$r" "$PT" e2e --topic "e2e-$r" --size 1024 --linger-ms 5 --rate "$E2E_RATE" \
    --window-kbytes "$WINDOW_KB" --window-messages "$WINDOW_MSGS" --duration-secs "$SECS"
done
for r in $(seq 1 "$RUNS"); do
  bench s6-fan-out "$r" 1200 fan-out --topic "fanout-$r" --size 1024 --linger-ms 5 \
    --window-kbytes 16384 --total-mib "$FANOUT_MB" --consumers "$FANOUT_CONSUMERS"
done
fi
stop_broker

# --- scenario 9: producer-state rebuild on restart (issue 12) ---------------------------------------
# Its own broker per run (data under $RUN_DIR): REBUILD_PRODUCERS idempotent producers write
# REBUILD_BATCHES batches each, SIGTERM, restart on the same data dir, first produce. "replay": the
# default segment size, every entry replayed; "snapshot": small segments, the last one starts with
# a snapshot of every producer.
if want rebuild; then
for r in $(seq 1 "$RUNS"); do
  for mode in replay snapshot; do
    seg=()
    if [ "$mode" = snapshot ]; then seg=(--segment-bytes "$REBUILD_SEGMENT_BYTES"); fi
    DISTLOG_BIN="$DISTLOG" bench "s9-rebuild-$mode" "$r" 900 state-rebuild --producers "$REBUILD_PRODUCERS" \
      --batches "$REBUILD_BATCHES" "${seg[@]}" --data-dir "$RUN_DIR/rebuild-$mode-$r/data"
    rm -rf "$RUN_DIR/rebuild-$mode-$r"
  done
done
fi

# --- scenario 10: retention freeing an expired topic under a steady load (issue 13) ----------------
# Its own broker per run (data under $RUN_DIR): RETENTION_GIB of records two hours old go to a topic
# of RETENTION_PARTITIONS partitions (segment.bytes 16 MiB, retention.ms 1 h) with no retention check;
# SIGTERM; restart with --log-retention-check-interval-ms RETENTION_CHECK_MS and a steady acks=all
# load on a second topic; the time until the fill's ledger files are gone, and the load's ack latency
# during the truncation and as long after it. The data dir is removed after every run.
if want retention; then
for r in $(seq 1 "$RETENTION_RUNS"); do
  need_kib="$(python3 -c "print(int(($RETENTION_GIB * 1.1 + 2) * 1048576))")"
  avail_kib="$(df -Pk "$RUN_DIR" | awk 'NR == 2 { print $4 }')"
  if [ "$avail_kib" -lt "$need_kib" ]; then
    log "s10-retention run $r skipped: $((avail_kib / 1024)) MiB free, $((need_kib / 1024)) MiB needed"
    record "{\"scenario\":\"s10-retention\",\"run\":$r,\"error\":\"skipped: $((avail_kib / 1024)) MiB free on the disk, $((need_kib / 1024)) MiB needed for a ${RETENTION_GIB} GiB fill\"}"
    continue
  fi
  DISTLOG_BIN="$DISTLOG" bench s10-retention "$r" 2400 retention --fill-gib "$RETENTION_GIB" \
    --partitions "$RETENTION_PARTITIONS" --load-rate "$RETENTION_LOAD_RATE" \
    --check-interval-ms "$RETENTION_CHECK_MS" --data-dir "$RUN_DIR/retention-$r/data"
  rm -rf "$RUN_DIR/retention-$r"
done
fi

# --- scenario 7: the machine's limits ------------------------------------------------------------
FIO_BS_SOURCE=""
if ! want machine; then
  FIO_BS="${FIO_BS:-0}"
  FIO_BS_SOURCE="not run"
elif [ -z "$FIO_BS" ]; then
  FIO_BS="$(python3 - "$JSONL" <<'PY'
import json, statistics, sys
v = [l["bytes_per_fsync"] for l in map(json.loads, open(sys.argv[1]))
     if l.get("scenario") == "s1-produce-1p" and "bytes_per_fsync" in l]
bs = statistics.median(v) if v else 262144
bs = min(max(int((bs + 4095) // 4096 * 4096), 4096), 4 * 1048576)
print(bs)
PY
)"
  FIO_BS_SOURCE="scenario 1 median bytes per fsync, rounded up to 4 KiB"
else
  FIO_BS_SOURCE="BENCH_FIO_BS"
fi
if want machine; then
FIO_DIR="$RUN_DIR/fio"
mkdir -p "$FIO_DIR"
log "fio: sequential write, fdatasync after every ${FIO_BS}-byte write, ${FIO_SECS} s"
timeout $((FIO_SECS + 120)) fio --name=seqwrite-fdatasync --directory="$FIO_DIR" --rw=write --bs="$FIO_BS" \
  --size=64g --runtime="$FIO_SECS" --ioengine=sync --fdatasync=1 --fallocate=none \
  --output-format=json --output="$RUN_DIR/fio-write.json" >&2 || log "fio write failed"
rm -f "$FIO_DIR"/*
log "fio: sequential read, direct=1, 1 MiB, ${FIO_READ_MB} MiB file"
timeout $((FIO_SECS + 300)) fio --name=seqread-direct --directory="$FIO_DIR" --rw=read --bs=1m --direct=1 \
  --ioengine=libaio --iodepth=8 --size="${FIO_READ_MB}m" --runtime="$FIO_SECS" \
  --output-format=json --output="$RUN_DIR/fio-read.json" >&2 || log "fio read failed"
rm -rf "$FIO_DIR"
IPERF_PORT="$(free_port)"
log "iperf3: loopback TCP, ${FIO_SECS} s"
timeout $((FIO_SECS + 60)) iperf3 -s -1 -p "$IPERF_PORT" >/dev/null 2>&1 &
IPERF_PID=$!
sleep 0.5
timeout $((FIO_SECS + 30)) iperf3 -c 127.0.0.1 -p "$IPERF_PORT" -t "$FIO_SECS" -J >"$RUN_DIR/iperf.json" 2>&1 \
  || log "iperf3 failed"
wait "$IPERF_PID" 2>/dev/null || true
IPERF_PID=""
fi

# --- the table -----------------------------------------------------------------------------------
END_EPOCH="$(date +%s)"
cp "$JSONL" "${OUT%.md}.jsonl"
python3 bench/report.py --results "$JSONL" --facts "$RUN_DIR/facts.json" \
  --fio-write "$RUN_DIR/fio-write.json" --fio-read "$RUN_DIR/fio-read.json" --iperf "$RUN_DIR/iperf.json" \
  --fio-bs "$FIO_BS" --fio-bs-source "$FIO_BS_SOURCE" --elapsed $((END_EPOCH - START_EPOCH)) \
  --groups "$ONLY" \
  --settings "groups=${ONLY}, runs=$RUNS, produce secs=$SECS, window=${WINDOW_KB} KiB/${WINDOW_MSGS} msgs (s3: ${SMALL_WINDOW_KB} KiB/${SMALL_WINDOW_MSGS} msgs), catch-up=${CATCHUP_MB} MiB, fan-out=${FANOUT_MB} MiB x ${FANOUT_CONSUMERS}, e2e rate=${E2E_RATE}/s, idle partitions=${IDLE_PARTITIONS}, idem runs=${IDEM_RUNS} (warm-up ${IDEM_WARMUP} s, variants: ${IDEM_VARIANTS}), txn runs=${TXN_RUNS} (${TXN_SECS} s per leg, 1 and ${TXN_PRODUCERS} producers${TXN_MESSAGES:+, at most $TXN_MESSAGES msgs each}, ${TXN_LAT_TXNS} latency txns), rebuild=${REBUILD_PRODUCERS} producers x ${REBUILD_BATCHES} batches (snapshot case: segment.bytes=${REBUILD_SEGMENT_BYTES}), retention=${RETENTION_RUNS} runs x ${RETENTION_GIB} GiB over ${RETENTION_PARTITIONS} partitions (load ${RETENTION_LOAD_RATE} msgs/s, check interval ${RETENTION_CHECK_MS} ms), quick=${QUICK}" \
  >"$OUT"
cat "$OUT"
log "wrote $OUT and ${OUT%.md}.jsonl"
