#!/usr/bin/python3
"""cluster.py - the cluster section of `make bench` (also runnable alone:
python3 bench/cluster.py). Writes delivery-like batches through Veil's
routing module (bench/tools/cluster-route.c over include/rcluster.h) to

  single   one redis-server (the reference)
  c1       a 1-node Redis Cluster
  c3       a 3-master Redis Cluster
  c3r      3 masters + 3 replicas, same writes
  c3r+WAIT 3 masters + 3 replicas, WAIT 1 after every pipeline

and prints throughput and CPU per event (client + every redis-server) as
ratios to `single` in the same run. Then the whole pipeline: wrk posting
pageviews of 12 sites to veil-collector, which delivers to the servers,
veil-aggregator rolling up, on `single`, `c1`, `c3`, `c3r` and `c3r+WAIT`
(wait_replicas=1): events/s from the first request until the aggregator
has counted the last accepted event, and CPU per event of the collector,
the aggregator and the redis-servers, again as ratios to `single`. On a
2-core machine every server shares the same two cores: this measures the
routing's overhead and WAIT's cost, not scaling (docs/CLUSTER.md has the
scaling model). Bounded: a fixed number of events or seconds per
configuration, every process killed at the end."""
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("BUILD", "build")
EVENTS = int(os.environ.get("BENCH_CLUSTER_EVENTS", "400000"))
PER_ENTRY = int(os.environ.get("BENCH_CLUSTER_PER_ENTRY", "64"))
SHARDS = int(os.environ.get("BENCH_CLUSTER_SHARDS", "16"))
DEPTH = int(os.environ.get("BENCH_CLUSTER_DEPTH", "8"))
RUNS = int(os.environ.get("BENCH_CLUSTER_RUNS", "3"))
PIPE_SECONDS = int(os.environ.get("BENCH_CLUSTER_PIPE_SECONDS", "5"))
TICK = os.sysconf("SC_CLK_TCK")
TOKEN = "bench-cluster-token"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

procs = []


def port_free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()


def cluster_port(taken):
    for _ in range(1000):
        p = random.randint(11000, 29999)
        if p in taken or p + 10000 in taken or p - 10000 in taken:
            continue
        if port_free(p) and port_free(p + 10000):
            taken.add(p)
            return p
    raise SystemExit("no free port pair below 30000")


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          timeout=60).stdout


def wait(check, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if check():
            return
        time.sleep(0.05)
    raise SystemExit("timed out waiting for " + what)


def start_server(tmp, port, cluster):
    d = os.path.join(tmp, "n%d" % port)
    os.makedirs(d)
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
            "--save", "", "--appendonly", "no", "--logfile", os.path.join(d, "log")]
    if cluster:
        argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", "2000"]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    procs.append(p)
    wait(lambda: cli(port, "PING").strip() == "PONG", 10, "redis on %d" % port)
    return p


