#!/usr/bin/env bash
# Starts a local roomd cluster on loopback ports: one redis-server with the
# append-only file on and three roomd nodes that share it. Ctrl-C (or
# SIGTERM) stops the nodes one after another, so each hands its rooms to
# those still running, and then Redis.
#
# Usage: deploy/local-cluster.sh [ROOMD_FLAG...]
# Flags after the script name go to every roomd node, for example
# `--unused-timeout 60`.
#
# Environment (defaults in brackets):
#   ROOMD_CLUSTER_DIR             data, logs and pid files [./.local-cluster]
#   ROOMD_CLUSTER_PUBLIC_PORTS    public gRPC ports, one node each
#                                 ["50051 50061 50071"]
#   ROOMD_CLUSTER_INTERNAL_PORTS  node-to-node gRPC ports, in node order
#                                 ["50052 50062 50072"]
#   ROOMD_CLUSTER_REDIS_PORT      redis-server port [56379]
#   ROOMD_CLUSTER_NODE_TTL        --node-ttl in seconds [5]
#   ROOMD_CLUSTER_STOP_TIMEOUT    seconds a process gets to exit after
#                                 SIGTERM before it is killed [30]
#   ROOMD_CLUSTER_SKIP_BUILD      set to 1 to use the roomd built before
#
# Every process binds 127.0.0.1 only.

# Traps and wait_until call the functions below indirectly, which shellcheck
# reports as unreachable code.
# shellcheck disable=SC2317
set -euo pipefail

readonly HOST=127.0.0.1

cluster_dir=${ROOMD_CLUSTER_DIR:-./.local-cluster}
read -r -a public_ports <<<"${ROOMD_CLUSTER_PUBLIC_PORTS:-50051 50061 50071}"
read -r -a internal_ports <<<"${ROOMD_CLUSTER_INTERNAL_PORTS:-50052 50062 50072}"
redis_port=${ROOMD_CLUSTER_REDIS_PORT:-56379}
node_ttl=${ROOMD_CLUSTER_NODE_TTL:-5}
stop_timeout=${ROOMD_CLUSTER_STOP_TIMEOUT:-30}

fail() {
    echo "local-cluster: $*" >&2
    exit 1
}

