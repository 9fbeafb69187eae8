#!/usr/bin/env bash
# Installs the system packages the test suite needs on a fresh Debian machine.
# Idempotent: does nothing when everything is already present.
#
# Needed:
#   kcat            - the second, independent Kafka client used by compat-tests/tests/kcat.rs
#   gcc, make, g++  - rdkafka-sys builds the bundled librdkafka with its own ./configure (no cmake)
#   zlib1g-dev      - gzip support in the bundled librdkafka (libz feature, found via pkg-config)
#   pkg-config
#   debootstrap     - docker/build-image.sh makes the image's Debian base without a registry
#   docker-compose  - docker/test.sh (only where a Docker Engine runs)
#   iproute2, iptables, util-linux - scripts/chaos.sh (network namespaces, cuts, tmpfs checks)
set -euo pipefail

# shellcheck source=scripts/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

"$(dirname "${BASH_SOURCE[0]}")/install-python-clients.sh" # kafka-python, aiokafka (venv)

missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v curl >/dev/null 2>&1 || missing+=(curl)           # scripts/local-cluster.sh readiness checks
command -v python3 >/dev/null 2>&1 || missing+=(python3)     # scripts/local-cluster.sh JSON checks
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
[ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)          # scripts/chaos.sh: network namespaces
command -v iptables >/dev/null 2>&1 || missing+=(iptables)    # scripts/chaos.sh: network cuts
command -v mountpoint >/dev/null 2>&1 || missing+=(util-linux) # scripts/local-cluster.sh: small disks
if command -v docker >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  missing+=(docker-compose)
fi
dpkg-query -W -f='${Status}' zlib1g-dev 2>/dev/null | grep -q 'install ok installed' || missing+=(zlib1g-dev)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all dependencies present ($(kcat -V 2>&1 | grep -m1 Version || true))"
  exit 0
fi

apt_install install-deps "${missing[@]}"
echo "install-deps: done ($(kcat -V 2>&1 | grep -m1 Version || true))"
