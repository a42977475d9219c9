#!/usr/bin/env python3
"""delivery_scripts.py - Redis CPU per event of the collector's delivery
script before the shard streams (one XADD per event, field "e"; frozen copy
below) and now (one XADD per call, field "b"; read from
collector/sink_wire.c), on the same synthetic packed events in the same
batch sizes, pipelined, on a private redis-server over a unix socket.
Supplementary to `make bench` (docs/BENCHMARKS.md): the Redis side only,
no collector, no HTTP. Usage: python3 bench/delivery_scripts.py"""
import re
import os, random, shutil, socket, subprocess, tempfile, time
OLD_SCRIPT = "#!lua\nlocal mark = tonumber(redis.call('GET', KEYS[2]) or '0')\nlocal first, last = tonumber(ARGV[2]), tonumber(ARGV[3])\nif mark < tonumber(ARGV[1]) then\n  return redis.error_reply('VEILGAP lane mark ' .. mark .. ' is behind ' .. ARGV[1])\nend\nif mark >= last then return last - first + 1 end\nlocal skipped, refused, why = 0, 0, nil\nif mark >= first then skipped = mark - first + 1 end\nlocal add, stream, i = redis.pcall, KEYS[1], 5\nfor seq = first, last do\n  local n = tonumber(ARGV[i])\n  if seq > mark then\n    local r = add('XADD', stream, '*', unpack(ARGV, i + 1, i + n))\n    if type(r) == 'table' and r.err then refused, why = refused + 1, why or r.err end\n  end\n  i = i + 1 + n\nend\nredis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])\nif refused > 0 then return {skipped, refused, why} end\nreturn skipped\n"

d = tempfile.mkdtemp()
sock = os.path.join(d, "r.sock")
p = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
for _ in range(100):
    if os.path.exists(sock): break
    time.sleep(0.05)
s = socket.socket(socket.AF_UNIX); s.connect(sock); f = s.makefile("rb")
def enc(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)
def read():
    line = f.readline(); t = line[:1]
    if t in b"+-:": return line[1:-2]
    if t == b"$":
        n = int(line[1:-2]); return None if n < 0 else f.read(n + 2)[:-2]
    if t == b"*":
        return [read() for _ in range(int(line[1:-2]))]
def cmd(*a):
    s.sendall(enc(a)); return read()
def pipe(cmds):
    s.sendall(b"".join(enc(c) for c in cmds)); return [read() for _ in cmds]
def cpu():
    info = cmd("INFO", "cpu").decode()
    v = dict(l.split(":", 1) for l in info.splitlines() if ":" in l)
    return float(v["used_cpu_user"]) + float(v["used_cpu_sys"])
def leb(n):
    out = b""
    while n >= 0x80: out += bytes([0x80 | (n & 0x7f)]); n >>= 7
    return out + bytes([n])
random.seed(1)
def packed(i):
    fields = [("site", "bench.veil.test"), ("day", "2026-12-06"), ("ts", "1796515200"), ("n", "pageview"),
              ("path", "/blog/post-%d" % (i % 700)), ("ref", "www.google.com"), ("cc", "DE"), ("br", "Firefox"),
              ("bv", "128"), ("os", "Linux"), ("dev", "desktop"), ("scr", "laptop"), ("vh", "%016x" % random.getrandbits(64))]
    b = b"1"
    for k, v in fields:
        b += bytes([len(k)]) + k.encode() + leb(len(v)) + v.encode()
    return b
def new_script():
    here = os.path.dirname(os.path.abspath(__file__))
    src = open(os.path.join(here, "..", "collector", "sink_wire.c")).read()
    i = src.index("const char sink_delivery_script[] =")
    j = src.index(";\n", i)
    text = src[i:j].replace('" EVENT_BATCH_FIELD "', "b")
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', text)
    return "".join(parts).encode().decode("unicode_escape")
old = cmd("SCRIPT", "LOAD", OLD_SCRIPT).decode()
new = cmd("SCRIPT", "LOAD", new_script()).decode()
N = 40000
events = [packed(i) for i in range(N)]
print("events %d, packed mean %.0f bytes" % (N, sum(map(len, events)) / N))
for batch in (8, 32, 128, 512):
    res = {}
    for name in ("old", "new"):
        cmd("FLUSHALL")
        cmds = []
        for k in range(0, N, batch):
            evs = events[k:k + batch]
            first, last = k + 1, k + len(evs)
            if name == "old":
                args = ["EVALSHA", old, 2, "veil:{0}:events", "veil:{0}:lane:x", 0, first, last, 2592000]
                for e in evs: args += [2, "e", e]
            else:
                b = b"2" + b"".join(leb(len(e)) + e for e in evs)
                args = ["EVALSHA", new, 2, "veil:{13}:events", "veil:{13}:lane:x", 0, first, last, 2592000, b, ""]
            cmds.append(args)
        c0 = cpu()
        for i in range(0, len(cmds), 200):
            r = pipe(cmds[i:i + 200])
            assert all(not (isinstance(x, bytes) and x.startswith(b"ERR")) for x in r), r[:2]
        c1 = cpu()
        key = "veil:{0}:events" if name == "old" else "veil:{13}:events"
        mem = int(cmd("MEMORY", "USAGE", key, "SAMPLES", "0"))
        res[name] = (1e6 * (c1 - c0) / N, mem / N)
    print("batch %4d: Redis us CPU/event old %.2f new %.2f (%.1fx less); stream bytes/event old %.0f new %.0f" % (
        batch, res["old"][0], res["new"][0], res["old"][0] / res["new"][0], res["old"][1], res["new"][1]))
p.terminate(); p.wait()
shutil.rmtree(d)
