/* dashboard-lib.mjs - what the dashboard's browser suites share: the data
 * set written straight into Redis in the docs/KEYS.md schema (three UTC days
 * ending today) and what it says, the stack (redis-server on a unix socket,
 * the dashboard built by dashboard/build.mjs, $VEIL_BUILD/veil-aggregator on
 * a free loopback port), page helpers, and the runner (one line per test, a
 * closing "N passed, N failed", a non-zero exit on any failure, a 120 s
 * bound in all). Test use only; it never touches a fixed port or dir. */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.mjs';
import { RedisClient } from './resp.mjs';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, '..', '..');
export const BUILD = resolve(process.env.VEIL_BUILD || join(ROOT, 'build'));
export const CHROMIUM = process.env.VEIL_CHROMIUM || '/usr/bin/chromium';
export const TOTAL_TIMEOUT_MS = 120_000;
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
];
export const SITE = 'shop.example';
export const SMALL_SITE = 'blog.example';
export const TOKEN = randomBytes(24).toString('hex');
/* A token granted only SMALL_SITE (api_tokens keeps its SHA-256). */
export const SITE_TOKEN = randomBytes(24).toString('hex');

/* ---- a tiny runner ---- */


export class AssertionError extends Error {}
export function check(cond, message) {
  if (!cond) throw new AssertionError(message);
}
export function checkEqual(actual, expected, message) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new AssertionError(`${message}\n  expected: ${e}\n  actual:   ${a}`);
}

/* ---- the data set (docs/KEYS.md), three UTC days ending today ---- */

export const DAY_MS = 86_400_000;
export const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
export const NOW = Date.now();
export const D0 = isoDay(NOW);
export const D1 = isoDay(NOW - DAY_MS);
export const D2 = isoDay(NOW - 2 * DAY_MS);
export const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
/* Visitor hashes: 16 hex digits, as the collector writes them. */
export const vh = (n) => createHash('sha256').update(`visitor-${n}`).digest('hex').slice(0, 16);

export const TOTALS = {
  [D2]: { pageviews: 20, events: 23, visits: 10, bounces: 4, visit_duration_s: 900, scroll_sum: 600, scroll_n: 10 },
  [D1]: { pageviews: 31, events: 35, visits: 14, bounces: 6, visit_duration_s: 1400, scroll_sum: 700, scroll_n: 12, row_visits: 14 },
  [D0]: { pageviews: 44, events: 50, visits: 18, bounces: 9, visit_duration_s: 2000, scroll_sum: 1000, scroll_n: 16, row_visits: 18 },
};
/* D1 and D0 were counted with per-row bounces and seconds (totals
 * row_visits = visits); D2 before they were kept: its nbn/dur/exit rows
 * are left out of the per-row numbers (docs/API.md). */
export const rowDayComplete = (day) => TOTALS[day]?.row_visits === TOTALS[day]?.visits;
export const DAY_VISITORS = { [D2]: range(1, 8), [D1]: range(5, 14), [D0]: range(10, 21) };

/* [dim, value, day, {pv, vis, ev, nbn, dur}, visitors]; nbn: visits that
 * are no bounce (a row's bounces are vis - nbn, docs/KEYS.md) */
