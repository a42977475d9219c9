#!/usr/bin/env node
/* run.mjs - browser tests: the real veil.js in headless Chromium against the
 * real collector and a real redis-server (docs/TRACKER.md, "Tests").
 *
 *   node tests/browser/run.mjs          (VEIL_BUILD=build by default)
 *
 * Starts its own stack in a fresh temp dir: redis-server on a unix socket,
 * $VEIL_BUILD/veil-collector on a free loopback port serving the freshly
 * built tracker at /veil.js, and a static HTTP server on another free port
 * serving tests/browser/pages. Each test drives Chromium (playwright-core,
 * /usr/bin/chromium, a fresh profile) and then reads the Redis stream the
 * collector writes. Prints one line per test and a closing
 * "N passed, N failed"; exits non-zero on any failure; gives up after
 * 120 s in all. Never touches a fixed port or a shared directory. */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.mjs';
import { RedisClient } from './resp.mjs';
import { streamEntries, streamEvents, streamMarks } from './stream.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const BUILD = resolve(process.env.VEIL_BUILD || join(ROOT, 'build'));
const CHROMIUM = process.env.VEIL_CHROMIUM || '/usr/bin/chromium';
const TOTAL_TIMEOUT_MS = 120_000;
const SITE = 'test.example';
/* Headless Chromium says "HeadlessChrome", which the collector's bot filter
 * drops (as it should): the tests present a normal desktop Chrome, both as
 * the context's userAgent and as --user-agent. The flag matters: beacons
 * sent while a page unloads leave after Playwright's per-page override is
 * gone and would carry the headless User-Agent. */
const USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
  'Chrome/140.0.0.0 Safari/537.36';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
  `--user-agent=${USER_AGENT}`,
];

/* ---- a tiny runner ---- */

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

class AssertionError extends Error {}
function check(cond, message) {
  if (!cond) throw new AssertionError(message);
}
/* Deep equality; object key order does not matter, array order does. */
function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k])]));
  return value;
}
function checkEqual(actual, expected, message) {
  const a = JSON.stringify(canonical(actual), null, 1);
  const e = JSON.stringify(canonical(expected), null, 1);
  if (a !== e) throw new AssertionError(`${message}\n  expected: ${e}\n  actual:   ${a}`);
}

/* ---- the stack: redis-server, veil-collector, static pages ---- */

async function waitUntil(what, fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      if (await fn()) return;
    } catch (err) {
      lastError = err;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${lastError.message}` : ''}`);
}

const SANITIZER_REPORT = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/;
const sanitizerReports = []; /* "<name>: <log>" of every daemon that printed one */

