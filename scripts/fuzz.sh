#!/usr/bin/env bash
# Builds and runs distlog's fuzz targets (fuzz/, cargo-fuzz on libFuzzer) on STABLE Rust:
# `--sanitizer none` needs no nightly flag (see fuzz/README.md).
#
# Usage: scripts/fuzz.sh [--seconds N] [--runs N] [--codegen-units N] [target...]
#   --seconds N  run each target for N seconds (default 20)
#   --runs N     run each target for N executions instead
#   --codegen-units N  LLVM codegen units per crate (default 16, for a faster build than
#                cargo-fuzz's own default of 1; pass 1 for long campaigns, whose executions may
#                run somewhat faster)
#   target       any of: kafka_request record_batch bookie_wire raft_frame metadata_apply
#                (default: all of them, one after the other)
#
# First every input under fuzz/regressions/<target>/ is replayed once (a crash found earlier
# stays fixed), then the target runs from its seed corpus (fuzz/corpus/<target>/, never
# modified: new inputs go to a temporary directory). Prints each target's executions and exec/s;
# exits non-zero if any target crashed, leaked past its limits or hung (crash inputs are copied
# to fuzz/artifacts/<target>/, gitignored). Installs cargo-fuzz if missing. Everything runs
# under deadlines (build 60 min, each run its time plus 5 min) and temporary files are removed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ALL=(kafka_request record_batch bookie_wire raft_frame metadata_apply)
secs=20
runs=""
cgu=16
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) secs=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --codegen-units) cgu=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
for t in "${targets[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target $t (known: ${ALL[*]})" >&2; exit 2; }
done
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  timeout 1800 cargo install cargo-fuzz --locked
fi

tmp=$(mktemp -d /tmp/distlog-fuzz.XXXXXX)
# Scratch directories go to tmpfs when there is one: the harnesses' brokers and bookies fsync
# every write, which costs nothing there and milliseconds per input on a disk.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then scratch=$(mktemp -d /dev/shm/distlog-fuzz.XXXXXX); else scratch="$tmp/scratch"; fi
trap 'rm -rf "$tmp" "$scratch"' EXIT
# The harnesses' scratch directories (brokers, bookies) live here, removed even after a crash.
export DISTLOG_FUZZ_TMP="$scratch"
mkdir -p "$DISTLOG_FUZZ_TMP"

echo "fuzz.sh: building ${targets[*]} (stable, --sanitizer none)"
(cd fuzz && timeout 3600 cargo fuzz build -s none --codegen-units "$cgu")

if [ -n "$runs" ]; then limit=(-runs="$runs"); budget=$((3600 * 4)); else limit=(-max_total_time="$secs"); budget=$((secs + 300)); fi
failed=()
summary=()
for t in "${targets[@]}"; do
  reg="fuzz/regressions/$t"
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg" 2>/dev/null)" ]; then
    if ! (cd fuzz && timeout 600 cargo fuzz run -s none --codegen-units "$cgu" "$t" "../$reg"/* -- -rss_limit_mb=4096 -timeout=30) \
      >"$tmp/$t.regressions.log" 2>&1; then
      echo "fuzz.sh: $t: a regression input fails again:"; tail -30 "$tmp/$t.regressions.log"
      failed+=("$t(regression)")
    fi
  fi
  mkdir -p "$tmp/corpus/$t" "$tmp/artifacts/$t"
  log="$tmp/$t.log"
  rc=0
  (cd fuzz && timeout "$budget" cargo fuzz run -s none --codegen-units "$cgu" "$t" "$tmp/corpus/$t" "corpus/$t" -- \
    "${limit[@]}" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$tmp/artifacts/$t/") >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  line="$t: executions=${execs:-?} exec/s=${rate:-?} cov=${cov:-?} new-inputs=$(ls "$tmp/corpus/$t" | wc -l) rc=$rc"
  echo "fuzz.sh: $line"
  summary+=("$line")
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    mkdir -p "fuzz/artifacts/$t"
    cp "$tmp/artifacts/$t"/* "fuzz/artifacts/$t/" 2>/dev/null || true
    grep -E "panicked|ERROR: libFuzzer|SUMMARY" "$log" | head -5 || true
    tail -40 "$log"
  fi
done
echo "fuzz.sh: summary"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
echo "fuzz.sh: ok"
