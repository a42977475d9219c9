#!/usr/bin/env python3
"""mix.py - the benchmark's traffic: a deterministic pool of complete HTTP
requests that bench/pool.lua replays through wrk, the same bytes to nginx
and to veil-collector.

What a request looks like (what a browser running veil.js sends through a
reverse proxy): `POST /api/event` with a text/plain JSON body built exactly
like veil.js builds it (member order n,u,d,r,w / u,e,sd,n,d,r,w, `"r":null`
for direct traffic), the browser's headers (Chromium client hints and
Sec-Fetch-* for Chromium agents, Origin, Referer, Accept-Language) and the
proxy's X-Forwarded-For / X-Forwarded-Proto.

Who sends them: visitors, each with one address from bench/data/ips.tsv
(2,090 addresses in ~110 countries, IPv4 and IPv6, all in a GeoLite2 city)
and one User-Agent: a weighted pick from bench/data/ua-head.tsv, or, for a
share of visitors (--tail, default 12 %), a rare agent of their own from
uap-core's test_device.yaml (the long tail that misses the UA cache). A
visit is 1 page view (50 %) or 2 + geometric more, each page view followed
by an `engagement` beacon (70 %) and sometimes a custom event (8 %); pages
are drawn Zipf-like from --pages distinct paths (default 10,000); the first
page view of a visit has a search, social, other-site or no referrer, the
later ones an internal one; some URLs carry utm_* or click ids. About 256
visits run at once, interleaved.

Replaying a pool would make every agent a cache hit from the second lap on,
so each request of a tail visitor comes in --variants versions (a different
build number per lap): lap k sends variant k mod V. The UA-cache hit rate
this gives is computed here by replaying the same sequence through an LRU of
the collector's default size (10,000) and printed with the other facts of
the mix.

Output file (read by pool.lua): for each request a header line
"<n variants> <len 1> ... <len n>\n" followed by the n requests' bytes.

    mix.py --out FILE [--requests 100000] [--seed 1] [--site bench.veil.test] ...
    prints one JSON line of facts about the mix on stdout
"""
import argparse
import collections
import json
import os
import random
import re
import sys

from uap_agents import read_agents

HERE = os.path.dirname(os.path.abspath(__file__))
UAP_DEVICE = "/usr/share/uap-core/tests/test_device.yaml"

WORDS = """analytics privacy guide cookie consent tracking server setup docker redis
nginx linux release notes pricing team plan enterprise open source migrate google
dashboard api events goals funnels campaigns referrers weekly report performance
speed cache scaling cluster backup restore security policy gdpr ccpa compliance
how why what best faq getting started tutorial example deep dive comparison
vs alternative simple fast light small script install configure update upgrade
custom domain proxy wordpress shopify hugo jekyll nextjs react vue svelte angular
mobile desktop tablet browser chrome safari firefox edge opera country city
region language timezone newsletter email social twitter mastodon reddit hacker
news launch announcing introducing welcome hello world case study customer story
interview podcast video webinar conference talk slides paper research data
science machine learning statistics sampling retention bounce rate session time""".split()

SEARCH = ["https://www.google.com/", "https://www.google.com/", "https://www.google.com/",
          "https://www.google.de/", "https://www.google.co.uk/", "https://www.google.fr/",
          "https://www.google.co.in/", "https://www.google.com.br/", "https://www.bing.com/",
          "https://duckduckgo.com/", "https://search.yahoo.com/", "https://yandex.ru/",
          "https://www.ecosia.org/", "https://search.brave.com/", "https://www.baidu.com/"]
SOCIAL = ["https://t.co/", "https://www.facebook.com/", "https://l.facebook.com/",
          "https://lm.facebook.com/", "https://www.linkedin.com/", "https://www.reddit.com/",
          "https://old.reddit.com/", "https://news.ycombinator.com/", "https://mastodon.social/",
          "https://www.youtube.com/", "https://www.instagram.com/", "https://android-app://"
          "com.google.android.gm/", "https://away.vk.com/"]
UTM = [("newsletter", "email", "weekly-{n}"), ("google", "cpc", "brand"),
       ("google", "cpc", "generic-{w}"), ("twitter", "social", "launch"),
       ("facebook", "paid", "retarget-{n}"), ("linkedin", "social", "b2b"),
       ("partner-{w}", "referral", "affiliate"), ("reddit", "social", "ama")]
