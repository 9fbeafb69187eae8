#!/usr/bin/env bash
# The one test command: installs what the tests need, builds everything (including the `distlog`
# binary the compatibility suite runs), runs every test, then checks formatting and lints.
# Every step runs even if an earlier one failed; the script fails if any step failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

failed=()
step() {
  local name="$1"
  shift
  echo "==> ${name}: $*"
  local started=$SECONDS
  if "$@"; then
    echo "==> ${name}: ok ($((SECONDS - started)) s)"
  else
    echo "==> ${name}: FAILED ($((SECONDS - started)) s)"
    failed+=("$name")
  fi
}

step install-deps scripts/install-deps.sh
step build cargo build --workspace --all-targets
# A global guard: the suite normally takes a few minutes; never let it hang CI.
step test timeout --signal=TERM --kill-after=30 1500 cargo test --workspace --no-fail-fast
# The reliability campaign, bounded: randomized fault schedules (kill -9, pauses, partitions, a
# full disk, several at once) on 3- and 5-node clusters in network namespaces, each trial judged
# by the queue checker; new seeds every run (a failure prints the seed that replays it).
step chaos timeout --signal=TERM --kill-after=60 840 scripts/chaos.sh --trials 6 --duration 45 --five-every 3 --parallel 2
# Coverage-guided fuzzing (cargo-fuzz on stable, --sanitizer none): every target replays its
# regressions, then runs from its seed corpus for a fixed time; any crash fails the step.
step fuzz timeout --signal=TERM --kill-after=60 1200 scripts/fuzz.sh --seconds 15
# Docker image and compose clusters with real faults (skipped without a Docker Engine).
step docker timeout --signal=TERM --kill-after=30 1200 docker/test.sh
step fmt cargo fmt --all -- --check
step clippy cargo clippy --workspace --all-targets -- -D warnings

if [ "${#failed[@]}" -ne 0 ]; then
  echo "scripts/test.sh: FAILED steps: ${failed[*]}"
  exit 1
fi
echo "scripts/test.sh: all steps passed"