export const ROWS = [
  ['page', '/', D2, { pv: 8, ev: 8 }, range(1, 6)],
  ['page', '/', D1, { pv: 12, ev: 12 }, range(5, 10)],
  ['page', '/', D0, { pv: 20, ev: 20 }, range(10, 12)],
  ['page', '/pricing', D1, { pv: 10, ev: 10 }, range(5, 8)],
  ['page', '/pricing', D0, { pv: 15, ev: 15 }, range(9, 11)],
  ['page', '/blog/hello', D0, { pv: 6, ev: 6 }, range(13, 15)],
  ['page', '/about', D0, { pv: 3, ev: 3 }, [16, 17]],
  ['page', '/secret-rare-page', D0, { pv: 1, ev: 1 }, [18]],
  ['entry_page', '/', D2, { vis: 6 }, range(1, 6)],
  ['entry_page', '/', D1, { vis: 8 }, range(5, 10)],
  ['entry_page', '/', D0, { vis: 9 }, range(10, 15)],
  ['entry_page', '/pricing', D0, { vis: 4 }, range(16, 19)],
  ['source', 'news.example', D1, { vis: 5, nbn: 3, dur: 400 }, range(5, 8)],
  ['source', 'news.example', D0, { vis: 6, nbn: 3, dur: 900 }, range(9, 12)],
  ['source', 'Direct / None', D2, { vis: 8, nbn: 3, dur: 300 }, range(1, 6)],
  ['source', 'tiny.example', D0, { vis: 1 }, [20]],
  ['utm_source', 'newsletter', D0, { vis: 6 }, range(9, 14)],
  ['utm_medium', 'email', D0, { vis: 6 }, range(9, 14)],
  ['utm_campaign', 'autumn-sale', D0, { vis: 6 }, range(9, 14)],
  ['country', 'DE', D2, { vis: 6 }, range(1, 5)],
  ['country', 'DE', D1, { vis: 6 }, range(6, 10)],
  ['country', 'FR', D0, { vis: 7 }, range(11, 16)],
  ['country', 'LU', D0, { vis: 2 }, [17, 18]],
  ['country', 'IS', D0, { vis: 1 }, [19]],
  ['region', 'DE-BE', D2, { vis: 6 }, range(1, 5)],
  ['region', 'FR-IDF', D0, { vis: 7 }, range(11, 16)],
  ['city', 'Berlin', D2, { vis: 6 }, range(1, 5)],
  ['city', 'Paris', D0, { vis: 7 }, range(11, 16)],
  ['browser', 'Chrome', D2, { vis: 7 }, range(1, 6)],
  ['browser', 'Chrome', D0, { vis: 7 }, range(10, 15)],
  ['browser', 'Firefox', D1, { vis: 8 }, range(5, 11)],
  ['browser', 'Safari', D0, { vis: 2 }, [16, 17]],
  ['os', 'Linux', D2, { vis: 6 }, range(1, 6)],
  ['os', 'Windows', D1, { vis: 8 }, range(5, 11)],
  ['os', 'iOS', D0, { vis: 7 }, range(16, 21)],
  ['device', 'desktop', D2, { vis: 10 }, range(1, 8)],
  ['device', 'desktop', D1, { vis: 14 }, range(5, 14)],
  ['device', 'mobile', D0, { vis: 8 }, range(15, 21)],
  ['screen', 'desktop', D2, { vis: 10 }, range(1, 8)],
  ['screen', 'mobile', D0, { vis: 8 }, range(15, 21)],
  ['name', 'pageview', D2, { pv: 20, ev: 20 }, range(1, 8)],
  ['name', 'pageview', D1, { pv: 31, ev: 31 }, range(5, 14)],
  ['name', 'pageview', D0, { pv: 44, ev: 44 }, range(10, 21)],
  ['name', 'signup', D1, { ev: 2 }, [6, 7]],
  ['name', 'signup', D0, { ev: 5 }, range(10, 13)],
  ['name', 'download', D0, { ev: 2 }, [20, 21]],
  ['channel', 'Referral', D1, { vis: 5, nbn: 3, dur: 400 }, range(5, 8)],
  ['channel', 'Referral', D0, { vis: 7, nbn: 3, dur: 900 }, [...range(9, 12), 20]],
  ['channel', 'Direct', D2, { vis: 8, nbn: 3, dur: 300 }, range(1, 6)],
  /* exits move as visits go on (docs/API.md "Exit pages"); D2's are left out */
  ['exit_page', '/', D2, { vis: 6, nbn: 3, dur: 200 }, range(1, 6)],
  ['exit_page', '/', D1, { vis: 8, nbn: 4, dur: 700 }, range(5, 10)],
  ['exit_page', '/pricing', D1, { vis: 6, nbn: 4, dur: 700 }, range(5, 8)],
  ['exit_page', '/', D0, { vis: 9, nbn: 4, dur: 900 }, range(10, 16)],
  ['exit_page', '/pricing', D0, { vis: 3, nbn: 2, dur: 500 }, range(9, 11)],
  ['exit_page', '/blog/hello', D0, { vis: 5, nbn: 3, dur: 600 }, range(13, 15)],
  /* two visitors passed through /about, one visit exited there */
  ['exit_page', '/about', D0, { vis: 1 }, [16, 17]],
  ['goal', 'Visit /pricing', D1, { pv: 10, ev: 10 }, range(5, 8)],
  ['goal', 'Visit /pricing', D0, { pv: 15, ev: 15 }, range(9, 11)],
  ['goal', 'Signup', D1, { ev: 2 }, [6, 7]],
  ['goal', 'Signup', D0, { ev: 5 }, range(10, 13)],
  ['visitor_type', 'new', D2, { vis: 10 }, range(1, 8)],
  ['visitor_type', 'new', D1, { vis: 10 }, range(9, 14)],
  ['visitor_type', 'returning', D1, { vis: 4 }, range(5, 8)],
  ['prop_key', 'plan', D1, { ev: 3 }, [6, 7]],
  ['prop_key', 'plan', D0, { ev: 4 }, range(10, 13)],
  ['prop:plan', 'pro', D0, { ev: 4 }, range(10, 13)],
  ['prop:plan', 'free', D1, { ev: 3 }, [6, 7]],
];
/* Pair counts (docs/KEYS.md "Pair counts"), consistent with ROWS:
 * [A, B, a, b, day, {pv, vis, ev}, visitors]; every day of TOTALS is
 * marked as counted with pairs. */
