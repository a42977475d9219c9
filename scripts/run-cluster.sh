#!/bin/sh
# run-cluster.sh - start a local Redis Cluster for trying Veil on one
# (make run-cluster; docs/CLUSTER.md "Try it on one machine").
#
# 3 masters and 3 replicas on 127.0.0.1:$VEIL_CLUSTER_PORT.. +5 (cluster bus
# on port + 10000), data under $VEIL_VAR/cluster/, joined with redis-cli
# --cluster create, a site registered with veil-admin through the routing
# module. Ctrl-C stops every node (exit 0). A port in use is a clear error.
#
# The daemons are not started on it: the collector's cluster support is the
# open part of issue 11 (docs/CLUSTER.md "Status"); the aggregator runs on
# it with --redis=<the seeds printed below>.
#
# Knobs (environment):
#   VEIL_CLUSTER_PORT  first node's port, below 30000 (default 7000)
#   VEIL_SITE          site registered with veil-admin (default example.com)
#   VEIL_VAR           state directory (default var/)
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BASE=${VEIL_CLUSTER_PORT:-7000}
SITE=${VEIL_SITE:-example.com}
VAR=${VEIL_VAR:-$PWD/var}

fail() { echo "veil: $*" >&2; exit 1; }
case "$BASE" in *[!0-9]*|'') fail "VEIL_CLUSTER_PORT must be a port number" ;; esac
[ "$BASE" -ge 1024 ] && [ "$((BASE + 5))" -lt 30000 ] || fail "VEIL_CLUSTER_PORT: 1024..29994 (the bus is port + 10000)"
[ -x "$BUILD/veil-admin" ] || fail "$BUILD/veil-admin is missing: run make"
command -v redis-server >/dev/null || fail "redis-server is missing: scripts/deps.sh run"

DIR="$VAR/cluster"
mkdir -p "$DIR"
chmod 700 "$VAR" "$DIR"
DIR=$(cd "$DIR" && pwd)

PIDS=""
stop() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
}
trap 'stop; exit 0' INT TERM
trap 'stop' EXIT

SEEDS=""
for i in 0 1 2 3 4 5; do
    port=$((BASE + i))
    for p in "$port" "$((port + 10000))"; do
        if redis-cli -p "$p" PING >/dev/null 2>&1 || \
           (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            fail "port $p is in use: stop what listens there or set VEIL_CLUSTER_PORT"
        fi
    done
    rm -rf "$DIR/$port"
    mkdir -p "$DIR/$port"
    redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
        --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        --dir "$DIR/$port" --logfile "$DIR/$port/redis.log" --appendonly yes \
        --appendfsync everysec --save "" --daemonize no </dev/null >/dev/null 2>&1 &
    PIDS="$PIDS $!"
    SEEDS="$SEEDS 127.0.0.1:$port"
done
for i in 0 1 2 3 4 5; do
    n=0
    until redis-cli -p "$((BASE + i))" PING >/dev/null 2>&1; do
        n=$((n + 1)); [ "$n" -lt 200 ] || fail "node $((BASE + i)) did not start ($DIR/$((BASE + i))/redis.log)"
        sleep 0.05
    done
done
# shellcheck disable=SC2086
redis-cli --cluster create $SEEDS --cluster-replicas 1 --cluster-yes >"$DIR/create.log" 2>&1 ||
    fail "redis-cli --cluster create failed ($DIR/create.log)"
n=0
until redis-cli -p "$BASE" CLUSTER INFO | grep -q cluster_state:ok; do
    n=$((n + 1)); [ "$n" -lt 600 ] || fail "the cluster did not become ok"
    sleep 0.05
done
SPEC=$(echo $SEEDS | tr ' ' ',')
"$BUILD/veil-admin" --redis="$SPEC" site add "$SITE" >/dev/null 2>&1 || true

cat <<BANNER
veil: a local Redis Cluster is running (3 masters, 3 replicas)
  seeds (the redis directive):  $SPEC
  slots:    redis-cli -p $BASE cluster shards
  registry: $BUILD/veil-admin --redis=$SPEC site list
  reshard:  redis-cli --cluster reshard 127.0.0.1:$BASE
  failover: kill a master's redis-server; its replica takes over within ~2 s
  data:     $DIR
Ctrl-C stops every node.
BANNER
wait
