"""uap_agents.py - real User-Agent strings from uap-core's test files,
cleaned the same way for bench/mix.py (the long tail) and
bench/tools/make-ua-mix.py (the weighted head)."""
import re

BOT = re.compile(r"bot\b|crawl|spider|slurp|headless", re.I)


def read_agents(paths, exclude=(), bots=True):
    """Distinct user_agent_string values of `paths`, in file order: 20-400
    printable ASCII characters, none of `exclude`, crawlers only if `bots`."""
    out, seen = [], set(exclude)
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"\s*- user_agent_string: ?'(.*)'\s*$", line) or \
                    re.match(r'\s*- user_agent_string: ?"(.*)"\s*$', line)
                if not m:
                    continue
                ua = m.group(1).replace("''", "'")
                if ua in seen or not (20 <= len(ua) <= 400) or not ua.isascii() or \
                        any(c < " " for c in ua) or (not bots and BOT.search(ua)):
                    continue
                seen.add(ua)
                out.append(ua)
    return out