export const PAIRS = [
  ['page', 'source', '/', 'Direct / None', D2, { pv: 8 }, range(1, 6)],
  ['page', 'source', '/', 'news.example', D1, { pv: 4 }, range(5, 8)],
  ['page', 'source', '/pricing', 'news.example', D1, { pv: 6 }, range(5, 8)],
  ['page', 'source', '/', 'news.example', D0, { pv: 5 }, range(10, 12)],
  ['page', 'source', '/pricing', 'news.example', D0, { pv: 7 }, range(9, 11)],
  ['source', 'country', 'Direct / None', 'DE', D2, { vis: 6 }, range(1, 5)],
  ['source', 'country', 'news.example', 'DE', D1, { vis: 5 }, range(6, 8)],
  ['source', 'country', 'news.example', 'FR', D0, { vis: 4 }, range(11, 12)],
  ['goal', 'country', 'Signup', 'DE', D1, { ev: 2 }, [6, 7]],
  ['goal', 'country', 'Signup', 'FR', D0, { ev: 3 }, range(11, 13)],
  ['goal', 'channel', 'Signup', 'Referral', D1, { ev: 2 }, [6, 7]],
  ['goal', 'channel', 'Signup', 'Referral', D0, { ev: 3 }, range(10, 12)],
];
/* The visit dimensions the aggregator pairs by default (pair_dims). */
const PAIR_DIMS = ['source', 'channel', 'referrer', 'utm_source', 'utm_medium', 'utm_campaign', 'utm_term', 'utm_content', 'entry_page', 'country', 'region', 'city', 'browser', 'os', 'device', 'screen', 'visitor_type'];
/* The hash field of a pair of values: "<byte length of a>:<a><b>". */
export const pairField = (a, b) => `${Buffer.byteLength(a)}:${a}${b}`;

/* Realtime: visitor hash -> seconds ago (three within the last 5 minutes). */
export const REALTIME = { [vh(19)]: 10, [vh(20)]: 60, [vh(21)]: 170, [vh(3)]: 1200 };

/* Each day's counts fall into two local hours: the first half (rounded
 * down) at 09:00, the rest at 15:00; so do its visitors. */
