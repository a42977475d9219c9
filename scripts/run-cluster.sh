#!/bin/sh
# run-cluster.sh - start a local Redis Cluster for trying Veil on one
# (make run-cluster; docs/CLUSTER.md "Try it on one machine").
#
# 3 masters and 3 replicas on 127.0.0.1:$VEIL_CLUSTER_PORT.. +5 (cluster bus
# on port + 10000), data under $VEIL_VAR/cluster/, joined with redis-cli
# --cluster create, a site registered with veil-admin through the routing
# module, then veil-collector (127.0.0.1:$VEIL_PORT, wait_replicas 1) and
# veil-aggregator (stats API and dashboard on 127.0.0.1:$VEIL_API_PORT) on
# the cluster. Ctrl-C stops everything (exit 0). A port in use is a clear
# error.
#
# Knobs (environment):
#   VEIL_CLUSTER_PORT  first node's port, below 30000 (default 7000)
#   VEIL_PORT          collector port (default 8080)
#   VEIL_API_PORT      stats API and dashboard port (default 8081)
#   VEIL_WAIT_REPLICAS the collector's wait_replicas (default 1)
#   VEIL_SITE          site registered with veil-admin (default example.com)
#   VEIL_VAR           state directory (default var/)
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BASE=${VEIL_CLUSTER_PORT:-7000}
SITE=${VEIL_SITE:-example.com}
VAR=${VEIL_VAR:-$PWD/var}
PORT=${VEIL_PORT:-8080}
API_PORT=${VEIL_API_PORT:-8081}
WAIT_REPLICAS=${VEIL_WAIT_REPLICAS:-1}

fail() { echo "veil: $*" >&2; exit 1; }
case "$BASE" in *[!0-9]*|'') fail "VEIL_CLUSTER_PORT must be a port number" ;; esac
[ "$BASE" -ge 1024 ] && [ "$((BASE + 5))" -lt 30000 ] || fail "VEIL_CLUSTER_PORT: 1024..29994 (the bus is port + 10000)"
for b in veil-admin veil-collector veil-aggregator; do
    [ -x "$BUILD/$b" ] || fail "$BUILD/$b is missing: run make"
done
case "$PORT$API_PORT$WAIT_REPLICAS" in *[!0-9]*|'') fail "VEIL_PORT, VEIL_API_PORT and VEIL_WAIT_REPLICAS must be numbers" ;; esac
for p in "$PORT" "$API_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        fail "port $p is in use: stop what listens there or set VEIL_PORT / VEIL_API_PORT"
    fi
done
command -v redis-server >/dev/null || fail "redis-server is missing: scripts/deps.sh run"

DIR="$VAR/cluster"
mkdir -p "$DIR"
chmod 700 "$VAR" "$DIR"
DIR=$(cd "$DIR" && pwd)

PIDS=""
DAEMONS=""
stop() {
    # the daemons (started last) first, so the collector can flush to Redis
    for p in $DAEMONS; do kill "$p" 2>/dev/null || true; done
    for p in $DAEMONS; do wait "$p" 2>/dev/null || true; done
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

# The daemons on the cluster; the API token never on a command line.
umask 077
if [ ! -s "$VAR/api-token" ]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$VAR/api-token"
fi
TOKEN=$(cat "$VAR/api-token")
printf 'Authorization: Bearer %s\n' "$TOKEN" > "$VAR/api-auth"
cat > "$DIR/veil.conf" <<CONF
# written by scripts/run-cluster.sh (make run-cluster); docs/config-collector.md
listen 127.0.0.1:$PORT
redis $SPEC
wait_replicas $WAIT_REPLICAS
sites $SITE
tracker_js "$BUILD/tracker/veil.js"
spool_dir "$DIR/spool"
CONF
cat > "$DIR/veil-aggregator.conf" <<CONF
# written by scripts/run-cluster.sh (make run-cluster); docs/config-aggregator.md
redis $SPEC
api_listen 127.0.0.1:$API_PORT
api_token $TOKEN
dashboard_dir "$BUILD/dashboard"
CONF
umask 022

# until CHECK succeeds (at most 15 s), failing when PID exits first
wait_ready() {
    name=$1 pid=$2 log=$3
    shift 3
    i=0
    until "$@" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || fail "$name exited at start-up (see $log)"
        i=$((i + 1))
        [ $i -le 150 ] || fail "$name did not answer within 15 s (see $log)"
        sleep 0.1
    done
}
"$BUILD/veil-collector" -c "$DIR/veil.conf" 2>>"$DIR/collector.log" &
DAEMONS="$DAEMONS $!"
wait_ready veil-collector "$!" "$DIR/collector.log" curl -fs "http://127.0.0.1:$PORT/healthz"
"$BUILD/veil-aggregator" -c "$DIR/veil-aggregator.conf" 2>>"$DIR/aggregator.log" &
DAEMONS="$DAEMONS $!"
wait_ready veil-aggregator "$!" "$DIR/aggregator.log" curl -fs "http://127.0.0.1:$API_PORT/healthz"

cat <<BANNER
veil: a local Redis Cluster is running (3 masters, 3 replicas), with
veil-collector (wait_replicas $WAIT_REPLICAS) and veil-aggregator on it
  seeds (the redis directive):  $SPEC
  collector: http://127.0.0.1:$PORT/api/event   (site: $SITE)
  stats API: http://127.0.0.1:$API_PORT/api/v1/stats/aggregate?site_id=$SITE
             (curl -H @$VAR/api-auth ...)
  dashboard: http://127.0.0.1:$API_PORT/
  slots:     redis-cli -p $BASE cluster shards
  registry:  $BUILD/veil-admin --redis=$SPEC site list
  reshard:   redis-cli --cluster reshard 127.0.0.1:$BASE
  failover:  kill a master's redis-server; its replica takes over within ~2 s
             (with wait_replicas 1 its shards' events wait in the collector
             until the killed node is back as the new master's replica)
  logs/data: $DIR
Ctrl-C stops everything.
BANNER
wait
