#!/usr/bin/env bash
# Produce throughput of a replicated (3/3/2) topic against an unreplicated
# (1/1/1) one, with the same client in the same run, on a local 3-node
# cluster; and fsyncs per acknowledged produce request on each bookie.
#
#   bench/cluster.sh [SECONDS]      (default 10 s per topic)
#
# Prints one JSON line per topic from distlog-bench, then per node the
# fsync and produce-request deltas of the 3/3/2 run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-10}
cargo build --release -p distlog-broker -p distlog-bench --bins >&2
dir=$(mktemp -d /tmp/distlog-bench-cluster.XXXXXX)
trap 'scripts/local-cluster.sh down "$dir"; rm -rf "$dir"' EXIT
DISTLOG_BIN=target/release/distlog scripts/local-cluster.sh up 3 "$dir" >/dev/null
bootstrap=$(cat "$dir/bootstrap")
bench=target/release/distlog-bench

metric() { # node metric-name [label-filter] -> sum
    curl -sf "http://$(cat "$dir/node$1/http")/metrics" |
        awk -v m="$2" -v f="${3:-}" '$1 ~ "^"m"({|$)" && index($1, f) { s += $2 } END { printf "%d\n", s }'
}

snapshot() {
    for k in 1 2 3; do
        echo "$k $(metric "$k" distlog_bookie_fsyncs_total) $(metric "$k" distlog_requests_total 'api="Produce"')"
    done
}

timeout 300 "$bench" --bootstrap "$bootstrap" --label single-copy produce --topic bench-111 \
    --replication-factor 1 --duration-secs "$secs"
before=$(snapshot)
timeout 300 "$bench" --bootstrap "$bootstrap" --label replicated-332 produce --topic bench-332 \
    --replication-factor 3 --duration-secs "$secs"
after=$(snapshot)
python3 - "$before" "$after" <<'EOF'
import json, sys
b = {l.split()[0]: list(map(int, l.split()[1:])) for l in sys.argv[1].splitlines()}
a = {l.split()[0]: list(map(int, l.split()[1:])) for l in sys.argv[2].splitlines()}
produce = sum(a[k][1] - b[k][1] for k in a)
for k in sorted(a):
    fs = a[k][0] - b[k][0]
    print(json.dumps({"node": int(k), "fsyncs": fs, "produce_requests_acked_cluster_wide": produce,
                      "fsyncs_per_produce_request": round(fs / produce, 3) if produce else None}))
EOF