class Proc {
  constructor(name, file, args, logPath) {
    this.name = name;
    this.logPath = logPath;
    const fd = openSync(logPath, 'a');
    this.child = spawn(file, args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.exited = new Promise((res) => {
      this.child.once('exit', (code, signal) => {
        this.exitCode = code ?? signal;
        res();
      });
      this.child.once('error', (err) => {
        this.exitCode = err.message;
        res();
      });
    });
  }

  alive() {
    return this.exitCode === undefined;
  }

  log() {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /* SIGTERM, up to 5 s, then SIGKILL; then look for sanitizer reports. */
  async stop() {
    if (this.alive()) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(timer);
    }
    const log = this.log();
    if (SANITIZER_REPORT.test(log)) sanitizerReports.push(`${this.name}:\n${log}`);
    return this.exitCode;
  }

  kill() {
    if (this.alive()) this.child.kill('SIGKILL');
  }
}

class Stack {
  async start() {
    this.dir = mkdtempSync(join(tmpdir(), 'veil-browser-'));

    /* The tracker, built the way make builds it. */
    const built = spawnSync(process.execPath, [join(ROOT, 'tracker', 'build.mjs'), join(this.dir, 'tracker')], {
      encoding: 'utf8',
    });
    if (built.status !== 0) throw new Error(`tracker build failed:\n${built.stdout}${built.stderr}`);
    this.trackerPath = join(this.dir, 'tracker', 'veil.js');
    this.trackerSize = built.stdout.trim();

    const collectorBin = join(BUILD, 'veil-collector');
    if (!existsSync(collectorBin)) throw new Error(`${collectorBin} is missing: run make first`);

    this.redisSocket = join(this.dir, 'redis.sock');
    this.redis = new Proc(
      'redis-server',
      'redis-server',
      ['--port', '0', '--unixsocket', this.redisSocket, '--unixsocketperm', '700', '--dir', this.dir,
        '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
      join(this.dir, 'redis.log')
    );
    await waitUntil('redis-server', async () => {
      if (!this.redis.alive()) throw new Error(`redis-server exited:\n${this.redis.log()}`);
      if (!existsSync(this.redisSocket)) return false;
      this.db = await RedisClient.connect(this.redisSocket);
      return (await this.db.command('PING')) === 'PONG';
    }, 10_000);

    const collectorPort = await freePort();
    const adminPort = await freePort();
    this.collectorUrl = `http://127.0.0.1:${collectorPort}`;
    this.adminUrl = `http://127.0.0.1:${adminPort}`; /* /metrics (admin_listen) */
    this.collector = new Proc(
      'veil-collector',
      collectorBin,
      [`--listen=127.0.0.1:${collectorPort}`, `--admin_listen=127.0.0.1:${adminPort}`,
        `--redis=unix:${this.redisSocket}`, `--sites=${SITE}`,
        `--tracker_js=${this.trackerPath}`, '--threads=1', `--spool_dir=${join(this.dir, 'spool')}`],
      join(this.dir, 'collector.log')
    );
    await waitUntil('veil-collector /healthz', async () => {
      if (!this.collector.alive()) throw new Error(`veil-collector exited:\n${this.collector.log()}`);
      const res = await fetch(`${this.collectorUrl}/healthz`);
      return res.status === 200 && (await res.text()).includes('"connected"');
    }, 10_000);

    this.pages = createServer((req, res) => this.servePage(req, res));
    await new Promise((res) => this.pages.listen(0, '127.0.0.1', res));
    this.pagesPort = this.pages.address().port;
    this.siteUrl = `http://127.0.0.1:${this.pagesPort}`;
    /* Same server under another host name: a different site for the browser. */
    this.outboundUrl = `http://localhost:${this.pagesPort}`;
  }

  /* /out: another site; /files/*.pdf: a download; /hash: the data-hash
   * page; /no-localhost: without data-include-localhost; /ignore-dnt: with
   * data-ignore-dnt; anything else: the SPA shell (index.html). */
  servePage(req, res) {
    const path = new URL(req.url, 'http://x').pathname;
    const html = (file, attrs = 'data-include-localhost') => {
      const body = readFileSync(join(HERE, 'pages', file), 'utf8')
        .replaceAll('__COLLECTOR__', this.collectorUrl)
        .replaceAll('__OUTBOUND__', this.outboundUrl)
        .replaceAll('__TRACKER_ATTRS__', attrs);
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(body);
    };
    if (path === '/favicon.ico') {
      res.writeHead(404);
      res.end();
    } else if (path === '/out') html('out.html');
    else if (path.startsWith('/files/')) {
      res.writeHead(200, {
        'Content-Type': 'application/pdf',
        'Content-Disposition': 'attachment; filename="report.pdf"',
      });
      res.end('%PDF-1.4\n%%EOF\n');
    } else if (path === '/hash') html('hash.html');
    else if (path === '/no-localhost') html('index.html', '');
    else if (path === '/ignore-dnt') html('index.html', 'data-include-localhost data-ignore-dnt');
    else html('index.html');
  }

  /* Events after `after` (marks from lastId; all when omitted) as
   * {id, f: {field: value}}, from every shard stream (stream.mjs). */
  async events(after = {}) {
    return streamEvents(this.db, after);
  }

  /* The collector's counters (veil_collector_*_total without labels). */
  async counters() {
    const text = await (await fetch(`${this.adminUrl}/metrics`)).text();
    const out = {};
    for (const m of text.matchAll(/^veil_collector_(\w+)_total (\d+)$/gm)) out[m[1]] = Number(m[2]);
    return out;
  }

  /* Where the shard streams end now (stream.mjs streamMarks). */
  async lastId() {
    return streamMarks(this.db);
  }

  /* Wait until at least `count` entries follow `after`, then a little
   * longer so that unexpected extra entries show up too. */
  async waitEvents(after, count, timeoutMs = 10_000) {
    await waitUntil(`${count} events in the shard streams`, async () => (await this.events(after)).length >= count,
      timeoutMs).catch(() => {});
    await sleep(500);
    return this.events(after);
  }

  async stop() {
    if (this.pages) await new Promise((res) => this.pages.close(res));
    if (this.collector) {
      const status = await this.collector.stop();
      if (status !== 0 && status !== null) console.error(`veil-collector exited with ${status}`);
    }
    if (this.db) this.db.close();
    if (this.redis) await this.redis.stop();
    if (this.dir && !process.env.VEIL_KEEP_TMP) rmSync(this.dir, { recursive: true, force: true });
  }

  /* Last resort (the watchdog): no waiting. */
  kill() {
    for (const proc of [this.collector, this.aggregator, this.redis]) if (proc) proc.kill();
    if (this.dir && !process.env.VEIL_KEEP_TMP) rmSync(this.dir, { recursive: true, force: true });
  }
}

/* ---- browser helpers ---- */

/* Stream entry in a comparable form: "name path {props}". */
function describe(entry) {
  const props = {};
  for (const k of Object.keys(entry.f).sort()) if (k.startsWith('p:')) props[k.slice(2)] = entry.f[k];
  return `${entry.f.n} ${entry.f.path} ${JSON.stringify(props)}`;
}

/* Counters that moved between two snapshots, request count aside. */
function moved(before, after) {
  const out = {};
  for (const [k, v] of Object.entries(after))
    if (k !== 'requests' && v !== (before[k] ?? 0)) out[k] = v - (before[k] ?? 0);
  return out;
}

async function waitForTracker(page) {
  /* The real veil() has replaced the queue snippet. */
  await page.waitForFunction(() => typeof window.veil === 'function' && !('q' in window.veil));
}

/* The whole user journey on the SPA shell at `path`: load, two pushState
 * navigations (and a replaceState that changes nothing), an outbound click
 * (new tab), a download, a custom event, a tagged button, a form, a scroll
 * to the bottom, then leave the page and close it. */
async function journey(ctx, stack, path, { init, screenshot } = {}) {
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  if (init) await page.addInitScript(init);
  await page.goto(stack.siteUrl + path);
  await waitForTracker(page);
  await sleep(300);
  await page.evaluate(() => history.pushState({}, '', '/a'));
  await sleep(300);
  await page.evaluate(() => history.pushState({}, '', '/b'));
  await page.evaluate(() => history.replaceState({ same: 1 }, ''));
  await sleep(300);
  const [popup] = await Promise.all([ctx.waitForEvent('page'), page.click('#outbound')]);
  await popup.close();
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  await download.cancel().catch(() => {});
  await page.evaluate(() => window.veil('Signup', { props: { plan: 'pro', seats: 3, nested: { x: 1 } } }));
  await page.click('#cta');
  await page.locator('#email').pressSequentially('hunter2@example.org');
  await page.locator('#fullname').fill('Secret Name');
  await page.click('#subscribe');
  if (screenshot) {
    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot });
  }
  await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  await sleep(300);
  /* Leave: visibilitychange (hidden) and pagehide send the engagement. */
  await page.goto(`${stack.outboundUrl}/out`);
  await page.close();
  check(errors.length === 0, `page errors: ${errors.join('; ')}`);
}

