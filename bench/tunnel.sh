#!/bin/sh
# tunnel.sh - what the stunnel -> Redis TLS path of docs/DEPLOYMENT.md ("In
# transit") costs, beside plain TCP to the same Redis in the same run:
# redis-benchmark SET (pipeline 16, 8 clients, 200,000 requests), its
# requests/s, and the CPU time of Redis and of stunnel per request (from
# /proc). Supplementary to make bench (not part of it); needs redis-server,
# redis-tools, stunnel4, openssl, python3. Loopback only, a fresh temp dir,
# free ports; removes everything it started.
#
#   bench/tunnel.sh [ROUNDS]
set -eu
rounds=${1:-3}
dir=$(mktemp -d "${TMPDIR:-/tmp}/veil-tunnel.XXXXXX")
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT INT TERM
cd "$dir"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
plain=$(port); tls=$(port); local=$(port)
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
openssl req -x509 $ec -days 1 -subj /CN=bench-ca -keyout ca.key -out ca.crt 2>/dev/null
openssl req $ec -subj /CN=localhost -keyout redis.key -out redis.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' > redis.ext
openssl x509 -req -in redis.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile redis.ext -out redis.crt 2>/dev/null
openssl req $ec -subj /CN=client -keyout client.key -out client.csr 2>/dev/null
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -out client.crt 2>/dev/null

redis-server --port "$plain" --tls-port "$tls" --bind 127.0.0.1 --tls-cert-file redis.crt \
    --tls-key-file redis.key --tls-ca-cert-file ca.crt --tls-auth-clients yes \
    --tls-protocols TLSv1.3 --save '' --appendonly no --dir "$dir" > redis.log 2>&1 &
rp=$!; pids="$pids $rp"
cat > stunnel.conf <<EOT
foreground = yes
pid =
debug = 3
[redis]
client = yes
accept = 127.0.0.1:$local
connect = 127.0.0.1:$tls
verifyChain = yes
CAfile = ca.crt
checkHost = localhost
cert = client.crt
key = client.key
sslVersionMin = TLSv1.3
EOT
stunnel4 stunnel.conf > stunnel.log 2>&1 &
sp=$!; pids="$pids $sp"
for i in $(seq 100); do
    redis-cli -p "$local" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
done

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { redis-benchmark -p "$1" -q -n 200000 -P 16 -c 8 -t set | tr '\r' '\n' | grep 'requests per second' | tail -1 | sed 's/ requests per second.*//; s/SET: //'; }
us() { echo "$1 $ticks" | awk '{printf "%.2f", $1 / $2 * 1e6 / 200000}'; }
echo "round | direct req/s | direct Redis us/req | tunnel req/s | tunnel Redis us/req | stunnel us/req"
for r in $(seq "$rounds"); do
    r0=$(cpu $rp); d=$(run "$plain"); r1=$(cpu $rp); s0=$(cpu $sp)
    t=$(run "$local"); r2=$(cpu $rp); s1=$(cpu $sp)
    echo "$r | $d | $(us $((r1 - r0))) | $t | $(us $((r2 - r1))) | $(us $((s1 - s0)))"
done
