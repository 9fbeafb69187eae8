#!/usr/bin/env bash
# The reliability campaign: randomized fault trials against a local cluster whose nodes live in
# their own network namespaces, each checked by a Jepsen-style checker (see
# compat-tests/src/queue/ and compat-tests/src/nemesis/).
#
#   scripts/chaos.sh                       one trial, random seed, 3 nodes, 45 s of faults
#   scripts/chaos.sh --seed S              replay the trial of seed S (same faults, same times)
#   scripts/chaos.sh --trials 200 --five-every 4   the soak (every 4th trial on 5 nodes)
#
# Other flags: --nodes 3|5, --duration SECS, --recovery-bound SECS, --partitions N,
# --table FILE (append the campaign table). It prints, per trial, PASS or FAIL; a failed trial
# prints its seed, its schedule, what the nemesis did, each anomaly by name and the command that
# replays it, and keeps the nodes' logs in target/chaos/run-*/keep/seed-S/. The last lines are the
# campaign table. Exit status 1 if any trial failed.
#
# Needs root (network namespaces, iptables, a tmpfs). Every cluster, namespace and mount it makes
# is removed at exit, also when interrupted. CHAOS_RELEASE=1 uses release binaries.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" != 0 ]; then
    echo "scripts/chaos.sh needs root: it puts each node in its own network namespace" >&2
    exit 1
fi
for tool in ip iptables mountpoint; do
    command -v "$tool" >/dev/null || { echo "scripts/chaos.sh needs '$tool' (apt-get install iproute2 iptables util-linux)" >&2; exit 1; }
done

profile=debug
build_flags=()
if [ "${CHAOS_RELEASE:-}" = 1 ]; then
    profile=release
    build_flags=(--release)
fi
cargo build "${build_flags[@]}" -p distlog-broker --bin distlog -p distlog-compat-tests --bin distlog-chaos >&2

work=target/chaos/run-$$
mkdir -p "$work"
work=$(cd "$work" && pwd)
cleanup() {
    local d
    for d in "$work"/distlog-cluster-*/; do
        [ -d "$d" ] || continue
        scripts/local-cluster.sh down "$d" || true
        rm -rf "$d"
    done
    # Keep the run directory only when it holds a failed trial's logs.
    [ -d "$work/keep" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# Every idempotent batch's admission is logged (debug) so a duplicate can be traced to its cause.
RUST_LOG=${RUST_LOG:-info,openraft=warn,openraft::replication=off,distlog_broker::producer=debug} \
    RUST_BACKTRACE=0 DISTLOG_BIN=$PWD/target/$profile/distlog "target/$profile/distlog-chaos" --work-dir "$work" "$@"
