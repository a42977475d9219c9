#!/usr/bin/env node
/* dashboard.mjs - the dashboard in headless Chromium against the real
 * stats API (docs/DASHBOARD.md, "Tests").
 *
 *   node tests/browser/dashboard.mjs        (VEIL_BUILD=build by default)
 *   node tests/browser/dashboard.mjs --serve [--aggregator-option ...]
 *        start the same stack and data set and wait, to look by hand
 *
 * Starts its own stack in a fresh temp dir: redis-server on a unix socket,
 * a known data set written straight into Redis in the docs/KEYS.md schema,
 * the dashboard built by dashboard/build.mjs, and $VEIL_BUILD/veil-aggregator
 * on a free loopback port serving both. Each test drives Chromium
 * (playwright-core, /usr/bin/chromium, a fresh profile) and compares what
 * the page shows with what the API answers to the same query (fetched from
 * node) and with the data set itself. Screenshots go to
 * $VEIL_BUILD/screenshots/dashboard.png and dashboard-mobile.png.
 * Prints one line per test and a closing "N passed, N failed"; exits
 * non-zero on any failure; gives up after 120 s in all. */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const BUILD = resolve(process.env.VEIL_BUILD || join(ROOT, 'build'));
const CHROMIUM = process.env.VEIL_CHROMIUM || '/usr/bin/chromium';
const TOTAL_TIMEOUT_MS = 120_000;
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
];
const SITE = 'shop.example';
const SMALL_SITE = 'blog.example';
const TOKEN = randomBytes(24).toString('hex');
/* A token granted only SMALL_SITE (api_tokens keeps its SHA-256). */
const SITE_TOKEN = randomBytes(24).toString('hex');

/* ---- a tiny runner ---- */

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

class AssertionError extends Error {}
function check(cond, message) {
  if (!cond) throw new AssertionError(message);
}
function checkEqual(actual, expected, message) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new AssertionError(`${message}\n  expected: ${e}\n  actual:   ${a}`);
}

/* ---- the data set (docs/KEYS.md), three UTC days ending today ---- */

const DAY_MS = 86_400_000;
const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
const NOW = Date.now();
const D0 = isoDay(NOW);
const D1 = isoDay(NOW - DAY_MS);
const D2 = isoDay(NOW - 2 * DAY_MS);
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
/* Visitor hashes: 16 hex digits, as the collector writes them. */
const vh = (n) => createHash('sha256').update(`visitor-${n}`).digest('hex').slice(0, 16);

const TOTALS = {
  [D2]: { pageviews: 20, events: 23, visits: 10, bounces: 4, visit_duration_s: 900, scroll_sum: 600, scroll_n: 10 },
  [D1]: { pageviews: 31, events: 35, visits: 14, bounces: 6, visit_duration_s: 1400, scroll_sum: 700, scroll_n: 12 },
  [D0]: { pageviews: 44, events: 50, visits: 18, bounces: 9, visit_duration_s: 2000, scroll_sum: 1000, scroll_n: 16 },
};
const DAY_VISITORS = { [D2]: range(1, 8), [D1]: range(5, 14), [D0]: range(10, 21) };

/* [dim, value, day, {pv, vis, ev}, visitors] */
const ROWS = [
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
  ['source', 'news.example', D1, { vis: 5 }, range(5, 8)],
  ['source', 'news.example', D0, { vis: 6 }, range(9, 12)],
  ['source', 'Direct / None', D2, { vis: 8 }, range(1, 6)],
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
  ['prop_key', 'plan', D1, { ev: 3 }, [6, 7]],
  ['prop_key', 'plan', D0, { ev: 4 }, range(10, 13)],
  ['prop:plan', 'pro', D0, { ev: 4 }, range(10, 13)],
  ['prop:plan', 'free', D1, { ev: 3 }, [6, 7]],
];
/* Realtime: visitor hash -> seconds ago (three within the last 5 minutes). */
const REALTIME = { [vh(19)]: 10, [vh(20)]: 60, [vh(21)]: 170, [vh(3)]: 1200 };