/* ---- the tests ---- */

const stack = new Stack();
let ctx;
const beacons = []; /* {url, body, status} of every request to /api/event */
let journeyEvents = []; /* the stream entries of the journey test */

test('the collector serves the built veil.js (budget, headers, ETag)', async () => {
  const built = readFileSync(stack.trackerPath, 'utf8');
  const gz = (await import('node:zlib')).gzipSync(built, { level: 9 }).length;
  check(gz <= 1536, `veil.js is ${gz} bytes gzipped, over 1536`);
  const res = await fetch(`${stack.collectorUrl}/veil.js`);
  check(res.status === 200, `GET /veil.js: ${res.status}`);
  check(/^text\/javascript/.test(res.headers.get('content-type') || ''),
    `content-type ${res.headers.get('content-type')}`);
  check(/max-age=\d+/.test(res.headers.get('cache-control') || ''),
    `cache-control ${res.headers.get('cache-control')}`);
  const etag = res.headers.get('etag');
  check(etag, 'no ETag');
  check((await res.text()) === built, 'served script differs from the build');
  const again = await fetch(`${stack.collectorUrl}/veil.js`, { headers: { 'If-None-Match': etag } });
  check(again.status === 304, `conditional GET /veil.js: ${again.status}`);
});

test('page views, SPA navigation, clicks, custom events, forms, scroll depth, engaged time', async () => {
  const after = await stack.lastId();
  const sentBefore = beacons.length;
  const countersBefore = await stack.counters();
  await journey(ctx, stack, '/', { screenshot: join(BUILD, 'screenshots', 'tracker.png') });
  const events = await stack.waitEvents(after, 13);
  journeyEvents = events;
  const site = stack.siteUrl;
  const expected = [
    'pageview / {}',
    'Queued Event / {"early":"yes"}',
    'engagement / {}',
    'pageview /a {}',
    'engagement /a {}',
    'pageview /b {}',
    `Outbound Link: Click /b {"url":"${stack.outboundUrl}/out"}`,
    `File Download /b {"url":"${site}/files/report.pdf"}`,
    'Signup /b {"plan":"pro","seats":"3"}',
    'CTA Click /b {"position":"hero","variant":"b"}',
    'Form: Start /b {"form":"newsletter"}',
    'Form: Submit /b {"form":"newsletter"}',
    'engagement /b {}',
  ];
  checkEqual(events.map(describe).sort(), [...expected].sort(), 'recorded events');

  for (const e of events) {
    check(e.f.site === SITE, `site ${e.f.site}`);
    check(e.f.br === 'Chrome', `browser family ${e.f.br} (User-Agent override)`);
    const text = JSON.stringify(e.f);
    for (const secret of ['secret', 'frag', 'hunter2', 'Secret Name', 'token'])
      check(!text.includes(secret), `"${secret}" reached the stream: ${text}`);
  }
  const engagement = Object.fromEntries(events.filter((e) => e.f.n === 'engagement').map((e) => [e.f.path, e.f]));
  for (const path of ['/', '/a', '/b'])
    check(Number(engagement[path].em) > 0, `engaged ms on ${path}: ${engagement[path].em}`);
  check(Number(engagement['/b'].sd) >= 90, `scroll depth on /b: ${engagement['/b'].sd}`);
  for (const path of ['/', '/a'])
    check(Number(engagement[path].sd) > 0 && Number(engagement[path].sd) < 90,
      `scroll depth on ${path} (not scrolled): ${engagement[path].sd}`);

  /* One request per event, each accepted: nothing dropped or rejected. */
  checkEqual(moved(countersBefore, await stack.counters()), { events_accepted: 13, redis_written: 13 },
    'collector counters');
  /* Every body Playwright saw (it misses those sent while a page unloads)
   * is JSON with the documented fields and nothing else. */
  const sent = beacons.slice(sentBefore);
  check(sent.length >= 10, `only ${sent.length} requests to /api/event seen`);
  await waitUntil('beacon responses', () => sent.every((b) => b.status !== undefined), 5000).catch(() => {});
  for (const b of sent) {
    check(b.status === 202, `POST /api/event answered ${b.status}`);
    const body = JSON.parse(b.body);
    for (const key of Object.keys(body))
      check(['n', 'u', 'd', 'r', 'w', 'h', 'p', 'sd', 'e'].includes(key), `unexpected field ${key}`);
    check(body.d === SITE && typeof body.w === 'number', `body ${b.body}`);
  }
});

