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

# shellcheck source=scripts/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/apt.sh"

# The build dependencies of the load generator (kcat, C toolchain for rdkafka-sys).
"$(dirname "${BASH_SOURCE[0]}")/../scripts/install-deps.sh"

missing=()
command -v fio >/dev/null 2>&1 || missing+=(fio)
command -v iperf3 >/dev/null 2>&1 || missing+=(iperf3)
command -v python3 >/dev/null 2>&1 || missing+=(python3)

if [ "${#missing[@]}" -gt 0 ]; then
  apt_install bench-install-deps "${missing[@]}"
fi

if ! command -v perf >/dev/null 2>&1; then
  apt_install bench-install-deps linux-perf >/dev/null 2>&1 \
    || echo "bench-install-deps: linux-perf not installable here (optional, only for profiling)"
fi

echo "bench-install-deps: $(fio --version), $(iperf3 --version 2>&1 | head -n1)"
