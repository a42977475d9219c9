"""query.py - the `query` section of `make bench` (bench/bench.py): the
dashboard's queries on a synthetic year, answered by the real stats API
over HTTP, with quarter, month and week roll-ups (the default) and on the day keys
only (the reference, `--month_rollups=off --week_rollups=off
--quarter_rollups=off`, or another build with BENCH_QUERY_REF_BIN), side by side in the same run on the
same Redis.

The year goes through the real aggregator: packed events (docs/KEYS.md
"Stream entry fields") are added to the site's shard stream while a
veil-aggregator counts them, so the day keys and month keys are exactly
what production writes. 365 days (BENCH_QUERY_DAYS) ending yesterday (UTC), one
site, each day BENCH_QUERY_VISITORS (1,500) visitors with 1 to 4 page views:
every one of 1,000 pages, 200 sources and 100 countries has a row every day
(the first page views, visits and visitors of a day go round them), the rest
skewed towards the first ones. Visitor hashes are random per day (daily
salts).

Every query runs BENCH_QUERY_REPS (20) times on each path, the two paths
alternating; the reference stops early (at least 3 runs) once it has spent
BENCH_QUERY_REF_S (4 s) on one query. BENCH_QUERY_REF_BIN=<veil-aggregator>
runs the reference with another build (without --month_rollups=off), e.g.
the tree before month roll-ups, to record the baseline. Both answers must be byte-identical:
a difference is reported as a failure of exactness.

It never leaves anything behind: its Redis and daemons are the bench's
(started and stopped through bench.py's helpers, in its temp dir).
"""
import math
import os
import random
import statistics
import time
import urllib.error
import urllib.parse
import urllib.request

SITE = "year.veil.test"
DAYS = int(os.environ.get("BENCH_QUERY_DAYS", "365"))
VISITORS = int(os.environ.get("BENCH_QUERY_VISITORS", "1500"))
REPS = int(os.environ.get("BENCH_QUERY_REPS", "20"))
REF_BUDGET_S = float(os.environ.get("BENCH_QUERY_REF_S", "4"))
# The reference: this tree's aggregator with --month_rollups=off, or another
# build's (e.g. the tree before month roll-ups) when BENCH_QUERY_REF_BIN is set.
REF_BIN = os.environ.get("BENCH_QUERY_REF_BIN", "")
PAGES, SOURCES, COUNTRIES = 1000, 200, 100
TOKEN = "bench-query-token-0123456789"
TARGET_MS = 100.0
ENTRY_EVENTS = 500      # events per stream entry, as a busy collector writes them
BACKLOG_ENTRIES = 400   # the feeder waits while the stream holds more


def leb(n):
    out = b""
    while n >= 0x80:
        out += bytes([0x80 | (n & 0x7F)])
        n >>= 7
    return out + bytes([n])


def packed(fields):
    b = b"1"
    for k, v in fields:
        v = v.encode()
        b += bytes([len(k)]) + k.encode() + leb(len(v)) + v
    return b


