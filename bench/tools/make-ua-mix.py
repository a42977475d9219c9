#!/usr/bin/env python3
"""make-ua-mix.py - build bench/data/ua-head.tsv, the User-Agents of the
benchmark's visitors other than the long tail.

Three parts, weighted like real traffic (StatCounter-like shares, 2024):

* current browsers (~80 % of requests), in the formats they send today:
  Chrome, Edge, Opera and Samsung Internet send the *reduced* User-Agent
  (Chrome/<major>.0.0.0, "Android 10; K", "Intel Mac OS X 10_15_7"), so a
  handful of strings per browser version covers most visitors; Safari and
  Firefox add their OS versions. Versions are spread with the newest ones
  most common.
* older and unusual real strings (~19 %): browsers with device models,
  old versions, in-app browsers, regional browsers, taken verbatim from
  Debian's uap-core test files (/usr/share/uap-core).
* crawlers (~1 %), real strings from the same files; the collector's bot
  filter answers them 202 without recording them.

The long tail (agents seen once, one visitor each) is not here: bench/mix.py
takes it at run time from uap-core's test_device.yaml.

    bench/tools/make-ua-mix.py > bench/data/ua-head.tsv
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from uap_agents import BOT, read_agents  # noqa: E402

FILES = ["/usr/share/uap-core/tests/test_ua.yaml", "/usr/share/uap-core/tests/test_os.yaml",
         "/usr/share/uap-core/tests/test_device.yaml",
         "/usr/share/uap-core/test_resources/firefox_user_agent_strings.yaml"]

WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
WIN, MAC, LINUX, ANDROID = ("Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7",
                            "X11; Linux x86_64", "Linux; Android 10; K")


def versions(newest, n):
    """The n majors up to `newest`, with weights falling off like real adoption."""
    w = [0.6 ** i for i in range(n)]
    t = sum(w)
    return [(newest - i, x / t) for i, x in enumerate(w)]


def ios_versions():
    vs = ["18_1", "18_0_1", "17_7", "17_6_1", "17_5_1", "17_4_1", "16_7_10", "16_6_1", "15_8_3"]
    w = [0.6 ** i for i in range(len(vs))]
    t = sum(w)
    return [(v, x / t) for v, x in zip(vs, w)]


def safari_version(ios):
    major, minor = ios.split("_")[:2]
    return f"{major}.{minor}"


def current():
    """(share %, class, ua) of current browsers: 80 % in all."""
    rows = []

    def add(share, cls, items):
        for ua, w in items:
            rows.append((share * w, cls, ua))

    add(26.0, "chrome-android", [(f"Mozilla/5.0 ({ANDROID}) {WEBKIT} Chrome/{v}.0.0.0 Mobile "
                                  f"Safari/537.36", w) for v, w in versions(131, 8)])
    for os_, share in ((WIN, 16.0), (MAC, 5.0), (LINUX, 1.0), ("X11; CrOS x86_64 14541.0.0", 0.5)):
        add(share, "chrome-desktop", [(f"Mozilla/5.0 ({os_}) {WEBKIT} Chrome/{v}.0.0.0 "
                                       f"Safari/537.36", w) for v, w in versions(131, 8)])
    add(12.5, "mobile-safari", [(f"Mozilla/5.0 (iPhone; CPU iPhone OS {v} like Mac OS X) "
                                 f"AppleWebKit/605.1.15 (KHTML, like Gecko) Version/"
                                 f"{safari_version(v)} Mobile/15E148 Safari/604.1", w)
                                for v, w in ios_versions()])
    add(2.0, "mobile-safari", [(f"Mozilla/5.0 (iPad; CPU OS {v} like Mac OS X) "
                                f"AppleWebKit/605.1.15 (KHTML, like Gecko) Version/"
                                f"{safari_version(v)} Mobile/15E148 Safari/604.1", w)
                               for v, w in ios_versions()])
    add(3.0, "safari", [(f"Mozilla/5.0 ({MAC}) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                         f"Version/{v} Safari/605.1.15", w)
                        for v, w in zip(["18.1", "18.0.1", "17.6", "17.5", "17.4.1", "16.6"],
                                        [0.35, 0.25, 0.15, 0.1, 0.1, 0.05])])
    add(4.5, "edge", [(f"Mozilla/5.0 ({WIN}) {WEBKIT} Chrome/{v}.0.0.0 Safari/537.36 "
                       f"Edg/{v}.0.0.0", w) for v, w in versions(131, 6)])
    for os_, share in ((WIN + "; rv:{v}.0", 1.5), ("Macintosh; Intel Mac OS X 10.15; rv:{v}.0", 0.5),
                       ("X11; Ubuntu; Linux x86_64; rv:{v}.0", 0.3),
                       ("Android 14; Mobile; rv:{v}.0", 0.2)):
        add(share, "firefox", [(f"Mozilla/5.0 ({os_.format(v=v)}) Gecko/"
                                f"{'20100101' if 'Android' not in os_ else str(v) + '.0'} "
                                f"Firefox/{v}.0", w) for v, w in versions(133, 6)])
    add(2.5, "samsung", [(f"Mozilla/5.0 ({ANDROID}) {WEBKIT} SamsungBrowser/{v}.0 "
                          f"Chrome/{v + 99}.0.0.0 Mobile Safari/537.36", w)
                         for v, w in versions(27, 4)])
    add(1.5, "opera", [(f"Mozilla/5.0 ({WIN}) {WEBKIT} Chrome/{v + 15}.0.0.0 Safari/537.36 "
                        f"OPR/{v}.0.0.0", w) for v, w in versions(115, 4)])
    add(1.5, "chrome-ios", [(f"Mozilla/5.0 (iPhone; CPU iPhone OS {v} like Mac OS X) "
                             f"AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 "
                             f"Mobile/15E148 Safari/604.1", w) for v, w in ios_versions()])
    return rows


# Older and unusual real strings: (class, share %, pattern, at most n strings).
REAL = [
    ("crawler", 1.0, r"Googlebot|bingbot|YandexBot|Baiduspider|DuckDuckBot|AhrefsBot|SemrushBot|"
                     r"HeadlessChrome|facebookexternalhit|Applebot|PetalBot", 40),
    ("chrome-android-old", 8.0, r"^Mozilla/5\.0 \(Linux; Android [\d.]+; [^;)]+\) AppleWebKit/537\.36 "
                                r"\(KHTML, like Gecko\) Chrome/[\d.]+ Mobile Safari/537\.36$", 80),
    ("in-app", 4.0, r"\[FBAN/|\[FB_IAB/|Instagram [\d.]+ |Line/[\d.]+|; wv\) ", 60),
    ("firefox-old", 1.5, r"^Mozilla/5\.0 \([^)]*rv:[\d.]+\) Gecko/[\d.]+ Firefox/[\d.]+$", 30),
    ("opera-old", 1.0, r"OPR/[\d.]+$|Opera Mini/", 30),
    ("other", 3.5, r"UCBrowser/|YaBrowser/|Vivaldi/|MiuiBrowser/|HuaweiBrowser/|Silk/|Whale/", 60),
]
def main():
    rows = current()
    agents = read_agents(FILES)
    taken = set(r[2] for r in rows)
    for cls, share, pattern, limit in REAL:
        test = re.compile(pattern)
        picked = [ua for ua in agents if ua not in taken and test.search(ua) and
                  (cls == "crawler" or not BOT.search(ua))][:limit]
        if not picked:
            sys.exit(f"no user agent for class {cls}")
        zipf = [1.0 / (i + 1) for i in range(len(picked))]
        total = sum(zipf)
        for ua, z in zip(picked, zipf):
            taken.add(ua)
            rows.append((share * z / total, cls, ua))
    print("# weight (% of non-tail visitors)\tclass\tuser agent  (built by "
          "bench/tools/make-ua-mix.py)")
    for w, cls, ua in rows:
        print(f"{w:.5f}\t{cls}\t{ua}")
    print(f"{len(rows)} user agents, weights sum to {sum(r[0] for r in rows):.1f}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
