#!/usr/bin/env bash
# A local distlog cluster on loopback, in one command.
#
#   scripts/local-cluster.sh up N DIR     start N nodes (all roles), print the bootstrap list
#   scripts/local-cluster.sh down DIR     stop the nodes started in DIR
#   scripts/local-cluster.sh start DIR K... start nodes K... of DIR again (after a kill), same flags
#
# Node K (1..N) listens on 127.0.0.K with its own ports, keeps its data in
# DIR/nodeK/data, logs to DIR/nodeK/log, and writes its process id to
# DIR/nodeK/pid. `up` waits until the cluster is ready (a metadata Raft
# leader is elected and every broker and bookie node has registered) and
# prints the Kafka bootstrap list (host:port,host:port,... of the broker
# nodes) as its last line.
#
# Environment:
#   DISTLOG_BIN        the distlog binary (default: builds target/release/distlog)
#   PORT_BASE          first port (default: a free range chosen at random);
#                      node K uses PORT_BASE+10K+{0 kafka, 1 raft, 2 bookie, 3 http}
#   READY_TIMEOUT      seconds to wait for readiness (default 60)
#   DISTLOG_EXTRA_ARGS extra flags for every node (e.g. --broker-session-timeout-ms 4000)
#   DISTLOG_NETNS      1: every node in its own network namespace with its own
#                      address (10.A.B.(10+K)/24 on a bridge in a "switch"
#                      namespace; this host is 10.A.B.1), so tests can cut the
#                      network between nodes (scripts/netns-fault.sh). Needs
#                      root. `down` deletes the namespaces.
#   DISTLOG_SMALL_DISK K:MB, node K's data directory on a tmpfs of MB MiB (a
#                      disk that really fills); `down` unmounts it.
#   DISTLOG_NODE_ROLES the roles of each node, space-separated, one word per
#                      node (default: every node runs every role), e.g. the
#                      split topology of three storage nodes and two brokers:
#                      DISTLOG_NODE_ROLES="meta,bookie meta,bookie meta,bookie broker broker"
#                      The meta nodes are the Raft voters (the others join as
#                      learners through them); only bookie nodes get
#                      --bookie-listen; only broker nodes are in the bootstrap
#                      list.
set -euo pipefail

usage() {
    echo "usage: $0 up N DIR | down DIR | start DIR K..." >&2
    exit 2
}

alive() { # pid [node-dir]: running (a killed process may linger as a zombie until reaped); with a
    # node dir, only while it is that node's process: pids wrap (pid_max can be 32768), and a
    # recorded pid may belong to an unrelated process by the time it is checked or signalled
    kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ] || return 1
    [ -z "${2:-}" ] && return 0
    local args
    args=$(tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline") || return 1
    # Empty while the process is between two programs (setsid and `ip netns exec` exec the node):
    # the kernel clears the arguments until the new program's are in place. Still starting.
    [ -z "$args" ] && return 0
    grep -qxF -- "$2/data" <<<"$args"
}

exiting() { # pid: a zombie whose other threads still exit. A killed process's main thread turns
    # zombie first; the others may hold its sockets a moment longer (a restart finds them in use).
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ] &&
        [ "$(find "/proc/$1/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" -gt 1 ]
}