LANGS = ["en-US,en;q=0.9", "en-GB,en;q=0.9", "de-DE,de;q=0.9,en;q=0.8",
         "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "es-ES,es;q=0.9", "pt-BR,pt;q=0.9,en;q=0.8",
         "ja,en-US;q=0.9,en;q=0.8", "nl-NL,nl;q=0.9,en;q=0.8", "it-IT,it;q=0.9",
         "pl-PL,pl;q=0.9,en;q=0.8", "ru-RU,ru;q=0.9,en;q=0.8", "zh-CN,zh;q=0.9"]
MOBILE_W = [360, 375, 390, 393, 412, 414, 428, 430]
TABLET_W = [768, 810, 820, 834, 1024]
DESKTOP_W = [1280, 1366, 1440, 1512, 1536, 1680, 1920, 2560]
CUSTOM = ["Outbound Link: Click", "File Download", "Signup", "Form: Submit", "Form: Start"]


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if not line.startswith("#")]


def read_tail(exclude):
    """Rare real agents from uap-core's device tests (no crawlers, no head agents)."""
    return read_agents([UAP_DEVICE], exclude, bots=False)


def variant(ua, k):
    """Lap k's version of a tail agent: its last number + k (a different build)."""
    if k == 0:
        return ua
    m = None
    for m in re.finditer(r"\d+", ua):
        pass
    if not m:
        return f"{ua} b{k}"
    return ua[:m.start()] + str(int(m.group()) + k) + ua[m.end():]


class Site:
    def __init__(self, rng, host, npages):
        self.host = host
        paths = ["/", "/pricing", "/about", "/blog", "/docs", "/contact", "/login", "/signup"]
        seen = set(paths)
        while len(paths) < npages:
            kind = rng.random()
            if kind < 0.6:
                p = "/blog/" + "-".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7)))
            elif kind < 0.9:
                p = f"/docs/{rng.choice(WORDS)}/{rng.choice(WORDS)}-{rng.choice(WORDS)}"
            else:
                p = f"/products/{rng.randint(1000, 99999)}-{rng.choice(WORDS)}-{rng.choice(WORDS)}"
            if p not in seen:
                seen.add(p)
                paths.append(p)
        self.paths = paths
        # Zipf(1) popularity over the paths, as cumulative weights.
        self.cum = []
        total = 0.0
        for i in range(len(paths)):
            total += 1.0 / (i + 1)
            self.cum.append(total)
        self.others = [f"https://{rng.choice(WORDS)}-{rng.choice(WORDS)}.example/"
                       f"{rng.choice(WORDS)}/{rng.randint(1, 999)}" for _ in range(500)]

    def page(self, rng):
        return rng.choices(self.paths, cum_weights=self.cum)[0]

    def url(self, rng, path, first):
        base = f"https://{self.host}{path}"
        r = rng.random()
        if first and r < 0.10:
            src, med, camp = rng.choice(UTM)
            camp = camp.format(n=rng.randint(1, 52), w=rng.choice(WORDS))
            src = src.format(w=rng.choice(WORDS))
            return f"{base}?utm_source={src}&utm_medium={med}&utm_campaign={camp}"
        if first and r < 0.16:
            return base + "?gclid=" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                         "abcdefghijklmnopqrstuvwxyz0123456789_-")
                                              for _ in range(rng.randint(60, 95)))
        if r < 0.20:
            return base + f"?page={rng.randint(2, 9)}"
        if r < 0.22:
            return base + "?q=" + "+".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))
        return base

    def referrer(self, rng):
        r = rng.random()
        if r < 0.45:
            return None
        if r < 0.75:
            return rng.choice(SEARCH)
        if r < 0.85:
            return rng.choice(SOCIAL)
        return rng.choice(self.others)


def json_str(s):
    return json.dumps(s, ensure_ascii=False, separators=(",", ":"))


def body(ev):
    """JSON.stringify of veil.js's object: members in the order it sets them."""
    parts = []
    for k, v in ev.items():
        if isinstance(v, dict):
            parts.append(f'"{k}":{{' + ",".join(f"{json_str(a)}:{json_str(b)}"
                                                  for a, b in v.items()) + "}")
        else:
            parts.append(f'"{k}":' + ("null" if v is None else json_str(v)))
    return "{" + ",".join(parts) + "}"