/* Runs right after the journey, while the stream holds exactly its events;
 * the aggregator deletes what it rolled up, so it is stopped again before
 * the next test reads the stream. */
test('the aggregator and the stats API count exactly the journey', async () => {
  const bin = join(BUILD, 'veil-aggregator');
  check(existsSync(bin), `${bin} is missing: run make first`);
  check(journeyEvents.length === 13, 'the journey test did not record its events');
  const port = await freePort();
  const token = randomBytes(16).toString('hex');
  const aggregator = (stack.aggregator = new Proc('veil-aggregator', bin,
    [`--redis=unix:${stack.redisSocket}`, `--api_listen=127.0.0.1:${port}`, `--api_token=${token}`,
      '--k_anonymity=1', '--block_ms=50', `--dashboard_dir=${join(ROOT, 'dashboard')}`],
    join(stack.dir, 'aggregator.log')));
  const api = async (endpoint, params) => {
    const query = new URLSearchParams({ site_id: SITE, period: '7d', ...params });
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/stats/${endpoint}?${query}`,
      { headers: { Authorization: `Bearer ${token}` } });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`GET ${endpoint}: ${res.status} ${body}`);
    return JSON.parse(body);
  };
  /* Rows of a breakdown as {value: {metric: n}}. */
  const breakdown = async (property, metrics) => {
    const key = property.split(':').pop();
    const rows = (await api('breakdown', { property, metrics })).results;
    return Object.fromEntries(rows.map((r) => [r[key], Object.fromEntries(metrics.split(',').map((m) => [m, r[m]]))]));
  };
  try {
    await waitUntil('veil-aggregator /healthz', async () => {
      if (!aggregator.alive()) throw new Error(`veil-aggregator exited:\n${aggregator.log()}`);
      return (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200;
    }, 10_000);
    /* Rolled up when the stream is empty (entries are deleted on commit). */
    await waitUntil('the stream rolled up', async () => (await streamEntries(stack.db)) === 0, 10_000);

    const scroll = journeyEvents.filter((e) => e.f.sd !== undefined).map((e) => Number(e.f.sd));
    const aggregate = (await api('aggregate', { metrics: 'visitors,visits,pageviews,events,bounce_rate,scroll_depth' })).results;
    checkEqual(Object.fromEntries(Object.entries(aggregate).map(([k, v]) => [k, v.value])), {
      visitors: 1, visits: 1, pageviews: 3, events: 10, bounce_rate: 0,
      scroll_depth: Math.round(scroll.reduce((a, b) => a + b, 0) / scroll.length),
    }, 'aggregate');
    checkEqual(await breakdown('event:page', 'pageviews,events'), {
      '/': { pageviews: 1, events: 2 }, '/a': { pageviews: 1, events: 1 }, '/b': { pageviews: 1, events: 7 },
    }, 'breakdown by page');
    checkEqual(await breakdown('event:name', 'events'), {
      pageview: { events: 3 }, 'CTA Click': { events: 1 }, 'File Download': { events: 1 },
      'Form: Start': { events: 1 }, 'Form: Submit': { events: 1 }, 'Outbound Link: Click': { events: 1 },
      'Queued Event': { events: 1 }, Signup: { events: 1 },
    }, 'breakdown by event name');
    checkEqual(await breakdown('event:props:url', 'events'), {
      [`${stack.outboundUrl}/out`]: { events: 1 }, [`${stack.siteUrl}/files/report.pdf`]: { events: 1 },
    }, 'breakdown by prop url');
    checkEqual(await breakdown('event:props:form', 'events'), { newsletter: { events: 2 } }, 'breakdown by prop form');
    checkEqual(await breakdown('visit:browser', 'visitors,visits,pageviews'),
      { Chrome: { visitors: 1, visits: 1, pageviews: 3 } }, 'breakdown by browser');
  } finally {
    const status = await aggregator.stop();
    stack.aggregator = null;
    if (status !== 0) console.log(`veil-aggregator exited with ${status}:\n${aggregator.log()}`);
  }
});

test('hash routing counts the fragment (data-hash)', async () => {
  const after = await stack.lastId();
  const page = await ctx.newPage();
  await page.goto(`${stack.siteUrl}/hash#/start`);
  await waitForTracker(page);
  await sleep(200);
  await page.evaluate(() => (location.hash = '#/settings?tab=2'));
  await sleep(200);
  await page.evaluate(() => history.replaceState(null, '', location.href));
  await sleep(200);
  await page.goto(`${stack.outboundUrl}/out`);
  await page.close();
  const events = await stack.waitEvents(after, 4);
  checkEqual(events.filter((e) => e.f.n === 'pageview').map((e) => e.f.path),
    ['/hash#/start', '/hash#/settings'], 'page views in hash mode');
  for (const e of events)
    check(['/hash#/start', '/hash#/settings'].includes(e.f.path) && ['pageview', 'engagement'].includes(e.f.n),
      `unexpected event ${describe(e)}`);
});

/* Nothing may be sent at all: no request to /api/event reaches the
 * collector (its counters stay still), none is seen leaving the browser,
 * and the stream does not grow. */
async function nothingRecorded(path, init) {
  const before = await stack.events();
  const sentBefore = beacons.length;
  const countersBefore = await stack.counters();
  await journey(ctx, stack, path, { init });
  await sleep(1000);
  checkEqual(moved(countersBefore, await stack.counters()), {}, 'collector counters');
  checkEqual(beacons.length - sentBefore, 0, 'requests to /api/event seen');
  checkEqual((await stack.events()).length, before.length, 'stream entries');
}

const dntOn = () =>
  Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1', configurable: true });
const gpcOn = () =>
  Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true, configurable: true });

