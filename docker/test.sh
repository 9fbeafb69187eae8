#!/usr/bin/env bash
# The Docker test: build the image without a registry, start the three-node
# compose cluster exactly as the README says, run the fault scenario from the
# host with real clients (compat-tests' distlog-compose-check: produce with
# acks=all, docker kill the partition owner, disconnect another node for 20 s,
# restart the killed one, consume and check every acknowledged message is
# there once, in order), and tear everything down (containers, networks,
# volumes) whatever happens. Skipped, with a message, when no Docker Engine
# is reachable.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v docker >/dev/null 2>&1 || ! timeout 20 docker info >/dev/null 2>&1; then
  echo "docker/test.sh: SKIPPED: no Docker Engine is reachable (docker info failed)"
  exit 0
fi
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "docker/test.sh: FAILED: docker-compose is not installed (scripts/install-deps.sh installs it)" >&2
  exit 1
fi

export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-distlog-test}"
export DISTLOG_IMAGE="${DISTLOG_IMAGE:-distlog:latest}"
FILE=docker/docker-compose.yml
SPLIT=docker/docker-compose.split.yml
MESSAGES="${DISTLOG_COMPOSE_MESSAGES:-50000}"

# The published ports: the README's 19092-19094 and 19644-19646 when free,
# otherwise free ones (the test must not depend on a port being free).
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# publish VAR PORT: export VAR=PORT, or a free port when PORT is taken.
publish() {
  local p="$2"
  port_free "$p" || p="$(free_port)"
  export "$1=$p"
}
publish DISTLOG_PORT_1 19092
publish DISTLOG_PORT_2 19093
publish DISTLOG_PORT_3 19094
publish DISTLOG_HTTP_PORT_1 19644
publish DISTLOG_HTTP_PORT_2 19645
publish DISTLOG_HTTP_PORT_3 19646
BOOTSTRAP="localhost:$DISTLOG_PORT_1,localhost:$DISTLOG_PORT_2,localhost:$DISTLOG_PORT_3"

compose() { timeout 180 docker-compose -f "$FILE" "$@"; }
down_all() {
  for f in "$FILE" "$SPLIT"; do
    timeout 180 docker-compose -f "$f" down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
  done
}
teardown() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "docker/test.sh: failed (exit $rc); the nodes' last log lines:" >&2
    for f in "$FILE" "$SPLIT"; do
      timeout 60 docker-compose -f "$f" logs --no-color --tail=40 >&2 || true
    done
  fi
  down_all
  exit "$rc"
}
trap teardown EXIT
# A previous run that was killed may have left its projects behind.
down_all

started=$SECONDS
docker/build-image.sh
echo "docker/test.sh: image $DISTLOG_IMAGE built in $((SECONDS - started)) s, size $(docker image inspect -f '{{.Size}}' "$DISTLOG_IMAGE" | awk '{printf "%.1f MB", $1/1e6}')"

cargo build -q -p distlog-compat-tests --bin distlog-compose-check

up_started=$(date +%s.%N)
compose up -d
docker/wait-healthy.sh "$FILE" 180
echo "docker/test.sh: cluster healthy $(awk -v a="$up_started" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s after docker-compose up"

timeout 900 target/debug/distlog-compose-check \
  --compose-file "$FILE" --bootstrap "$BOOTSTRAP" --messages "$MESSAGES"
compose down -v --remove-orphans -t 5 >/dev/null 2>&1

# The split topology: three meta+bookie nodes, two stateless brokers.
up_started=$(date +%s.%N)
timeout 180 docker-compose -f "$SPLIT" up -d
docker/wait-healthy.sh "$SPLIT" 180
echo "docker/test.sh: split topology healthy $(awk -v a="$up_started" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s after docker-compose up"
timeout 300 target/debug/distlog-compose-check --smoke --compose-file "$SPLIT" \
  --bootstrap "localhost:$DISTLOG_PORT_1,localhost:$DISTLOG_PORT_2" --messages 2000
echo "docker/test.sh: passed"