def country(i):
    return chr(65 + i // 26) + chr(65 + i % 26)


def skewed(rng, n):
    """An index in [0, n), the first ones far more often."""
    return min(n - 1, int(n * rng.random() ** 3))


def day_events(rng, day, ts0):
    """The packed events of one UTC day, in time order."""
    dstr = time.strftime("%Y-%m-%d", time.gmtime(ts0))
    evs = []
    pv = 0
    for v in range(VISITORS):
        vh = "%016x" % rng.getrandbits(64)
        src = v if v < SOURCES else skewed(rng, SOURCES)
        cc = country(v % COUNTRIES if v < COUNTRIES else skewed(rng, COUNTRIES))
        n = 1 + (rng.random() < 0.6) + (rng.random() < 0.4) + (rng.random() < 0.2)
        t = ts0 + rng.randrange(0, 86400 - 600)
        for j in range(n):
            page = pv if pv < PAGES else skewed(rng, PAGES)
            pv += 1
            fields = [("site", SITE), ("day", dstr), ("ts", str(t + 60 * j)),
                      ("n", "pageview"), ("path", f"/p/{page}")]
            if j == 0:  # the landing page's referrer; later page views are self-referrals
                fields.append(("ref", f"s{src}.example.org"))
            fields += [("cc", cc), ("br", "Firefox"), ("bv", "128"), ("os", "Linux"),
                       ("dev", "desktop"), ("scr", "laptop"), ("vh", vh)]
            evs.append((t + 60 * j, packed(fields)))
    evs.sort(key=lambda e: e[0])
    return [e for _, e in evs]


def build_year(b, redis, stream, first_day_ts):
    """Feed DAYS days into the stream while an aggregator counts them;
    returns (events, seconds)."""
    rng = random.Random(15)
    total, t0 = 0, time.monotonic()
    pending = []

    def flush():
        if pending:
            redis.r.pipeline(pending)
            pending.clear()

    for d in range(DAYS):
        evs = day_events(rng, d, first_day_ts + 86400 * d)
        total += len(evs)
        for i in range(0, len(evs), ENTRY_EVENTS):
            batch = b"2" + b"".join(leb(len(e)) + e for e in evs[i:i + ENTRY_EVENTS])
            pending.append(("XADD", stream, "*", "b", batch))
            if len(pending) >= 20:
                flush()
        while redis.r.cmd("XLEN", stream) > BACKLOG_ENTRIES:
            time.sleep(0.05)
        if d % 60 == 59:
            b.log(f"query: {d + 1} days fed, {total:,} events, {time.monotonic() - t0:.0f} s")
    flush()
    deadline = time.monotonic() + 600
    while redis.r.cmd("XLEN", stream):
        if time.monotonic() > deadline:
            raise RuntimeError("the aggregator did not drain the synthetic year in 600 s")
        time.sleep(0.1)
    return total, time.monotonic() - t0


def key_memory(r, pattern):
    keys, cursor = [], "0"
    while True:
        cursor, batch = r.cmd("SCAN", cursor, "MATCH", pattern, "COUNT", 10000)
        keys += batch
        if cursor == "0":
            break
    total = 0
    for i in range(0, len(keys), 2000):
        total += sum(x or 0 for x in r.pipeline([("MEMORY", "USAGE", k, "SAMPLES", "0")
                                                 for k in keys[i:i + 2000]]))
    return len(keys), total


def http(port, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as e:
        body, status = e.read(), e.code
    return time.perf_counter() - t0, status, body


def queries(today):
    """(name, path) of the dashboard's queries for each period."""
    first = today - 300 + 17
    custom = (time.strftime("%Y-%m-%d", time.gmtime(first * 86400)) + "," +
              time.strftime("%Y-%m-%d", time.gmtime((today - 20) * 86400)))
    periods = [("7d", "period=7d"), ("30d", "period=30d"), ("6mo", "period=6mo"),
               ("12mo", "period=12mo"), ("custom", "period=custom&date=" + custom)]
    q = []
    s = f"site_id={SITE}"
    flt = "&filters=" + urllib.parse.quote("visit:country==AA")
    pflt = "&filters=" + urllib.parse.quote("event:page==/p/1|/p/2")
    for label, p in periods:
        base = f"{s}&{p}"
        monthly = label in ("6mo", "12mo")
        q += [
            (f"{label} aggregate", f"/api/v1/stats/aggregate?{base}"
             "&metrics=visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration"),
            (f"{label} timeseries ({'month' if monthly else 'day'})",
             f"/api/v1/stats/timeseries?{base}&metrics=visitors,pageviews"),
            (f"{label} breakdown page", f"/api/v1/stats/breakdown?{base}&property=event:page"
             "&metrics=visitors,pageviews&limit=9"),
            (f"{label} breakdown source", f"/api/v1/stats/breakdown?{base}&property=visit:source"
             "&metrics=visitors&limit=9"),
            (f"{label} breakdown country", f"/api/v1/stats/breakdown?{base}"
             "&property=visit:country&metrics=visitors&limit=9"),
            (f"{label} aggregate, country filter", f"/api/v1/stats/aggregate?{base}"
             f"&metrics=visitors,pageviews{flt}"),
            (f"{label} timeseries, page filter", f"/api/v1/stats/timeseries?{base}"
             f"&metrics=visitors,pageviews{pflt}"),
            (f"{label} breakdown page, page filter", f"/api/v1/stats/breakdown?{base}"
             f"&property=event:page&metrics=visitors,pageviews{pflt}"),
        ]
        if label == "12mo":
            q.append(("12mo timeseries (day)", f"/api/v1/stats/timeseries?{base}"
                      "&metrics=visitors,pageviews&interval=day"))
    return q


def p95(xs):
    xs = sorted(xs)
    return xs[max(0, math.ceil(0.95 * len(xs)) - 1)]


def section_query(b):
    b.out("## Query speed: the dashboard's queries on a synthetic year")
    b.out()
    redis = b.RedisServer("redis-query", b.LOAD_CPU)
    shard = b.shard_of_site(SITE)
    stream = f"veil:{{{shard}}}:events"
    today = int(time.time()) // 86400
    first_day = today - DAYS  # ending yesterday: no event of today is in the future
    api_on, api_off = b.free_port(), b.free_port()
    common = [f"--redis=unix:{redis.sock}", f"--api_token={TOKEN}", "--log_level=warn"]
    log_on = open(os.path.join(b.TMP, "aggregator-query-on.log"), "w")
    agg = b.start("aggregator-query", [b.AGGREGATOR, f"--api_listen=127.0.0.1:{api_on}",
                                       "--consumer=bench-query-on"] + common + b.AGG_ARGS,
                  cpus=b.SERVER_CPU, stderr=log_on)
    b.log(f"query: feeding {DAYS} days x {VISITORS:,} visitors through the aggregator")
    rcpu0 = b.redis_cpu(redis.r)
    nev, secs = build_year(b, redis, stream, first_day * 86400)
    agg_cpu = b.proc_cpu(agg.pid)
    rcpu1 = b.redis_cpu(redis.r)
    b.log(f"  {nev:,} events in {secs:.0f} s ({nev / secs:,.0f}/s; aggregator "
          f"{1e6 * agg_cpu / nev:.2f} µs CPU/event, Redis {1e6 * (rcpu1 - rcpu0) / nev:.2f})")
    ref_argv = ([REF_BIN] if REF_BIN else [b.AGGREGATOR, "--month_rollups=off",
                                           "--week_rollups=off", "--quarter_rollups=off"])
    ref = b.start("aggregator-query-ref", ref_argv + [f"--api_listen=127.0.0.1:{api_off}",
                                                      "--consumer=bench-query-off"]
                  + common + b.AGG_ARGS, cpus=b.SERVER_CPU,
                  stderr=open(os.path.join(b.TMP, "aggregator-query-off.log"), "w"))
    b.wait_for(lambda: http(api_off, "/healthz")[1] == 200, 20, "the reference stats API")
    b.wait_for(lambda: http(api_on, "/healthz")[1] == 200, 20, "the stats API")
    day_n, day_bytes = key_memory(redis.r, f"veil:{{{shard}}}:d:{SITE}:*")
    mon_n, mon_bytes = key_memory(redis.r, f"veil:{{{shard}}}:m:{SITE}:*")
    week_n, week_bytes = key_memory(redis.r, f"veil:{{{shard}}}:w:{SITE}:*")
    q_n, q_bytes = key_memory(redis.r, f"veil:{{{shard}}}:q:{SITE}:*")
    used = int(redis.r.info("memory")["used_memory"])
    b.log(f"  day keys {day_n:,} = {day_bytes / 1e6:.1f} MB, month keys {mon_n:,} = "
          f"{mon_bytes / 1e6:.1f} MB, week keys {week_n:,} = {week_bytes / 1e6:.1f} MB, "
          f"quarter keys {q_n:,} = {q_bytes / 1e6:.1f} MB, used_memory {used / 1e6:.1f} MB")
    load0 = os.getloadavg()
    rows = []
    for name, path in queries(today):
        on, off = [], []
        same, status = True, None
        for i in range(REPS):
            t, st, body = http(api_on, path)
            on.append(t)
            status = st
            if i < 3 or sum(off) < REF_BUDGET_S:
                t2, st2, body2 = http(api_off, path)
                off.append(t2)
                if (st2, body2) != (st, body):
                    same = False
        rows.append({"query": name, "status": status, "identical": same,
                     "p50_ms": 1e3 * statistics.median(on), "p95_ms": 1e3 * p95(on), "n": len(on),
                     "ref_p50_ms": 1e3 * statistics.median(off), "ref_p95_ms": 1e3 * p95(off),
                     "ref_n": len(off)})
        r = rows[-1]
        b.log(f"  {name}: {r['p95_ms']:.1f} ms p95 (reference {r['ref_p95_ms']:.1f} ms)"
              f"{'' if same else ' ANSWERS DIFFER'}")
    load1 = os.getloadavg()
    b.stop(ref)
    b.stop(agg)
    redis.stop()
    worst = max(rows, key=lambda r: r["p95_ms"])
    b.out(f"Synthetic year: {DAYS} days ending yesterday (UTC) of one site, {VISITORS:,} visitors a "
          f"day, {PAGES:,} pages, {SOURCES} sources and {COUNTRIES} countries with a row every "
          f"day; {nev:,} events counted by veil-aggregator in {secs:.0f} s "
          f"({nev / secs:,.0f} events/s, aggregator {1e6 * agg_cpu / nev:.2f} µs and Redis "
          f"{1e6 * (rcpu1 - rcpu0) / nev:.2f} µs of CPU per event while fed by this script, "
          f"quarter, month and week roll-ups on).")
    b.out()
    b.out(f"Redis: day keys {day_n:,} = {day_bytes / 1e6:.1f} MB, month keys {mon_n:,} = "
          f"{mon_bytes / 1e6:.1f} MB (+{100 * mon_bytes / max(1, day_bytes):.0f}%), week keys "
          f"{week_n:,} = {week_bytes / 1e6:.1f} MB (+{100 * week_bytes / max(1, day_bytes):.0f}%), "
          f"quarter keys {q_n:,} = {q_bytes / 1e6:.1f} MB "
          f"(+{100 * q_bytes / max(1, day_bytes):.0f}%), "
          f"used_memory {used / 1e6:.1f} MB. Load average during the queries "
          f"{load0[0]:.2f} → {load1[0]:.2f} (1 min). Each query {REPS} times through the stats "
          f"API over HTTP (wall time at the client, one at a time); the reference is "
          + (f"{REF_BIN}" if REF_BIN else "the same stats API with --month_rollups=off (day "
             "keys only)") + " on the same Redis.")
    b.out()
    b.out("| query | p50 ms | p95 ms | ≤ 100 ms | reference p50 ms | reference p95 ms "
          "(runs) | same answer | HTTP |")
    b.out("|---|---|---|---|---|---|---|---|")
    for r in rows:
        b.out(f"| {r['query']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
              f"{'yes' if r['p95_ms'] <= TARGET_MS else '**no**'} | {r['ref_p50_ms']:.1f} | "
              f"{r['ref_p95_ms']:.1f} ({r['ref_n']}) | "
              f"{'yes' if r['identical'] else '**DIFFERENT**'} | {r['status']} |")
    b.out()
    met = all(r["p95_ms"] <= TARGET_MS for r in rows)
    b.out(f"Slowest p95: {worst['query']} {worst['p95_ms']:.1f} ms (target ≤ {TARGET_MS:.0f} ms: "
          f"{'met' if met else 'not met'}); answers identical to the day-key path: "
          f"{'all' if all(r['identical'] for r in rows) else 'NOT ALL'}.")
    b.out()
    return {"events": nev, "fill_s": secs, "day_keys": day_n, "day_bytes": day_bytes,
            "month_keys": mon_n, "month_bytes": mon_bytes, "week_keys": week_n,
            "week_bytes": week_bytes, "quarter_keys": q_n, "quarter_bytes": q_bytes,
            "used_memory": used,
            "load": [load0, load1], "queries": rows}
