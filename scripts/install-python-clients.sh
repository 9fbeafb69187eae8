#!/usr/bin/env bash
# Installs the Python Kafka clients that the compat-tests python suites drive
# (compat-tests/python/group_consume.py) into a virtualenv at target/python-clients.
# Called by scripts/install-deps.sh. Idempotent: when the venv already holds exactly these pins it
# returns at once without touching the network.
#
# The pins (every package, transitive ones included, so a run is reproducible):
#   kafka-python 3.0.12  - pure-Python client (its own protocol code)
#   aiokafka 0.14.0      - asyncio client (separate protocol code) + its dependencies below
#   confluent-kafka 2.16.2 - librdkafka's Python binding (its wheel bundles librdkafka); its AdminClient
#                          drives the admin-API tests
#
# Needs python3 >= 3.9 with the venv module and ensurepip; on Debian that is python3 + python3-venv,
# installed with apt when missing. PYTHON=/path/to/python3 picks another interpreter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/apt.sh
source scripts/apt.sh

PINS=(
  kafka-python==3.0.12
  aiokafka==0.14.0
  async-timeout==5.0.1
  packaging==26.3
  typing_extensions==4.16.0
  confluent-kafka==2.16.2
)
VENV="target/python-clients"
STAMP="${VENV}/.distlog-pins"
want="${PINS[*]}"

if [ -x "${VENV}/bin/python" ] && [ -f "${STAMP}" ] && [ "$(cat "${STAMP}")" = "${want}" ] &&
  "${VENV}/bin/python" -c 'import kafka, aiokafka, confluent_kafka' >/dev/null 2>&1; then
  echo "install-python-clients: present in ${VENV} (${want})"
  exit 0
fi

python="${PYTHON:-python3}"
usable() {
  command -v "$python" >/dev/null 2>&1 &&
    "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' >/dev/null 2>&1
}
make_venv() {
  rm -rf "${VENV}"
  mkdir -p target
  "$python" -m venv "${VENV}"
}

if ! usable; then
  apt_install install-python-clients python3 python3-venv
  [ -n "${PYTHON:-}" ] || python=/usr/bin/python3
  usable || {
    echo "install-python-clients: ${python} (Python >= 3.9) is not usable" >&2
    exit 1
  }
fi
echo "install-python-clients: creating ${VENV} with ${python} ($("$python" --version 2>&1))"
if ! make_venv; then
  # Debian's python3 creates venvs only with python3-venv (ensurepip) installed.
  apt_install install-python-clients python3-venv
  make_venv
fi
"${VENV}/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "${PINS[@]}"
"${VENV}/bin/python" -c 'import kafka, aiokafka, confluent_kafka; print("install-python-clients: kafka-python", kafka.__version__, "aiokafka", aiokafka.__version__, "confluent-kafka", confluent_kafka.__version__)'
printf '%s' "${want}" >"${STAMP}"