export const HOURS = ['09', '15'];
const HOUR_FIELDS = ['pageviews', 'events', 'visits', 'bounces', 'visit_duration_s'];
export function hourSplit(x) {
  if (Array.isArray(x)) return [x.slice(0, Math.floor(x.length / 2)), x.slice(Math.floor(x.length / 2))];
  return [Math.floor(x / 2), x - Math.floor(x / 2)];
}

/* The 24 hourly buckets of a day: [{hour: 'HH', visitors, pageviews}]. */
export function expectedHours(day) {
  return Array.from({ length: 24 }, (_, h) => {
    const hh = String(h).padStart(2, '0');
    const i = HOURS.indexOf(hh);
    return {
      hour: hh,
      visitors: i < 0 ? 0 : hourSplit(DAY_VISITORS[day])[i].length,
      pageviews: i < 0 ? 0 : hourSplit(TOTALS[day].pageviews)[i],
    };
  });
}

/* Breakdowns with hourly rows (aggregator/hourly.c; docs/KEYS.md `hb:`,
 * `hu:`): each of their rows falls into the same two hours, split as
 * hourSplit says (counts and visitors). */
export const HOURLY_DIMS = ['page', 'entry_page', 'source', 'channel', 'utm_source', 'utm_medium', 'utm_campaign', 'country', 'device', 'browser', 'os', 'goal'];

/* The 24 hourly buckets of `dim` == `value` on a day: [{hour, visitors, pageviews, visits}]. */
export function expectedHourRows(dim, value, day) {
  const row = ROWS.find(([d, v, dd]) => d === dim && v === value && dd === day);
  return Array.from({ length: 24 }, (_, h) => {
    const hh = String(h).padStart(2, '0');
    const i = HOURS.indexOf(hh);
    if (i < 0 || !row) return { hour: hh, visitors: 0, pageviews: 0, visits: 0 };
    const [, , , counts, visitors] = row;
    return { hour: hh, visitors: hourSplit(visitors)[i].length, pageviews: hourSplit(counts.pv || 0)[i], visits: hourSplit(counts.vis || 0)[i] };
  });
}

/* What the data set says, computed from the tables above. */
export function expectedTotals(days) {
  const sum = (f) => days.reduce((a, d) => a + (TOTALS[d]?.[f] || 0), 0);
  const visitors = new Set(days.flatMap((d) => DAY_VISITORS[d] || [])).size;
  const visits = sum('visits');
  return {
    visitors,
    pageviews: sum('pageviews'),
    bounce_rate: visits ? Math.round((100 * sum('bounces')) / visits) : 0,
    visit_duration: visits ? Math.round(sum('visit_duration_s') / visits) : 0,
    scroll_depth: sum('scroll_n') ? Math.round(sum('scroll_sum') / sum('scroll_n')) : 0,
  };
}

/* Breakdown rows of `dim` over `days` with k = 1, sorted like the API.
 * Per-row bounce_rate and visit_duration come from the days with per-row
 * counts only (null without any); exit rows exist only on those days, and
 * their visitors are at most their visits (docs/API.md). */
export function expectedRows(dim, days, column, metrics) {
  const byValue = new Map();
  for (const [d, value, day, counts, visitors] of ROWS) {
    if (d !== dim || !days.includes(day)) continue;
    const r = byValue.get(value) || { value, pv: 0, vis: 0, ev: 0, rvis: 0, nbn: 0, dur: 0, visitors: new Set() };
    r.pv += counts.pv || 0;
    r.vis += counts.vis || 0;
    r.ev += counts.ev || 0;
    if (rowDayComplete(day)) {
      r.rvis += counts.vis || 0;
      r.nbn += counts.nbn || 0;
      r.dur += counts.dur || 0;
    }
    for (const v of visitors) r.visitors.add(v);
    byValue.set(value, r);
  }
  let rows = [...byValue.values()].map((r) => ({ ...r, nvisitors: r.visitors.size }));
  if (dim === 'exit_page')
    rows = rows.filter((r) => r.rvis > 0).map((r) => ({ ...r, vis: r.rvis, nvisitors: Math.min(r.nvisitors, r.rvis) }));
  const names = { pageviews: 'pv', visits: 'vis', events: 'ev' };
  const value = (r, m) => {
    if (m === 'visitors') return r.nvisitors;
    if (m === 'bounce_rate') return r.rvis ? Math.round((100 * (r.rvis - r.nbn)) / r.rvis) : null;
    if (m === 'visit_duration') return r.rvis ? Math.round(r.dur / r.rvis) : null;
    return r[names[m]];
  };
  return rows
    .sort((a, b) => b.nvisitors - a.nvisitors || Buffer.compare(Buffer.from(a.value), Buffer.from(b.value)))
    .map((r) => {
      const row = { [column]: r.value };
      for (const m of metrics) row[m] = value(r, m);
      return row;
    });
}