test('Do Not Track (navigator.doNotTrack = "1"): nothing is sent', async () => {
  await nothingRecorded('/', dntOn);
});

test('Global Privacy Control (navigator.globalPrivacyControl): nothing is sent', async () => {
  await nothingRecorded('/', gpcOn);
});

test('localhost pages are ignored without data-include-localhost', async () => {
  await nothingRecorded('/no-localhost');
});

test('data-ignore-dnt: the site records despite DNT', async () => {
  const after = await stack.lastId();
  const page = await ctx.newPage();
  await page.addInitScript(dntOn);
  await page.goto(`${stack.siteUrl}/ignore-dnt`);
  await waitForTracker(page);
  check(await page.evaluate(() => navigator.doNotTrack === '1'), 'DNT override not applied');
  await page.goto(`${stack.outboundUrl}/out`);
  await page.close();
  const events = await stack.waitEvents(after, 2);
  checkEqual(events.filter((e) => e.f.n !== 'engagement').map(describe).sort(),
    ['Queued Event /ignore-dnt {"early":"yes"}', 'pageview /ignore-dnt {}'], 'recorded events');
});

test('opt-out flag localStorage.veil_ignore = "true": nothing is sent', async () => {
  await nothingRecorded('/', () => localStorage.setItem('veil_ignore', 'true'));
  /* Clear the flag again (out.html carries no tracker). */
  const page = await ctx.newPage();
  await page.goto(`${stack.siteUrl}/out`);
  await page.evaluate(() => localStorage.removeItem('veil_ignore'));
  await page.close();
});

