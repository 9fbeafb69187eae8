#!/usr/bin/env bash
# Installs the system tools the benchmark suite (bench/run.sh) needs on a Debian machine, on top of
# what scripts/install-deps.sh installs for building the rdkafka-based load generator.
# Idempotent: does nothing when everything is already present. Uses sudo only when not root.
#
# Needed:
#   fio      - the disk's own limits: fdatasync'd sequential write, fdatasync latency, direct read
#   iperf3   - loopback TCP bandwidth
#   python3  - aggregation of the load generator's JSON lines into the results table
# Optional (installed when the package exists, never fatal):
#   linux-perf - `perf` for profiling the broker (not used by run.sh itself)
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-bench-deps: not root and no sudo; cannot install packages" >&2
    exit 1
  fi
fi

# The build dependencies of the load generator (kcat, C toolchain for rdkafka-sys).
"$(dirname "${BASH_SOURCE[0]}")/install-deps.sh"

missing=()
command -v fio >/dev/null 2>&1 || missing+=(fio)
command -v iperf3 >/dev/null 2>&1 || missing+=(iperf3)
command -v python3 >/dev/null 2>&1 || missing+=(python3)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-bench-deps: installing ${missing[*]}"
  # Install straight away if the package lists know the packages; refresh them otherwise.
  if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
  fi
fi

if ! command -v perf >/dev/null 2>&1; then
  $SUDO apt-get install -y --no-install-recommends linux-perf >/dev/null 2>&1 \
    || echo "install-bench-deps: linux-perf not installable here (optional, only for profiling)"
fi

echo "install-bench-deps: $(fio --version), $(iperf3 --version 2>&1 | head -n1)"