def chromium_hints(ua):
    m = re.search(r"Chrome/(\d+)", ua)
    if not m or "Firefox" in ua:
        return []
    major = m.group(1)
    brand = "Google Chrome"
    if "Edg/" in ua:
        brand = "Microsoft Edge"
    elif "OPR/" in ua:
        brand = "Opera"
    elif "SamsungBrowser" in ua:
        brand = "Samsung Internet"
    mobile = "?1" if "Mobile" in ua else "?0"
    platform = ("Android" if "Android" in ua else "Windows" if "Windows" in ua
                else "macOS" if "Macintosh" in ua else "Chrome OS" if "CrOS" in ua else "Linux")
    return [("sec-ch-ua", f'"{brand}";v="{major}", "Chromium";v="{major}", '
                          f'"Not_A Brand";v="24"'),
            ("sec-ch-ua-mobile", mobile), ("sec-ch-ua-platform", f'"{platform}"')]


def request(host_header, site, ua, ip, lang, page_url, data):
    hdrs = [("Host", host_header), ("User-Agent", ua),
            ("Content-Type", "text/plain;charset=UTF-8"),
            ("Content-Length", str(len(data.encode())))]
    hdrs += chromium_hints(ua)
    hdrs += [("Accept", "*/*"), ("Origin", f"https://{site.host}"),
             ("Sec-Fetch-Site", "same-site"), ("Sec-Fetch-Mode", "no-cors"),
             ("Sec-Fetch-Dest", "empty"), ("Referer", page_url.split("?")[0]),
             ("Accept-Encoding", "gzip, deflate, br, zstd"), ("Accept-Language", lang),
             ("X-Forwarded-For", ip), ("X-Forwarded-Proto", "https")]
    head = "POST /api/event HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
    return (head + data).encode()


def screen(rng, ua):
    if "iPad" in ua or "Tablet" in ua:
        return rng.choice(TABLET_W)
    if "Mobile" in ua or "Android" in ua or "iPhone" in ua:
        return rng.choice(MOBILE_W)
    return rng.choice(DESKTOP_W)