/* ---- the stack ---- */

export async function waitUntil(what, fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await fn()) return;
    } catch (err) {
      last = err;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

export function startProcess(name, cmd, args, logPath) {
  const fd = openSync(logPath, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  child.exitStatus = null;
  child.on('exit', (code, signal) => (child.exitStatus = signal || code));
  child.log = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');
  child.label = name;
  return child;
}

export async function stopProcess(child) {
  if (!child || child.exitStatus !== null) return;
  const exited = new Promise((ok) => child.once('exit', ok));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

export const stack = {
  dir: null,
  redis: null,
  aggregator: null,
  client: null,
  apiUrl: null,
  dashboardDir: null,
  opts: null,

  async start() {
    this.dir = mkdtempSync(join(tmpdir(), 'veil-dashboard-'));
    const aggregatorBin = join(BUILD, 'veil-aggregator');
    if (!existsSync(aggregatorBin)) throw new Error(`${aggregatorBin} is missing: run make`);
    this.dashboardDir = join(this.dir, 'dashboard');
    const built = spawnSync(process.execPath, [join(ROOT, 'dashboard', 'build.mjs'), this.dashboardDir], {
      encoding: 'utf8',
    });
    if (built.status !== 0) throw new Error(`dashboard build failed:\n${built.stdout}${built.stderr}`);
    this.buildLine = built.stdout.trim();

    const sock = join(this.dir, 'redis.sock');
    this.redis = startProcess(
      'redis-server',
      'redis-server',
      ['--port', '0', '--unixsocket', sock, '--unixsocketperm', '700', '--save', '', '--appendonly', 'no',
        '--dir', this.dir],
      join(this.dir, 'redis.log')
    );
    await waitUntil('redis-server', async () => {
      if (this.redis.exitStatus !== null) throw new Error(`redis-server exited:\n${this.redis.log()}`);
      if (!existsSync(sock)) return false;
      this.client = await RedisClient.connect(sock);
      return (await this.client.command('PING')) === 'PONG';
    }, 10_000);
    this.sock = sock;
    await writeDataSet(this.client);
  },

  /* (Re)start veil-aggregator with these extra options. */
  async startAggregator(extra) {
    await stopProcess(this.aggregator);
    const port = await freePort();
    this.apiUrl = `http://127.0.0.1:${port}`;
    const siteTokenHash = createHash('sha256').update(SITE_TOKEN).digest('hex');
    this.aggregator = startProcess(
      'veil-aggregator',
      join(BUILD, 'veil-aggregator'),
      [
        `--redis=unix:${this.sock}`,
        `--api_listen=127.0.0.1:${port}`,
        `--api_token=${TOKEN}`,
        `--api_tokens=${SMALL_SITE}=${siteTokenHash}`,
        `--dashboard_dir=${this.dashboardDir}`,
        '--log_level=warn',
        '--shards=1', // the data set below is written in shard 0
        ...extra,
      ],
      join(this.dir, 'aggregator.log')
    );
    await waitUntil('the stats API', async () => {
      if (this.aggregator.exitStatus !== null)
        throw new Error(`veil-aggregator exited (${this.aggregator.exitStatus}):\n${this.aggregator.log()}`);
      const res = await fetch(`${this.apiUrl}/healthz`);
      return res.status === 200;
    }, 10_000);
  },

  async stop() {
    if (this.client) this.client.close();
    await stopProcess(this.aggregator);
    await stopProcess(this.redis);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  },
};

export async function writeDataSet(r) {
  const key = (site, day, tail) => `veil:{0}:d:${site}:${day}:${tail}`;
  await r.command('SADD', 'veil:{0}:sites', SITE, SMALL_SITE);
  for (const [day, totals] of Object.entries(TOTALS)) {
    for (const [field, n] of Object.entries(totals)) await r.command('HINCRBY', key(SITE, day, 'totals'), field, n);
    await r.command('PFADD', key(SITE, day, 'visitors'), ...DAY_VISITORS[day].map(vh));
    /* Local hours (docs/KEYS.md `hours`, `hv:<HH>`), split as HOURS says. */
    for (const [field, n] of Object.entries(totals)) {
      if (!HOUR_FIELDS.includes(field)) continue;
      for (const [i, hh] of HOURS.entries()) await r.command('HINCRBY', key(SITE, day, 'hours'), `${hh}:${field}`, hourSplit(n)[i]);
    }
    for (const [i, hh] of HOURS.entries()) await r.command('PFADD', key(SITE, day, `hv:${hh}`), ...hourSplit(DAY_VISITORS[day]).at(i).map(vh));
    /* every event of the hour has its hourly rows (`<HH>:hourly_rows`) */
    for (const [i, hh] of HOURS.entries()) await r.command('HINCRBY', key(SITE, day, 'hours'), `${hh}:hourly_rows`, hourSplit(totals.events)[i]);
  }
  for (const [dim, value, day, counts, visitors] of ROWS) {
    for (const [metric, n] of Object.entries(counts)) {
      if (n) await r.command('HINCRBY', key(SITE, day, `b:${dim}:${metric}`), value, n);
    }
    await r.command('PFADD', key(SITE, day, `u:${dim}:${value}`), ...visitors.map(vh));
    if (!HOURLY_DIMS.includes(dim)) continue;
    for (const [i, hh] of HOURS.entries()) {
      /* events are kept as page views plus `oe`, the other events */
      const part2 = { pv: hourSplit(counts.pv || 0)[i], oe: hourSplit(counts.ev || 0)[i] - hourSplit(counts.pv || 0)[i], vis: hourSplit(counts.vis || 0)[i] };
      for (const [metric, n] of Object.entries(part2)) {
        if (n > 0) await r.command('HINCRBY', key(SITE, day, `hb:${dim}`), `${hh}:${metric}:${value}`, n);
      }
      const part = hourSplit(visitors)[i];
      if (part.length) await r.command('PFADD', key(SITE, day, `hu:${dim}:${hh}:${value}`), ...part.map(vh));
    }
  }
  for (const day of Object.keys(TOTALS)) {
    await r.command('HINCRBY', key(SITE, day, 'pairs'), 'batches', 1);
    /* every page view and visit of the day went through the pair counts */
    await r.command('HINCRBY', key(SITE, day, 'pairs'), 'pageviews', TOTALS[day].pageviews);
    await r.command('HINCRBY', key(SITE, day, 'pairs'), 'visits', TOTALS[day].visits);
    for (const dim of PAIR_DIMS) await r.command('HINCRBY', key(SITE, day, 'pairs'), `d:${dim}`, 1);
  }
  for (const [A, B, a, b, day, counts, visitors] of PAIRS) {
    for (const [metric, n] of Object.entries(counts)) await r.command('HINCRBY', key(SITE, day, `p:${A}:${B}:${metric}`), pairField(a, b), n);
    await r.command('PFADD', key(SITE, day, `pu:${A}:${B}:${pairField(a, b)}`), ...visitors.map(vh));
    await r.command('HINCRBY', key(SITE, day, 'pairs'), 'cells', 1);
  }
  const nowS = Math.floor(NOW / 1000);
  /* realtime visitors: one HyperLogLog per minute */
  for (const [hash, ago] of Object.entries(REALTIME)) {
    await r.command('PFADD', `veil:{0}:rt:${SITE}:${Math.floor((nowS - ago) / 60)}`, hash);
  }
  await r.command('HINCRBY', key(SMALL_SITE, D0, 'totals'), 'pageviews', 3);
  await r.command('HINCRBY', key(SMALL_SITE, D0, 'totals'), 'visits', 2);
  await r.command('PFADD', key(SMALL_SITE, D0, 'visitors'), vh(100), vh(101));
}

/* The API, asked directly from node with the same query the page makes. */
export async function apiGet(path, params, { token = TOKEN, csv = false } = {}) {
  const res = await fetch(`${stack.apiUrl}/api/v1/${path}?${new URLSearchParams(params)}`, {
    headers: { Authorization: `Bearer ${token}`, ...(csv ? { Accept: 'text/csv' } : {}) },
  });
  if (!res.ok) throw new Error(`API ${path} answered ${res.status}: ${await res.text()}`);
  return csv ? res.text() : res.json();
}

/* The same, but a refusal is an answer too: {ok, status, body} with body
 * the JSON answer or the API's error text. */
export async function apiTry(path, params, { token = TOKEN } = {}) {
  const res = await fetch(`${stack.apiUrl}/api/v1/${path}?${new URLSearchParams(params)}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  const body = await res.json();
  return { ok: res.ok, status: res.status, body: res.ok ? body : body.error };
}

/* The page's way of asking (dashboard/api.js apiMetrics): a metric the
 * API refuses by name is dropped and the rest asked again. Resolves with
 * {ok, body, metrics, dropped: {metric: reason}} or the final refusal. */
export async function apiDropping(path, params, metrics) {
  const dropped = {};
  let left = [...metrics];
  for (;;) {
    const r = await apiTry(path, { ...params, metrics: left.join(',') });
    if (r.ok) return { ...r, metrics: left, dropped };
    const m = r.status === 400 && left.length > 1 ? left.find((x) => new RegExp(`^(filters|metrics): ${x}\\b`).test(r.body)) : null;
    if (!m) return { ...r, metrics: left, dropped };
    dropped[m] = r.body;
    left = left.filter((x) => x !== m);
  }
}

/* ---- the page ---- */

export const env = { ctx: null }; /* the browser context */

/* A new tab that records console errors and uncaught exceptions. */
export async function openPage({ width = 1280, height = 900 } = {}) {
  const page = await env.ctx.newPage();
  await page.setViewportSize({ width, height });
  page.consoleErrors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => page.consoleErrors.push(`uncaught: ${err.message}`));
  return page;
}

/* Console errors other than `allowed`. Refused requests (400) are allowed
 * by default: the page probes what the API can answer and shows each
 * refusal's reason (the suites check those reasons are on the page). */
export function checkNoConsoleErrors(page, allowed = [/status of 400/]) {
  const errors = page.consoleErrors.filter((e) => !allowed.some((re) => re.test(e)));
  checkEqual(errors, [], 'console errors on the page');
}

export async function signIn(page, token = TOKEN) {
  await page.goto(`${stack.apiUrl}/`);
  await page.waitForSelector('#login:not([hidden])');
  await page.fill('#token', token);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#controls:not([hidden])');
}

/* Wait until metrics, chart, realtime and every panel have answered. */
export async function waitLoaded(page) {
  await page.waitForFunction(() => {
    const metrics = [...document.querySelectorAll('.metric:not([hidden]) .metric-value')];
    return (
      metrics.length > 0 &&
      metrics.every((m) => m.dataset.value !== '') &&
      document.getElementById('chart').dataset.points !== '' &&
      document.getElementById('realtime').dataset.value !== '' &&
      !document.querySelector('.panel[data-state="loading"]')
    );
  });
}

export async function shownMetrics(page) {
  return page.$$eval('.metric:not([hidden])', (nodes) =>
    Object.fromEntries(
      nodes.map((n) => {
        const v = n.querySelector('.metric-value');
        return [n.dataset.metric, { value: Number(v.dataset.value), text: v.textContent }];
      })
    )
  );
}

export async function shownRows(page, panel, column) {
  return page.$$eval(
    `#panel-${panel} tbody tr:not(.empty)`,
    (trs, col) =>
      trs.map((tr) => {
        const row = { [col]: tr.querySelector('td.value').dataset.value };
        for (const td of tr.querySelectorAll('td.num')) row[td.dataset.metric] = td.dataset.value === '' ? null : Number(td.dataset.value);
        return row;
      }),
    column
  );
}

export async function clickTab(page, panel, label) {
  await page.click(`#panel-${panel} .tab >> text="${label}"`);
  /* "idle": the property tab before a key is typed. */
  await page.waitForSelector(`#panel-${panel}:is([data-state="ready"], [data-state="idle"], [data-state="unavailable"])`);
}

export async function setCustomRange(page, from, to) {
  await page.selectOption('#period', 'custom');
  await page.fill('#from', from);
  await page.fill('#to', to);
  await page.click('#apply-range');
  await waitLoaded(page);
}

export const ALL_DAYS = [D2, D1, D0];
export const CUSTOM = { period: 'custom', date: `${D2},${D0}` };
export const TOP = 'visitors,pageviews,bounce_rate,visit_duration,scroll_depth';

/* ---- main ---- */

/* Run `tests` ([{name, fn}], in order) against a fresh stack; exit with
 * the outcome. */
export async function runTests(tests) {
  let passed = 0;
  let failed = 0;
  const watchdog = setTimeout(() => {
    console.log(`dashboard tests: gave up after ${TOTAL_TIMEOUT_MS / 1000} s`);
    console.log(`${passed} passed, ${tests.length - passed} failed`);
    stack.stop().finally(() => process.exit(1));
  }, TOTAL_TIMEOUT_MS);

  let userDataDir;
  try {
    const { chromium } = await import('playwright-core').catch(() => {
      throw new Error('playwright-core is missing: run npm ci');
    });
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
    await stack.start();
    await stack.startAggregator(['--k_anonymity=1']);
    console.log(`stack: stats API ${stack.apiUrl}; ${stack.buildLine}`);
    userDataDir = mkdtempSync(join(tmpdir(), 'veil-chromium-'));
    env.ctx = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
      locale: 'en-US',
      /* Not UTC, so that a local-time slip in the page would show. */
      timezoneId: 'America/Los_Angeles',
      acceptDownloads: true,
    });
    env.ctx.setDefaultTimeout(10_000);
    for (const page of env.ctx.pages()) await page.close();

    for (const t of tests) {
      try {
        await t.fn();
        passed++;
        console.log(`ok   - ${t.name}`);
      } catch (err) {
        failed++;
        console.log(`FAIL - ${t.name}\n  ${(err.stack || String(err)).split('\n').join('\n  ')}`);
      }
    }
    if (failed && stack.aggregator) {
      console.log('--- aggregator log (tail) ---');
      console.log(stack.aggregator.log().split('\n').slice(-20).join('\n'));
    }
  } catch (err) {
    console.log(`dashboard tests: setup failed: ${err.stack || err}`);
    failed = tests.length - passed;
  } finally {
    if (env.ctx) await env.ctx.close().catch(() => {});
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    await stack.stop().catch((err) => console.log(`teardown: ${err.message}`));
  }
  clearTimeout(watchdog);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

/* --serve: start the stack with the data set and wait (for a look by
 * hand); Ctrl-C stops it. */
export async function serve() {
  await stack.start();
  await stack.startAggregator(process.argv.slice(3));
  console.log(`dashboard: ${stack.apiUrl}/  token: ${TOKEN}  (site token for ${SMALL_SITE}: ${SITE_TOKEN})`);
  const stop = () => stack.stop().finally(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