def setup(tmp, kind):
    """Start the servers of a configuration; return (spec, pids, replicas)."""
    taken = set()
    if kind == "single":
        port = cluster_port(taken)
        p = start_server(tmp, port, False)
        return "127.0.0.1:%d" % port, [p.pid], 0
    masters = 1 if kind == "c1" else 3
    replicas = 1 if kind.startswith("c3r") else 0
    ports = [cluster_port(taken) for _ in range(masters * (1 + replicas))]
    ps = [start_server(tmp, p, True) for p in ports]
    if masters == 1:
        cli(ports[0], "CLUSTER", "ADDSLOTSRANGE", "0", "16383")
    else:
        out = subprocess.run(["redis-cli", "--cluster", "create"] +
                             ["127.0.0.1:%d" % p for p in ports] +
                             ["--cluster-replicas", str(replicas), "--cluster-yes"],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise SystemExit("cluster create failed: " + out.stdout[-400:])

    def ok():
        return all("cluster_state:ok" in cli(p, "CLUSTER", "INFO") for p in ports)
    wait(ok, 60, "cluster_state:ok")
    if replicas:
        def synced():
            roles = [cli(p, "INFO", "replication") for p in ports]
            masters_ok = [r for r in roles if "role:master" in r and "connected_slaves:1" in r
                          and "state=online" in r]
            return len(masters_ok) == masters
        wait(synced, 60, "replicas in sync")
    return ",".join("127.0.0.1:%d" % p for p in ports[:1]), [p.pid for p in ps], replicas


def pid_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def teardown():
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    procs.clear()


def measure(tool, kind):
    tmp = tempfile.mkdtemp(prefix="veil-bench-cluster.")
    try:
        spec, pids, replicas = setup(tmp, kind)
        wait_n = 1 if kind == "c3r+WAIT" else 0
        runs = []
        for _ in range(RUNS):
            before = sum(pid_cpu(p) for p in pids)
            out = subprocess.run([tool, spec, str(EVENTS), str(PER_ENTRY), str(SHARDS), str(DEPTH),
                                  str(wait_n)], capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                raise SystemExit("%s: %s" % (kind, out.stderr.strip()))
            r = json.loads(out.stdout)
            r["redis_cpu_s"] = sum(pid_cpu(p) for p in pids) - before
            runs.append(r)
        runs.sort(key=lambda r: r["seconds"])
        return runs[len(runs) // 2]  # the median run
    finally:
        teardown()
        shutil.rmtree(tmp, ignore_errors=True)


def build_tool():
    tool = os.path.join(ROOT, BUILD, "bench", "cluster-route")
    os.makedirs(os.path.dirname(tool), exist_ok=True)
    libs = subprocess.run(["pkg-config", "--libs", "hiredis", "libevent"], capture_output=True,
                          text=True).stdout.split()
    subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-I", os.path.join(ROOT, "include"),
                    "-o", tool, os.path.join(HERE, "tools", "cluster-route.c"),
                    os.path.join(ROOT, BUILD, "libveil_common.a")] + libs + ["-lm"], check=True)
    return tool


def section_cluster(out=print):
    tool = build_tool()
    out("== cluster: routing overhead and WAIT cost (not scaling: every node shares these %d cores)"
        % os.cpu_count())
    out("   %d events per run, %d events per stream entry, %d shards, %d entries per pipeline, "
        "median of %d runs" % (EVENTS, PER_ENTRY, SHARDS, DEPTH, RUNS))
    res = {}
    for kind in ("single", "c1", "c3", "c3r", "c3r+WAIT"):
        res[kind] = measure(tool, kind)
    ref = res["single"]
    ref_tp = ref["events"] / ref["seconds"]
    ref_cpu = (ref["client_cpu_s"] + ref["redis_cpu_s"]) / ref["events"]
    out("   %-9s %12s %7s %14s %7s %14s %s" % ("config", "events/s", "ratio", "CPU us/event",
                                               "ratio", "pipeline us", "notes"))
    for kind, r in res.items():
        tp = r["events"] / r["seconds"]
        cpu = (r["client_cpu_s"] + r["redis_cpu_s"]) / r["events"]
        lat = r["seconds"] / r["pipelines"] * 1e6
        note = "moved=%d" % r["moved"]
        if r["waits_short"]:
            note += " WAIT short %d times" % r["waits_short"]
        out("   %-9s %12.0f %7.2f %14.3f %7.2f %14.1f %s" % (kind, tp, tp / ref_tp, cpu * 1e6,
                                                             cpu / ref_cpu, lat, note))
    return res


# ------------------------------------------------------------ the pipeline

WRK_SCRIPT = """
local n = 0
request = function()
  n = n + 1
  local site = "site" .. (n % 12) .. ".example"
  local body = '{"n":"pageview","u":"https://' .. site .. '/p/' .. (n % 50) .. '","d":"' ..
               site .. '"}'
  return wrk.format("POST", "/api/event",
                    {["Content-Type"] = "text/plain", ["User-Agent"] = "UA"}, body)
end
""".replace('"UA"', '"%s"' % UA)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http_get(port, path, token=None):
    import urllib.request
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def metric(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def pipeline_measure(kind):
    """wrk -> veil-collector -> the servers of `kind` -> veil-aggregator."""
    tmp = tempfile.mkdtemp(prefix="veil-bench-pipe.")
    try:
        spec, pids, replicas = setup(tmp, kind)
        cport, admin, api = free_port(), free_port(), free_port()
        wait_n = "1" if kind.endswith("+WAIT") else "0"
        with open(os.path.join(tmp, "collector.log"), "w") as clog, \
                open(os.path.join(tmp, "aggregator.log"), "w") as alog:
            coll = subprocess.Popen(
                [os.path.join(ROOT, BUILD, "veil-collector"), "--listen=127.0.0.1:%d" % cport,
                 "--admin_listen=127.0.0.1:%d" % admin, "--redis=" + spec, "--threads=1",
                 "--rate_limit=0", "--spool_dir=" + os.path.join(tmp, "spool"),
                 "--log_level=warn", "--shards=%d" % SHARDS, "--wait_replicas=" + wait_n],
                stdin=subprocess.DEVNULL, stdout=clog, stderr=clog)
            procs.append(coll)
            agg = subprocess.Popen(
                [os.path.join(ROOT, BUILD, "veil-aggregator"), "--api_listen=127.0.0.1:%d" % api,
                 "--api_token=" + TOKEN, "--redis=" + spec, "--consumer=bench",
                 "--shards=%d" % SHARDS, "--log_level=warn", "--dashboard_dir=" + tmp],
                stdin=subprocess.DEVNULL, stdout=alog, stderr=alog)
            procs.append(agg)
        wait(lambda: http_get(cport, "/healthz") != "", 15, "collector")
        wait(lambda: http_get(api, "/healthz") != "", 15, "aggregator")
        script = os.path.join(tmp, "pipe.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT)
        roles = {"collector": [coll.pid], "aggregator": [agg.pid], "redis": pids}
        cpu0 = {k: sum(pid_cpu(p) for p in v) for k, v in roles.items()}
        t0 = time.monotonic()
        subprocess.run(["wrk", "-t1", "-c16", "-d%ds" % PIPE_SECONDS, "-s", script,
                        "http://127.0.0.1:%d/api/event" % cport],
                       capture_output=True, text=True, timeout=PIPE_SECONDS + 60)
        t_http = time.monotonic() - t0
        accepted = metric(http_get(admin, "/metrics"), "veil_collector_events_accepted_total")

        def counted():
            return metric(http_get(api, "/metrics", TOKEN), "veil_aggregator_events_total") >= accepted
        wait(counted, 120, "the aggregator to count %d events" % accepted)
        t_all = time.monotonic() - t0
        cpu = {k: sum(pid_cpu(p) for p in v) - cpu0[k] for k, v in roles.items()}
        return {"events": accepted, "http_s": t_http, "e2e_s": t_all, "cpu": cpu,
                "unconfirmed": metric(http_get(admin, "/metrics"),
                                      "veil_collector_redis_unconfirmed_total")}
    finally:
        teardown()
        shutil.rmtree(tmp, ignore_errors=True)


def section_pipeline(out=print):
    out("== cluster pipeline: wrk -> collector (1 thread) -> Redis -> aggregator, %d s of load, "
        "12 sites, %d shards" % (PIPE_SECONDS, SHARDS))
    res = {}
    for kind in ("single", "c1", "c3", "c3r", "c3r+WAIT"):
        res[kind] = pipeline_measure(kind)
    ref = res["single"]
    ref_tp = ref["events"] / ref["e2e_s"]
    ref_cpu = sum(ref["cpu"].values()) / ref["events"]
    out("   %-9s %9s %10s %7s %12s %12s %12s %12s %7s" % (
        "config", "events", "events/s", "ratio", "collector", "aggregator", "redis",
        "total us/ev", "ratio"))
    for kind, r in res.items():
        tp = r["events"] / r["e2e_s"]
        per = {k: v / r["events"] * 1e6 for k, v in r["cpu"].items()}
        total = sum(per.values())
        out("   %-9s %9d %10.0f %7.2f %12.2f %12.2f %12.2f %12.2f %7.2f%s" % (
            kind, r["events"], tp, tp / ref_tp, per["collector"], per["aggregator"], per["redis"],
            total, total / (ref_cpu * 1e6),
            "  (%d calls unconfirmed)" % r["unconfirmed"] if r["unconfirmed"] else ""))
    return res


if __name__ == "__main__":
    try:
        if os.environ.get("BENCH_CLUSTER_PARTS", "routing,pipeline").find("routing") >= 0:
            section_cluster()
        section_pipeline()
    finally:
        teardown()
    with open("/proc/loadavg") as f:
        print("   load average: " + " ".join(f.read().split()[:3]))