/* ---- main ---- */

async function main() {
  let passed = 0;
  let failed = 0;
  let userDataDir;
  const watchdog = setTimeout(() => {
    stack.kill();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    console.log(`browser tests: gave up after ${TOTAL_TIMEOUT_MS / 1000} s`);
    console.log(`${passed} passed, ${tests.length - passed} failed`);
    process.exit(1);
  }, TOTAL_TIMEOUT_MS);

  try {
    const { chromium } = await import('playwright-core').catch(() => {
      throw new Error('playwright-core is missing: run npm ci');
    });
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
    await stack.start();
    console.log(`stack: collector ${stack.collectorUrl}, pages ${stack.siteUrl}; ${stack.trackerSize}`);
    userDataDir = mkdtempSync(join(tmpdir(), 'veil-chromium-'));
    ctx = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      userAgent: USER_AGENT,
      viewport: { width: 1280, height: 720 },
      acceptDownloads: true,
    });
    ctx.setDefaultTimeout(10_000);
    const eventUrl = `${stack.collectorUrl}/api/event`;
    ctx.on('request', (req) => {
      if (!req.url().startsWith(eventUrl)) return;
      const beacon = { url: req.url(), body: req.postData() };
      beacons.push(beacon);
      if (process.env.VEIL_DEBUG) console.log(`beacon: ${beacon.body}`);
      req.response().then(
        (res) => (beacon.status = res ? res.status() : 'no response'),
        () => (beacon.status = 'no response')
      );
    });
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
    if (failed) {
      const metrics = await fetch(`${stack.adminUrl}/metrics`).then((r) => r.text()).catch(() => '');
      console.log('--- collector metrics (non-zero) ---');
      console.log(metrics.split('\n').filter((l) => l && !l.startsWith('#') && !/ 0$/.test(l)).join('\n'));
      console.log('--- collector log (tail) ---');
      console.log(stack.collector.log().split('\n').slice(-30).join('\n'));
    }
  } catch (err) {
    console.log(`browser tests: setup failed: ${err.stack || err}`);
    failed = tests.length - passed;
  } finally {
    if (ctx) await ctx.close().catch(() => {});
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    await stack.stop().catch((err) => console.log(`teardown: ${err.message}`));
  }
  for (const report of sanitizerReports) {
    console.log(`sanitizer report from ${report}`);
    failed++;
  }
  clearTimeout(watchdog);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
