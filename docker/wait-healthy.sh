#!/usr/bin/env bash
# Wait until every container of a compose project reports healthy (what
# `docker compose up --wait` does in Compose v2; Compose v1 has no --wait).
# Usage: docker/wait-healthy.sh COMPOSE_FILE [TIMEOUT_SECONDS]
#   COMPOSE_PROJECT_NAME selects the project, as for docker-compose itself.
set -euo pipefail
file="${1:?usage: wait-healthy.sh COMPOSE_FILE [TIMEOUT_SECONDS]}"
timeout="${2:-120}"
deadline=$((SECONDS + timeout))
while :; do
  ids="$(docker-compose -f "$file" ps -q)"
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086
    states="$(docker inspect -f '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' $ids)"
    if ! grep -qv ' healthy$' <<<"$states"; then
      echo "wait-healthy: all healthy after $((SECONDS + timeout - deadline)) s"
      exit 0
    fi
    if grep -qE ' (unhealthy|exited|dead)$' <<<"$states"; then
      echo "wait-healthy: a container failed:" >&2
      echo "$states" >&2
      exit 1
    fi
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "wait-healthy: not healthy within ${timeout} s:" >&2
    echo "${states:-no containers}" >&2
    exit 1
  fi
  sleep 1
done