def visit(rng, site, ua, ip):
    """The events of one visit, in order: (body text, page url)."""
    lang = rng.choice(LANGS)
    npv = 1 if rng.random() < 0.5 else 2 + min(int(rng.expovariate(0.5)), 18)
    width = screen(rng, ua)
    ref = site.referrer(rng)
    out = []
    prev = None
    for i in range(npv):
        url = site.url(rng, site.page(rng), i == 0)
        r = ref if i == 0 else prev
        out.append((body({"n": "pageview", "u": url, "d": site.host, "r": r, "w": width}), url))
        if rng.random() < 0.08:
            name = rng.choice(CUSTOM)
            if name in ("Outbound Link: Click", "File Download"):
                target = (f"https://{rng.choice(WORDS)}.example/{rng.choice(WORDS)}"
                          if name.startswith("Outbound") else
                          f"https://{site.host}/files/{rng.choice(WORDS)}-{rng.choice(WORDS)}.pdf")
                props = {"url": target}
            elif name == "Signup":
                props = {"plan": rng.choice(["free", "pro", "team"]),
                         "annual": rng.choice(["true", "false"])}
            else:
                props = {"form": rng.choice(["newsletter", "contact", "signup", "(unnamed)"])}
            out.append((body({"n": name, "u": url, "d": site.host, "r": r, "w": width,
                              "p": props}), url))
        if rng.random() < 0.7:
            ev = {"u": url, "e": int(rng.lognormvariate(9.5, 1.2)) % 86400000,
                  "sd": min(100, int(rng.random() * 110))}
            ev.update({"n": "engagement", "d": site.host, "r": r, "w": width})
            out.append((body(ev), url))
        prev = url
    return [(b, u, lang) for b, u in out]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--requests", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--site", default="bench.veil.test")
    ap.add_argument("--host-header", default="stats.bench.veil.test")
    ap.add_argument("--pages", type=int, default=10000)
    ap.add_argument("--tail", type=float, default=0.12, help="share of visitors with a rare UA")
    ap.add_argument("--variants", type=int, default=10)
    ap.add_argument("--active", type=int, default=256, help="visits running at once")
    ap.add_argument("--cache", type=int, default=10000, help="UA cache entries to simulate")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    head = read_tsv(os.path.join(HERE, "data", "ua-head.tsv"))
    head_ua = [r[2] for r in head]
    head_cum = []
    total = 0.0
    for r in head:
        total += float(r[0])
        head_cum.append(total)
    tail = read_tail(head_ua)
    rng.shuffle(tail)
    ips = [r[0] for r in read_tsv(os.path.join(HERE, "data", "ips.tsv"))]
    site = Site(rng, args.site, args.pages)

    # Visits interleaved: `active` running at once, a finished one replaced.
    requests = []   # (visitor index, body, url, lang)
    visitors = []   # (ua or None for tail, tail index, ip)
    ntail = 0

    def new_visit():
        nonlocal ntail
        ip = rng.choice(ips)
        if rng.random() < args.tail:
            vis = (None, ntail, ip)
            ntail += 1
        else:
            vis = (rng.choices(head_ua, cum_weights=head_cum)[0], -1, ip)
        visitors.append(vis)
        ua_for_shape = vis[0] or tail[vis[1] % len(tail)]
        return [len(visitors) - 1, visit(rng, site, ua_for_shape, ip), 0]

    running = [new_visit() for _ in range(args.active)]
    while len(requests) < args.requests:
        i = rng.randrange(len(running))
        v = running[i]
        b, u, lang = v[1][v[2]]
        requests.append((v[0], b, u, lang))
        v[2] += 1
        if v[2] == len(v[1]):
            running[i] = new_visit()

    # Tail agents: distinct real strings first, then other builds of them.
    tail_needed = ntail * args.variants
    tail_pool = [variant(tail[i % len(tail)], i // len(tail)) for i in range(tail_needed)]

    def ua_of(vis, lap):
        ua, ti, _ = vis
        return ua if ua is not None else tail_pool[ti * args.variants + lap % args.variants]

    nvar = collections.Counter()
    body_bytes = req_bytes = 0
    with open(args.out, "wb") as f:
        for vi, b, u, lang in requests:
            vis = visitors[vi]
            n = 1 if vis[0] is not None else args.variants
            reqs = [request(args.host_header, site, ua_of(vis, k), vis[2], lang, u, b)
                    for k in range(n)]
            f.write((f"{n} " + " ".join(str(len(r)) for r in reqs) + "\n").encode())
            for r in reqs:
                f.write(r)
            nvar[n] += 1
            body_bytes += len(b.encode())
            req_bytes += len(reqs[0])

    # UA cache: replay `variants` laps through an LRU of the collector's size.
    lru = collections.OrderedDict()
    hits = misses = 0
    for lap in range(args.variants):
        for vi, _, _, _ in requests:
            ua = ua_of(visitors[vi], lap)
            if ua in lru:
                lru.move_to_end(ua)
                if lap > 0:
                    hits += 1
            else:
                lru[ua] = True
                if len(lru) > args.cache:
                    lru.popitem(last=False)
                if lap > 0:
                    misses += 1

    crawler = set(r[2] for r in head if r[1] == "crawler")
    names = collections.Counter(re.search(r'"n":"([^"]+)"', b).group(1) for _, b, _, _ in requests)
    facts = {
        "requests": len(requests),
        "visitors": len(visitors),
        "tail_visitors": ntail,
        "distinct_ua_per_lap": len(set(ua_of(v, 0) for v in visitors)),
        "distinct_ips": len(set(v[2] for v in visitors)),
        "ipv6_share": round(sum(1 for vi, *_ in requests if ":" in visitors[vi][2]) / len(requests), 3),
        "crawler_requests": sum(1 for vi, *_ in requests if visitors[vi][0] in crawler),
        "events": dict(names.most_common()),
        "distinct_pages_sent": len(set(re.sub(r"\?.*", "", u) for _, _, u, _ in requests)),
        "avg_body_bytes": round(body_bytes / len(requests), 1),
        "avg_request_bytes": round(req_bytes / len(requests), 1),
        "ua_cache_hit_rate": round(hits / max(1, hits + misses), 4),
    }
    json.dump(facts, sys.stdout)
    print()


if __name__ == "__main__":
    main()