if ((${#public_ports[@]} != ${#internal_ports[@]})); then
    fail "ROOMD_CLUSTER_PUBLIC_PORTS has ${#public_ports[@]} ports but" \
        "ROOMD_CLUSTER_INTERNAL_PORTS has ${#internal_ports[@]}; give one of each per node"
fi
for port in "${public_ports[@]}" "${internal_ports[@]}" "$redis_port" "$node_ttl" "$stop_timeout"; do
    [[ $port =~ ^[0-9]+$ ]] || fail "invalid number $port in the ROOMD_CLUSTER_* variables"
done
command -v redis-server >/dev/null ||
    fail "redis-server is not on PATH; install it, for example with: apt-get install redis-server"

# Resolve the folder before changing to the repository root for the build.
mkdir -p "$cluster_dir/redis"
cluster_dir=$(cd "$cluster_dir" && pwd)
repo_root=$(cd "$(dirname "$0")/.." && pwd)

if [[ ${ROOMD_CLUSTER_SKIP_BUILD:-0} != 1 ]]; then
    (cd "$repo_root" && cargo build --release -p roomd-server --bin roomd)
fi
roomd=$repo_root/target/release/roomd
if [[ -n ${CARGO_TARGET_DIR:-} ]]; then
    roomd=$CARGO_TARGET_DIR/release/roomd
fi
[[ -x $roomd ]] || fail "$roomd is missing; run without ROOMD_CLUSTER_SKIP_BUILD=1 to build it"

# Process ids in start order: Redis first, then the nodes.
pids=()
names=()

# Sends SIGTERM to process $1 and waits up to $stop_timeout seconds for it
# to exit, then sends SIGKILL.
stop_process() {
    local pid=$1 name=$2 waited=0
    kill -0 "$pid" 2>/dev/null || return 0
    echo "local-cluster: stopping $name (pid $pid)" >&2
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= stop_timeout * 10)); then
            echo "local-cluster: $name did not exit within ${stop_timeout}s of SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    wait "$pid" 2>/dev/null || true
}

# Stops the nodes in reverse start order, then Redis.
stop_all() {
    trap - EXIT INT TERM
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        stop_process "${pids[i]}" "${names[i]}"
    done
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Tells whether the Redis on $redis_port is the process $1. Another
# cluster's Redis on the same port would reply to PING as well.
redis_is_process() {
    local pid=$1 line='' found=1
    exec 3<>"/dev/tcp/$HOST/$redis_port" || return 1
    printf 'INFO server\r\n' >&3
    while IFS= read -r -t 1 line <&3; do
        if [[ $line == process_id:* ]]; then
            [[ ${line#process_id:} == "$pid"$'\r' ]] && found=0
            break
        fi
    done
    exec 3>&-
    return "$found"
}

# Waits up to 20 s until the check "$@" succeeds, or fails when process
# $pid exits first.
wait_until() {
    local pid=$1 name=$2 log=$3
    shift 3
    local tries=0
    until "$@" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            fail "$name exited before it was ready; the end of $log:
$(tail -n 20 "$log")"
        fi
        if ((tries >= 200)); then
            fail "$name was not ready within 20 s; see $log"
        fi
        sleep 0.1
        tries=$((tries + 1))
    done
}

# Each process gets its own session (setsid), so the SIGINT that Ctrl-C
# sends to the terminal's foreground group reaches only this script, which
# then stops the processes in order.
redis_log=$cluster_dir/redis.log
setsid redis-server \
    --bind "$HOST" --protected-mode yes --port "$redis_port" \
    --dir "$cluster_dir/redis" --logfile "$redis_log" --daemonize no \
    --appendonly yes --appendfsync always --save '' \
    </dev/null &
pids+=("$!")
names+=("redis-server")
wait_until "$!" "redis-server" "$redis_log" redis_is_process "$!"
redis_url=redis://$HOST:$redis_port

# Tells whether the node logging to $1 has started since the log had $2
# lines: logs are appended to, so earlier runs stay readable.
node_has_started() {
    tail -n "+$(($2 + 1))" "$1" | grep -q "roomd listening"
}

for i in "${!public_ports[@]}"; do
    node=$((i + 1))
    node_log=$cluster_dir/node-$node.log
    log_lines=0
    if [[ -f $node_log ]]; then
        log_lines=$(wc -l <"$node_log")
    fi
    internal_address=$HOST:${internal_ports[i]}
    setsid "$roomd" \
        --listen "$HOST:${public_ports[i]}" \
        --internal-listen "$internal_address" \
        --advertise-addr "$internal_address" \
        --redis-url "$redis_url" \
        --node-ttl "$node_ttl" \
        "$@" \
        </dev/null >>"$node_log" 2>&1 &
    pids+=("$!")
    names+=("node $node")
    wait_until "$!" "node $node" "$node_log" node_has_started "$node_log" "$log_lines"
done

echo
echo "roomd cluster running; Ctrl-C stops it."
echo "  redis-server  $redis_url  data: $cluster_dir/redis  log: $redis_log"
for i in "${!public_ports[@]}"; do
    node=$((i + 1))
    printf '  node %-9s roomctl --addr http://%s:%s get ROOM_ID   (internal %s:%s, log: %s)\n' \
        "$node" "$HOST" "${public_ports[i]}" "$HOST" "${internal_ports[i]}" "$cluster_dir/node-$node.log"
done
echo "roomctl is built by: cargo build --release -p roomctl (then target/release/roomctl)"

# A node that exits (killed to try failover, say) is reported, and the
# other nodes adopt its rooms. The cluster runs on until Ctrl-C, or until
# Redis or the last node exits, and the EXIT trap then stops what is left.
running=("${pids[@]}")
while ((${#running[@]} > 1)); do
    set +e
    wait -n "${running[@]}"
    status=$?
    set -e
    still_running=()
    for i in "${!pids[@]}"; do
        [[ " ${running[*]} " == *" ${pids[i]} "* ]] || continue
        if kill -0 "${pids[i]}" 2>/dev/null; then
            still_running+=("${pids[i]}")
        elif ((i == 0)); then
            echo "local-cluster: redis-server exited with status $status. Stopping the cluster." >&2
            exit 1
        else
            echo "local-cluster: ${names[i]} exited with status $status; the other nodes adopt its rooms." >&2
        fi
    done
    running=("${still_running[@]}")
done
echo "local-cluster: no roomd node is left. Stopping the cluster." >&2
exit 1