port_free() {
    ! (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

node_ports() { # base k -> kafka raft bookie http
    local b=$(($1 + 10 * $2))
    echo "$b $((b + 1)) $((b + 2)) $((b + 3))"
}

choose_base() { # n
    local n=$1 tries base ok k p
    for tries in $(seq 1 50); do
        base=$((10000 + (RANDOM % 2000) * 10)) # below the ephemeral port range
        ok=1
        for k in $(seq 1 "$n"); do
            for p in $(node_ports "$base" "$k"); do
                if ! port_free "127.0.0.$k" "$p"; then ok=0; fi
            done
        done
        if [ "$ok" = 1 ]; then
            echo "$base"
            return
        fi
    done
    echo "no free port range found; set PORT_BASE" >&2
    exit 1
}

has_role() { # roles role: whether a --roles value includes role
    [ "$1" = all ] || [[ ",$1," == *",$2,"* ]]
}

# --- network namespaces (DISTLOG_NETNS=1) ---------------------------------
# The names are derived from the cluster directory, so `down` finds them:
# namespaces dl<id>s (the switch: a bridge) and dl<id>n<K> (node K), and the
# host's veth dl<id>h. Node-to-node traffic crosses only the switch
# namespace, whose firewall is empty, never this host's forwarding path.
netns_id() { # dir -> 6 hex chars
    printf '%s' "$1" | md5sum | cut -c1-6
}

netns_up() { # dir n
    local dir=$1 n=$2 id a b prefix k sw
    id=$(netns_id "$dir")
    a=$((200 + 0x${id:0:2} % 50))
    b=$((0x${id:2:2}))
    prefix=10.$a.$b
    if ip -4 addr show | grep -q "inet $prefix\."; then
        echo "subnet $prefix.0/24 is in use on this host; choose another cluster directory" >&2
        exit 1
    fi
    sw=dl${id}s
    netns_down "$dir"
    ip netns add "$sw"
    ip -n "$sw" link set lo up
    ip -n "$sw" link add br0 type bridge
    ip -n "$sw" link set br0 up
    ip link add "dl${id}h" type veth peer name host netns "$sw"
    ip -n "$sw" link set host master br0 up
    ip addr add "$prefix.1/24" dev "dl${id}h"
    ip link set "dl${id}h" up
    for k in $(seq 1 "$n"); do
        ip netns add "dl${id}n$k"
        ip -n "dl${id}n$k" link set lo up
        ip -n "$sw" link add "n$k" type veth peer name eth0 netns "dl${id}n$k"
        ip -n "$sw" link set "n$k" master br0 up
        ip -n "dl${id}n$k" addr add "$prefix.$((10 + k))/24" dev eth0
        ip -n "dl${id}n$k" link set eth0 up
    done
    echo "$id $prefix" >"$dir/netns"
}

netns_down() { # dir: delete what netns_up made (nothing if it made nothing)
    local id ns
    id=$(netns_id "$1")
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^dl${id}(s|n[0-9]+)$" || true); do
        ip netns del "$ns" 2>/dev/null || true
    done
    ip link del "dl${id}h" 2>/dev/null || true
}

small_disk_down() { # dir
    local m
    for m in "$1"/node*/data; do
        if mountpoint -q "$m" 2>/dev/null; then umount -l "$m" 2>/dev/null || true; fi
    done
}

stop_dir() { # dir
    local dir=$1 pidf pid i pids=() nodes=()
    for pidf in "$dir"/node*/pid; do
        [ -f "$pidf" ] || continue
        pid=$(cat "$pidf")
        if alive "$pid" "${pidf%/pid}"; then
            kill -CONT "$pid" 2>/dev/null || true
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
            nodes+=("${pidf%/pid}")
        fi
        rm -f "$pidf"
    done
    local deadline=$((SECONDS + 15))
    for i in "${!pids[@]}"; do
        while alive "${pids[$i]}" "${nodes[$i]}" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        if alive "${pids[$i]}" "${nodes[$i]}"; then
            kill -KILL "${pids[$i]}" 2>/dev/null || true
        fi
    done
}

start_node() { # node-dir
    local node=$1 args
    mapfile -t args <"$node/cmd"
    setsid "${args[@]}" >>"$node/log" 2>&1 </dev/null &
    echo $! >"$node/pid"
}

cmd=${1:-}
case "$cmd" in
up)
    [ $# -eq 3 ] || usage
    n=$2
    dir=$3
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || usage
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    for pidf in "$dir"/node*/pid; do
        if [ -f "$pidf" ] && alive "$(cat "$pidf")" "${pidf%/pid}"; then
            echo "$dir already runs a cluster (pid $(cat "$pidf")); run '$0 down $dir' first" >&2
            exit 1
        fi
    done
    bin=${DISTLOG_BIN:-}
    if [ -z "$bin" ]; then
        root=$(cd "$(dirname "$0")/.." && pwd)
        (cd "$root" && cargo build --release -p distlog-broker --bin distlog >&2)
        bin=$root/target/release/distlog
    fi
    # Roles per node: all roles everywhere unless DISTLOG_NODE_ROLES says.
    roles=()
    if [ -n "${DISTLOG_NODE_ROLES:-}" ]; then
        read -r -a roles <<<"$DISTLOG_NODE_ROLES"
        if [ "${#roles[@]}" -ne "$n" ]; then
            echo "DISTLOG_NODE_ROLES names ${#roles[@]} nodes' roles but 'up $n' starts $n; give one word per node" >&2
            exit 2
        fi
    else
        for k in $(seq 1 "$n"); do roles+=(all); done
    fi
    brokers=0
    bookies=0
    for r in "${roles[@]}"; do
        if has_role "$r" broker; then brokers=$((brokers + 1)); fi
        if has_role "$r" bookie; then bookies=$((bookies + 1)); fi
    done
    # Node K's address: 127.0.0.K, or its own namespace's address.
    host_of() { echo "127.0.0.$1"; }
    if [ "${DISTLOG_NETNS:-}" = 1 ]; then
        netns_up "$dir" "$n"
        read -r netns_tag netns_prefix <"$dir/netns"
        host_of() { echo "$netns_prefix.$((10 + $1))"; }
        # Every namespace has its own ports: any base is free there.
        base=${PORT_BASE:-10000}
    else
        base=${PORT_BASE:-$(choose_base "$n")}
    fi
    voters=""
    bootstrap=""
    for k in $(seq 1 "$n"); do
        read -r kafka raft _ _ <<<"$(node_ports "$base" "$k")"
        r=${roles[$((k - 1))]}
        h=$(host_of "$k")
        if has_role "$r" meta; then voters+="${voters:+,}$k=$h:$raft"; fi
        if has_role "$r" broker; then bootstrap+="${bootstrap:+,}$h:$kafka"; fi
    done
    if [ -z "$voters" ] || [ -z "$bootstrap" ]; then
        echo "DISTLOG_NODE_ROLES='${DISTLOG_NODE_ROLES:-}' needs at least one meta node and one broker node" >&2
        exit 2
    fi
    echo "$voters" >"$dir/voters"
    echo "$bootstrap" >"$dir/bootstrap"
    for k in $(seq 1 "$n"); do
        read -r kafka raft bookie http <<<"$(node_ports "$base" "$k")"
        r=${roles[$((k - 1))]}
        node=$dir/node$k
        h=$(host_of "$k")
        mkdir -p "$node/data"
        if [ -n "${DISTLOG_SMALL_DISK:-}" ] && [ "${DISTLOG_SMALL_DISK%%:*}" = "$k" ]; then
            mount -t tmpfs -o "size=${DISTLOG_SMALL_DISK#*:}m" "distlog-node$k" "$node/data"
        fi
        # In a namespace, the node runs under `ip netns exec` (which execs
        # it: the recorded pid is the node's own).
        wrap=()
        if [ "${DISTLOG_NETNS:-}" = 1 ]; then wrap=(ip netns exec "dl${netns_tag}n$k"); fi
        # Flags that depend on the node's roles (none by default, so the
        # default command line is that of every earlier version).
        role_args=()
        if has_role "$r" bookie; then role_args+=(--bookie-listen "$h:$bookie"); fi
        role_args+=(--http-listen "$h:$http" --meta-voters "$voters")
        if [ -n "${DISTLOG_NODE_ROLES:-}" ]; then role_args+=(--roles "$r"); fi
        # The node's whole command line, one argument per line, for `start`.
        # shellcheck disable=SC2086 # DISTLOG_EXTRA_ARGS is a list of flags
        printf '%s\n' "${wrap[@]}" "$bin" server \
            --node-id "$k" \
            --data-dir "$node/data" \
            --kafka-listen "$h:$kafka" \
            --raft-listen "$h:$raft" \
            "${role_args[@]}" \
            ${DISTLOG_EXTRA_ARGS:-} >"$node/cmd"
        echo "$h:$http" >"$node/http"
        echo "$h" >"$node/host"
        echo "$r" >"$node/roles"
        start_node "$node"
    done
    deadline=$((SECONDS + ${READY_TIMEOUT:-60}))
    while :; do
        ready=0
        for k in $(seq 1 "$n"); do
            pid=$(cat "$dir/node$k/pid")
            if ! alive "$pid" "$dir/node$k"; then
                echo "node $k exited during start-up; its log ($dir/node$k/log) ends with:" >&2
                tail -n 20 "$dir/node$k/log" >&2
                stop_dir "$dir"; small_disk_down "$dir"; netns_down "$dir"
                exit 1
            fi
        done
        body=$(curl -sf "http://$(cat "$dir/node1/http")/admin/cluster" 2>/dev/null || true)
        if [ -n "$body" ]; then
            ready=$(python3 -c '
import json, sys
c = json.loads(sys.argv[1]); brokers = int(sys.argv[2]); bookies = int(sys.argv[3])
live = [x for x in c["nodes"] if x["live"] and x["kafka"]]
live_bookies = [x for x in c["nodes"] if x["live"] and x["bookie"]]
print(1 if c["raft"]["leader"] is not None and len(live) >= brokers and len(live_bookies) >= bookies else 0)' "$body" "$brokers" "$bookies")
        fi
        [ "$ready" = 1 ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "cluster not ready within ${READY_TIMEOUT:-60}s; logs are in $dir/node*/log" >&2
            stop_dir "$dir"; small_disk_down "$dir"; netns_down "$dir"
            exit 1
        fi
        sleep 0.2
    done
    echo "$bootstrap"
    ;;
down)
    [ $# -eq 2 ] || usage
    # Absolute, as the nodes' command lines hold it (see `alive`).
    dir=$(cd "$2" 2>/dev/null && pwd) || exit 0
    stop_dir "$dir"
    small_disk_down "$dir"
    if [ -f "$dir/netns" ]; then netns_down "$dir"; fi
    ;;
start)
    [ $# -ge 3 ] || usage
    dir=$(cd "$2" 2>/dev/null && pwd) || { echo "no cluster in $2" >&2; exit 1; }
    shift 2
    for k in "$@"; do
        node=$dir/node$k
        [ -f "$node/cmd" ] || { echo "no node $k in $dir" >&2; exit 1; }
        if [ -f "$node/pid" ] && alive "$(cat "$node/pid")" "$node"; then
            echo "node $k is already running (pid $(cat "$node/pid"))" >&2
            exit 1
        fi
        if [ -f "$node/pid" ]; then
            gone_by=$((SECONDS + 10))
            while exiting "$(cat "$node/pid")"; do
                if [ "$SECONDS" -ge "$gone_by" ]; then
                    echo "node $k's previous process ($(cat "$node/pid")) is still exiting after 10 s" >&2
                    exit 1
                fi
                sleep 0.05
            done
        fi
        start_node "$node"
    done
    deadline=$((SECONDS + ${READY_TIMEOUT:-60}))
    for k in "$@"; do
        node=$dir/node$k
        until curl -sf "http://$(cat "$node/http")/health" >/dev/null 2>&1; do
            if ! alive "$(cat "$node/pid")" "$node" || [ "$SECONDS" -ge "$deadline" ]; then
                echo "node $k did not become healthy; its log ($node/log) ends with:" >&2
                tail -n 20 "$node/log" >&2
                exit 1
            fi
            sleep 0.2
        done
    done
    ;;
*)
    usage
    ;;
esac