/* What the data set says, computed from the tables above. */
function expectedTotals(days) {
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

/* Breakdown rows of `dim` over `days` with k = 1, sorted like the API. */
function expectedRows(dim, days, column, metrics) {
  const byValue = new Map();
  for (const [d, value, day, counts, visitors] of ROWS) {
    if (d !== dim || !days.includes(day)) continue;
    const r = byValue.get(value) || { value, pv: 0, vis: 0, ev: 0, visitors: new Set() };
    r.pv += counts.pv || 0;
    r.vis += counts.vis || 0;
    r.ev += counts.ev || 0;
    for (const v of visitors) r.visitors.add(v);
    byValue.set(value, r);
  }
  const names = { pageviews: 'pv', visits: 'vis', events: 'ev' };
  return [...byValue.values()]
    .sort((a, b) => b.visitors.size - a.visitors.size || Buffer.compare(Buffer.from(a.value), Buffer.from(b.value)))
    .map((r) => {
      const row = { [column]: r.value };
      for (const m of metrics) row[m] = m === 'visitors' ? r.visitors.size : r[names[m]];
      return row;
    });
}

/* ---- a minimal Redis client (RESP2, one command at a time) ---- */

class Redis {
  static connect(path) {
    return new Promise((ok, fail) => {
      const sock = createConnection({ path });
      sock.once('connect', () => ok(new Redis(sock)));
      sock.once('error', fail);
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.waiting = [];
    sock.on('data', (chunk) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      for (;;) {
        const parsed = this.waiting.length ? parseReply(this.buf, 0) : null;
        if (!parsed) break;
        this.buf = this.buf.subarray(parsed.end);
        const w = this.waiting.shift();
        if (parsed.value instanceof Error) w.fail(parsed.value);
        else w.ok(parsed.value);
      }
    });
    sock.on('error', (err) => this.waiting.splice(0).forEach((w) => w.fail(err)));
  }

  command(...args) {
    let out = `*${args.length}\r\n`;
    for (const a of args) {
      const s = String(a);
      out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
    }
    return new Promise((ok, fail) => {
      this.waiting.push({ ok, fail });
      this.sock.write(out);
    });
  }

  close() {
    this.sock.end();
  }
}

function parseReply(buf, pos) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  if (type === '+') return { value: line, end: next };
  if (type === '-') return { value: new Error(line), end: next };
  if (type === ':') return { value: Number(line), end: next };
  if (type === '$') {
    const n = Number(line);
    if (n < 0) return { value: null, end: next };
    if (buf.length < next + n + 2) return null;
    return { value: buf.toString('utf8', next, next + n), end: next + n + 2 };
  }
  if (type === '*') {
    const n = Number(line);
    if (n < 0) return { value: null, end: next };
    const items = [];
    let at = next;
    for (let i = 0; i < n; i++) {
      const item = parseReply(buf, at);
      if (!item) return null;
      items.push(item.value);
      at = item.end;
    }
    return { value: items, end: at };
  }
  return { value: new Error(`bad reply type ${type}`), end: buf.length };
}

/* ---- the stack ---- */

async function waitUntil(what, fn, timeoutMs) {
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

function startProcess(name, cmd, args, logPath) {
  const fd = openSync(logPath, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  child.exitStatus = null;
  child.on('exit', (code, signal) => (child.exitStatus = signal || code));
  child.log = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');
  child.label = name;
  return child;
}

async function stopProcess(child) {
  if (!child || child.exitStatus !== null) return;
  const exited = new Promise((ok) => child.once('exit', ok));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

const stack = {
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
      this.client = await Redis.connect(sock);
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

async function writeDataSet(r) {
  const key = (site, day, tail) => `veil:{0}:d:${site}:${day}:${tail}`;
  await r.command('SADD', 'veil:{0}:sites', SITE, SMALL_SITE);
  for (const [day, totals] of Object.entries(TOTALS)) {
    for (const [field, n] of Object.entries(totals)) await r.command('HINCRBY', key(SITE, day, 'totals'), field, n);
    await r.command('PFADD', key(SITE, day, 'visitors'), ...DAY_VISITORS[day].map(vh));
  }
  for (const [dim, value, day, counts, visitors] of ROWS) {
    for (const [metric, n] of Object.entries(counts)) {
      if (n) await r.command('HINCRBY', key(SITE, day, `b:${dim}:${metric}`), value, n);
    }
    await r.command('PFADD', key(SITE, day, `u:${dim}:${value}`), ...visitors.map(vh));
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
async function apiGet(path, params, { token = TOKEN, csv = false } = {}) {
  const res = await fetch(`${stack.apiUrl}/api/v1/${path}?${new URLSearchParams(params)}`, {
    headers: { Authorization: `Bearer ${token}`, ...(csv ? { Accept: 'text/csv' } : {}) },
  });
  if (!res.ok) throw new Error(`API ${path} answered ${res.status}: ${await res.text()}`);
  return csv ? res.text() : res.json();
}

/* ---- the page ---- */

let ctx = null;
let requests = [];

/* A new tab that records console errors and uncaught exceptions. */
async function openPage({ width = 1280, height = 900 } = {}) {
  const page = await ctx.newPage();
  await page.setViewportSize({ width, height });
  page.consoleErrors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => page.consoleErrors.push(`uncaught: ${err.message}`));
  return page;
}

function checkNoConsoleErrors(page, allowed = []) {
  const errors = page.consoleErrors.filter((e) => !allowed.some((re) => re.test(e)));
  checkEqual(errors, [], 'console errors on the page');
}

async function signIn(page, token = TOKEN) {
  await page.goto(`${stack.apiUrl}/`);
  await page.waitForSelector('#login:not([hidden])');
  await page.fill('#token', token);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#controls:not([hidden])');
}

/* Wait until metrics, chart, realtime and every panel have answered. */
async function waitLoaded(page) {
  await page.waitForFunction(() => {
    const metrics = [...document.querySelectorAll('.metric-value')];
    return (
      metrics.length > 0 &&
      metrics.every((m) => m.dataset.value !== '') &&
      document.getElementById('chart').dataset.points !== '' &&
      document.getElementById('realtime').dataset.value !== '' &&
      !document.querySelector('.panel[data-state="loading"]')
    );
  });
}

async function shownMetrics(page) {
  return page.$$eval('.metric', (nodes) =>
    Object.fromEntries(
      nodes.map((n) => {
        const v = n.querySelector('.metric-value');
        return [n.dataset.metric, { value: Number(v.dataset.value), text: v.textContent }];
      })
    )
  );
}

async function shownRows(page, panel, column) {
  return page.$$eval(
    `#panel-${panel} tbody tr:not(.empty)`,
    (trs, col) =>
      trs.map((tr) => {
        const row = { [col]: tr.querySelector('td.value').dataset.value };
        for (const td of tr.querySelectorAll('td.num')) row[td.dataset.metric] = Number(td.dataset.value);
        return row;
      }),
    column
  );
}

async function clickTab(page, panel, label) {
  await page.click(`#panel-${panel} .tab >> text="${label}"`);
  /* "idle": the property tab before a key is typed. */
  await page.waitForSelector(`#panel-${panel}:is([data-state="ready"], [data-state="idle"])`);
}

async function setCustomRange(page, from, to) {
  await page.selectOption('#period', 'custom');
  await page.fill('#from', from);
  await page.fill('#to', to);
  await page.click('#apply-range');
  await waitLoaded(page);
}

const ALL_DAYS = [D2, D1, D0];
const CUSTOM = { period: 'custom', date: `${D2},${D0}` };
const TOP = 'visitors,pageviews,bounce_rate,visit_duration,scroll_depth';
let main = null; /* the signed-in desktop tab, shared by the tests in order */

/* ---- tests (in order; they share one tab) ---- */

test('the page loads from the API with no console error and asks for a token', async () => {
  const page = await openPage();
  await page.goto(`${stack.apiUrl}/`);
  await page.waitForSelector('#login:not([hidden])');
  check(await page.isHidden('#dashboard'), 'the dashboard shows before a token is given');
  await page.waitForTimeout(200);
  checkNoConsoleErrors(page);
  await page.close();
});

test('a wrong token is refused plainly (401) and the token form stays', async () => {
  const page = await openPage();
  await signIn(page, 'not-the-token').catch(() => {});
  await page.waitForSelector('#error:not([hidden])');
  const text = await page.textContent('#error');
  check(/401/.test(text) && /invalid API token/.test(text), `error box says: ${text}`);
  check(await page.isVisible('#login'), 'token form is not shown again after a 401');
  checkEqual(await page.evaluate(() => sessionStorage.length), 0, 'a refused token was stored');
  checkNoConsoleErrors(page, [/status of 401/]);
  await page.close();
});

test('sign in: the token is kept in sessionStorage only, never in a URL or a cookie', async () => {
  requests = [];
  main = await openPage();
  main.on('request', (req) => requests.push({ url: req.url(), auth: req.headers().authorization || '' }));
  await signIn(main);
  await waitLoaded(main);
  const storage = await main.evaluate(() => ({
    session: Object.fromEntries(Object.entries(sessionStorage)),
    local: localStorage.length,
    cookie: document.cookie,
  }));
  checkEqual(storage.session, { 'veil.token': TOKEN }, 'sessionStorage');
  checkEqual(storage.local, 0, 'localStorage entries');
  checkEqual(storage.cookie, '', 'document.cookie');
  checkEqual(await ctx.cookies(), [], 'cookies in the browser');
  check(requests.length > 5, 'the page made no API requests');
  for (const r of requests) {
    check(!r.url.includes(TOKEN), `token in a URL: ${r.url}`);
    check(r.url.startsWith(`${stack.apiUrl}/`), `request to another origin: ${r.url}`);
    if (r.url.includes('/api/v1/')) checkEqual(r.auth, `Bearer ${TOKEN}`, `Authorization of ${r.url}`);
  }
  check(!main.url().includes(TOKEN), 'token in the page URL');
  checkNoConsoleErrors(main);
});

test('the site picker lists /api/v1/sites; a site token sees only its site', async () => {
  const api = await apiGet('sites', {});
  const options = await main.$$eval('#site option', (os) => os.map((o) => o.value));
  checkEqual(options, api.sites.map((s) => s.domain), 'site options vs the API');
  checkEqual(options, [SMALL_SITE, SITE].sort(), 'site options vs the data set');
  await main.selectOption('#site', SITE);
  await waitLoaded(main);

  const page = await openPage();
  await signIn(page, SITE_TOKEN);
  await waitLoaded(page);
  checkEqual(await page.$$eval('#site option', (os) => os.map((o) => o.value)), [SMALL_SITE], 'site token options');
  const m = await shownMetrics(page);
  const api2 = await apiGet('stats/aggregate', { site_id: SMALL_SITE, period: '30d', metrics: TOP }, { token: SITE_TOKEN });
  checkEqual(m.pageviews.value, api2.results.pageviews.value, 'small site pageviews vs API');
  checkEqual(m.pageviews.value, 3, 'small site pageviews vs data set');
  checkNoConsoleErrors(page);
  await page.close();
});

test('top metrics equal the API and the data set (custom range)', async () => {
  await setCustomRange(main, D2, D0);
  const shown = await shownMetrics(main);
  const api = await apiGet('stats/aggregate', { site_id: SITE, ...CUSTOM, metrics: TOP });
  const want = expectedTotals(ALL_DAYS);
  for (const m of Object.keys(want)) {
    checkEqual(shown[m].value, api.results[m].value, `${m} shown vs API`);
    checkEqual(shown[m].value, want[m], `${m} shown vs data set`);
  }
  checkEqual(shown.visitors.text, '21', 'visitors text');
  checkEqual(shown.pageviews.text, '95', 'pageviews text');
  checkEqual(shown.bounce_rate.text, '45%', 'bounce rate text');
  checkEqual(shown.visit_duration.text, '1m 42s', 'visit duration text');
  checkEqual(shown.scroll_depth.text, '61%', 'scroll depth text');
  const note = await main.textContent('#visitors-note');
  check(note.includes(api.meta.visitors), `the API's visitors note is not shown: ${note}`);
  const range = await main.textContent('#range');
  check(range.includes('UTC'), `range line: ${range}`);
});

test('the time series shows visitors and pageviews per day, as the API says', async () => {
  const chart = await main.$eval('#chart', (c) => ({ ...c.dataset, canvas: !!c.querySelector('canvas') }));
  const api = await apiGet('stats/timeseries', { site_id: SITE, ...CUSTOM, metrics: 'visitors,pageviews' });
  check(chart.canvas, 'no uPlot canvas');
  checkEqual(chart.dates.split(','), api.results.map((r) => r.date), 'chart dates vs API');
  checkEqual(chart.visitors.split(',').map(Number), api.results.map((r) => r.visitors), 'chart visitors vs API');
  checkEqual(chart.pageviews.split(',').map(Number), api.results.map((r) => r.pageviews), 'chart pageviews vs API');
  checkEqual(chart.dates.split(','), ALL_DAYS, 'chart dates vs data set');
  checkEqual(chart.visitors.split(',').map(Number), ALL_DAYS.map((d) => DAY_VISITORS[d].length), 'chart visitors vs data set');
  checkEqual(chart.pageviews.split(',').map(Number), ALL_DAYS.map((d) => TOTALS[d].pageviews), 'chart pageviews vs data set');
});

test('breakdown tables equal the API and the data set (pages, sources, countries, events, props)', async () => {
  const cases = [
    ['pages', null, 'event:page', 'page', 'page', ['visitors', 'pageviews']],
    ['pages', 'Entry pages', 'visit:entry_page', 'entry_page', 'entry_page', ['visitors', 'visits']],
    ['sources', null, 'visit:source', 'source', 'source', ['visitors', 'visits']],
    ['sources', 'UTM campaign', 'visit:utm_campaign', 'utm_campaign', 'utm_campaign', ['visitors', 'visits']],
    ['locations', null, 'visit:country', 'country', 'country', ['visitors', 'visits']],
    ['locations', 'Cities', 'visit:city', 'city', 'city', ['visitors', 'visits']],
    ['devices', 'OS', 'visit:os', 'os', 'os', ['visitors', 'visits']],
    ['events', null, 'event:name', 'name', 'name', ['visitors', 'events']],
  ];
  for (const [panel, tab, property, column, dim, metrics] of cases) {
    if (tab) await clickTab(main, panel, tab);
    const shown = await shownRows(main, panel, column);
    const api = await apiGet('stats/breakdown', { site_id: SITE, ...CUSTOM, property, metrics: metrics.join(','), limit: 100, page: 1 });
    checkEqual(shown, api.results, `${property} rows shown vs API`);
    checkEqual(shown, expectedRows(dim, ALL_DAYS, column, metrics), `${property} rows shown vs data set`);
    if (property === 'visit:country') {
      const germany = await main.textContent('#panel-locations tbody tr:first-child td.value');
      check(/Germany/.test(germany), `country name not shown: ${germany}`);
    }
  }

  await clickTab(main, 'events', 'Event properties');
  await main.fill('#panel-events input[name=prop-key]', 'plan');
  await main.click('#panel-events .prop-form button');
  await main.waitForSelector('#panel-events[data-state="ready"]');
  const props = await shownRows(main, 'events', 'plan');
  const api = await apiGet('stats/breakdown', { site_id: SITE, ...CUSTOM, property: 'event:props:plan', metrics: 'visitors,events', limit: 100, page: 1 });
  checkEqual(props, api.results, 'event:props:plan rows shown vs API');
  checkEqual(props, expectedRows('prop:plan', ALL_DAYS, 'plan', ['visitors', 'events']), 'props vs data set');
  checkEqual(await main.$$eval('.panel-notes .kanon', (n) => n.length), 0, 'k-anonymity note with k = 1');
  checkNoConsoleErrors(main);
  mkdirSync(join(BUILD, 'screenshots'), { recursive: true });
  await main.screenshot({ path: join(BUILD, 'screenshots', 'dashboard.png'), fullPage: true });
});

test('realtime visitors: the last 5 minutes, as the API says', async () => {
  const shown = Number(await main.getAttribute('#realtime', 'data-value'));
  const api = await apiGet('stats/realtime/visitors', { site_id: SITE });
  checkEqual(shown, api, 'realtime shown vs API');
  checkEqual(shown, 3, 'realtime vs data set');
});

test('the period picker: last 7 days and today equal the API', async () => {
  for (const [period, days] of [['7d', ALL_DAYS], ['day', [D0]]]) {
    await main.selectOption('#period', period);
    await waitLoaded(main);
    const shown = await shownMetrics(main);
    const api = await apiGet('stats/aggregate', { site_id: SITE, period, metrics: TOP });
    const want = expectedTotals(days);
    for (const m of Object.keys(want)) {
      checkEqual(shown[m].value, api.results[m].value, `${period} ${m} shown vs API`);
      checkEqual(shown[m].value, want[m], `${period} ${m} shown vs data set`);
    }
    checkEqual(Number(await main.getAttribute('#chart', 'data-points')), period === 'day' ? 1 : 7, `${period} chart points`);
  }
  check(/period=day/.test(main.url()), `the view is not kept in the URL fragment: ${main.url()}`);
  await main.selectOption('#period', '30d');
  await waitLoaded(main);
});

test('CSV download: fetched with the header, saved as the API answers it', async () => {
  await setCustomRange(main, D2, D0);
  await clickTab(main, 'pages', 'Top pages');
  requests = [];
  const [download] = await Promise.all([main.waitForEvent('download'), main.click('#panel-pages .csv')]);
  const file = await download.path();
  const csv = readFileSync(file, 'utf8');
  const api = await apiGet('stats/breakdown', { site_id: SITE, ...CUSTOM, property: 'event:page', metrics: 'visitors,pageviews', limit: 1000 }, { csv: true });
  checkEqual(csv, api, 'downloaded CSV vs API');
  check(csv.startsWith('page,visitors,pageviews\r\n/,12,40\r\n'), `CSV head: ${JSON.stringify(csv.slice(0, 60))}`);
  check(/^veil_shop\.example_event-page_.*\.csv$/.test(download.suggestedFilename()), `file name ${download.suggestedFilename()}`);
  const csvReq = requests.find((r) => r.url.includes('format=csv'));
  check(csvReq && csvReq.auth === `Bearer ${TOKEN}`, 'the CSV request did not carry the token header');
  check(requests.every((r) => !r.url.includes(TOKEN)), 'token in a URL');
  checkNoConsoleErrors(main);
});

test('an API error (400) is shown plainly', async () => {
  await main.selectOption('#period', 'custom');
  await main.fill('#from', '2001-01-01');
  await main.fill('#to', D0);
  await main.click('#apply-range');
  await main.waitForSelector('#error:not([hidden])');
  const text = await main.textContent('#error');
  check(/400/.test(text) && /date|period/.test(text), `error box says: ${text}`);
  await setCustomRange(main, D2, D0);
  check(await main.isHidden('#error'), 'the error stays after a good query');
  /* Chromium logs each refused request; those are expected here. */
  main.consoleErrors = main.consoleErrors.filter((e) => !/status of 400/.test(e));
  checkNoConsoleErrors(main);
});

test('phone layout (390 px): no sideways scrolling; screenshot', async () => {
  const page = await openPage({ width: 390, height: 844 });
  /* A new tab has its own sessionStorage: sign in again; the view comes
   * from the URL fragment. */
  await page.goto(main.url());
  await page.waitForSelector('#login:not([hidden])');
  await page.fill('#token', TOKEN);
  await page.click('#login-form button[type=submit]');
  await waitLoaded(page);
  const widths = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth,
    view: window.innerWidth,
    wide: [...document.querySelectorAll('main *, header *')]
      .filter((n) => n.getBoundingClientRect().right > window.innerWidth + 1 && !n.closest('.table-wrap'))
      .map((n) => n.tagName + (n.id ? `#${n.id}` : '') + (n.className && typeof n.className === 'string' ? `.${n.className}` : ''))
      .slice(0, 5),
  }));
  check(widths.doc <= widths.view, `page is ${widths.doc} px wide in a ${widths.view} px viewport: ${widths.wide}`);
  checkEqual(widths.wide, [], 'elements past the right edge');
  const chartWidth = await page.$eval('#chart canvas', (c) => c.getBoundingClientRect().width);
  check(chartWidth > 250 && chartWidth <= 390, `chart is ${chartWidth} px wide`);
  const shown = await shownMetrics(page);
  checkEqual(shown.pageviews.value, expectedTotals(ALL_DAYS).pageviews, 'pageviews on the phone (range from the URL)');
  checkNoConsoleErrors(page);
  await page.screenshot({ path: join(BUILD, 'screenshots', 'dashboard-mobile.png'), fullPage: true });
  await page.close();
});

test('k-anonymity (k = 5) and DP (ε = 1): notes shown, numbers equal the API', async () => {
  await stack.startAggregator(['--k_anonymity=5', '--dp_epsilon=1']);
  const page = await openPage();
  await signIn(page);
  await page.selectOption('#site', SITE);
  await setCustomRange(page, D2, D0);
  await clickTab(page, 'events', 'Events');

  const dp = await page.getAttribute('#privacy .dp', 'data-epsilon');
  checkEqual(dp, '1', 'DP note with ε from meta');
  const shown = await shownMetrics(page);
  const agg = await apiGet('stats/aggregate', { site_id: SITE, ...CUSTOM, metrics: TOP });
  for (const m of Object.keys(shown)) checkEqual(shown[m].value, agg.results[m].value, `noised ${m} shown vs API`);

  const cases = [
    /* panel, property, column, metrics, folded, suppressed, kept values */
    ['pages', 'event:page', 'page', ['visitors', 'pageviews'], 3, false, ['/', '/pricing', '(other)']],
    ['sources', 'visit:source', 'source', ['visitors', 'visits'], 1, true, ['news.example', 'Direct / None']],
    ['locations', 'visit:country', 'country', ['visitors', 'visits'], 2, true, ['DE', 'FR']],
    ['events', 'event:name', 'name', ['visitors', 'events'], 1, true, ['pageview', 'signup']],
  ];
  for (const [panel, property, column, metrics, folded, suppressed, values] of cases) {
    const api = await apiGet('stats/breakdown', { site_id: SITE, ...CUSTOM, property, metrics: metrics.join(','), limit: 100, page: 1 });
    const rows = await shownRows(page, panel, column);
    checkEqual(rows, api.results, `${property} rows shown vs API (k = 5, DP)`);
    checkEqual(rows.map((r) => r[column]).sort(), [...values].sort(), `${property} values kept`);
    checkEqual(api.meta.folded_rows, folded, `${property} folded rows in meta`);
    checkEqual(api.meta.other_suppressed, suppressed, `${property} other_suppressed in meta`);
    const note = await page.$(`#panel-${panel} .note.kanon`);
    check(note, `${panel}: no k-anonymity note`);
    checkEqual(await note.getAttribute('data-folded'), String(api.meta.folded_rows), `${panel} note count vs meta`);
    const text = await note.textContent();
    check(text.includes(`${folded} value`) && text.includes('k = 5'), `${panel} note: ${text}`);
    check(suppressed ? /hidden/.test(text) : /folded into "\(other\)"/.test(text), `${panel} note: ${text}`);
  }
  const other = await page.$eval('#panel-pages tbody tr.other td.value', (td) => td.dataset.value);
  checkEqual(other, '(other)', '(other) row is marked');
  checkNoConsoleErrors(page);
  await page.screenshot({ path: join(BUILD, 'screenshots', 'dashboard-kanon.png'), fullPage: true });
  await page.close();
});

test('forget token: sessionStorage cleared, back to the token form', async () => {
  /* The API now listens elsewhere (restarted): sign in again there. */
  await main.goto(`${stack.apiUrl}/`);
  await signIn(main);
  await main.click('#sign-out');
  await main.waitForSelector('#login:not([hidden])');
  checkEqual(await main.evaluate(() => sessionStorage.length), 0, 'sessionStorage after forgetting');
  main.consoleErrors = main.consoleErrors.filter((e) => !/ERR_CONNECTION_REFUSED|Failed to fetch/.test(e));
  checkNoConsoleErrors(main);
});

/* ---- main ---- */

async function run() {
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
    ctx = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
      locale: 'en-US',
      /* Not UTC, so that a local-time slip in the page would show. */
      timezoneId: 'America/Los_Angeles',
      acceptDownloads: true,
    });
    ctx.setDefaultTimeout(10_000);
    for (const page of ctx.pages()) await page.close();

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
    if (ctx) await ctx.close().catch(() => {});
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    await stack.stop().catch((err) => console.log(`teardown: ${err.message}`));
  }
  clearTimeout(watchdog);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

/* --serve: start the stack with the data set and wait (for a look by
 * hand); Ctrl-C stops it. */
async function serve() {
  await stack.start();
  await stack.startAggregator(process.argv.slice(3));
  console.log(`dashboard: ${stack.apiUrl}/  token: ${TOKEN}  (site token for ${SMALL_SITE}: ${SITE_TOKEN})`);
  const stop = () => stack.stop().finally(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (process.argv[2] === '--serve') serve();
else run();
