#!/usr/bin/env node
/* compat.mjs - browser tests: other trackers' own scripts, as npm publishes
 * them, in headless Chromium against the real collector, aggregator and
 * stats API (docs/MIGRATE-PLAUSIBLE.md).
 *
 *   node tests/browser/compat.mjs          (VEIL_BUILD=build by default)
 *
 * Trackers: the legacy `plausible-tracker` (props sent as a JSON string),
 * its fork `@barbapapazes/plausible-tracker` (what `@nuxtjs/plausible`
 * uses: props as a JSON string, revenue as "$") and
 * `@plausible-analytics/tracker`, all from node_modules, served as ES
 * modules by a local page server. Umami's tracker is published on npm only
 * inside the whole Umami application (`umami`, hundreds of dependencies)
 * and Matomo's matomo.js not at all, so those two are covered by the
 * end-to-end C test (tests/integration/test_it_compat.c) instead.
 *
 * Each test gets its own site and asserts the exact counts the stats API
 * gives: pageviews, SPA navigations, custom events with props, outbound
 * clicks. The browser presents a normal desktop Chrome User-Agent; one
 * test keeps Chromium's own "HeadlessChrome" and checks it is dropped.
 * Prints one line per test and "N passed, N failed"; gives up after 120 s. */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const BUILD = resolve(process.env.VEIL_BUILD || join(ROOT, 'build'));
const CHROMIUM = process.env.VEIL_CHROMIUM || '/usr/bin/chromium';
const TOTAL_TIMEOUT_MS = 120_000;
const TOKEN = 'compat-browser-token-0123456789';
const SITES = ['legacy.example', 'nuxt.example', 'current.example', 'headless.example'];
const USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
  'Chrome/140.0.0.0 Safari/537.36';
const CHROMIUM_BASE_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
];

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

class AssertionError extends Error {}
function checkEqual(actual, expected, message) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new AssertionError(`${message}\n  expected: ${e}\n  actual:   ${a}`);
}

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
const sanitizerReports = [];

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

  async stop() {
    if (this.alive()) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(timer);
    }
    if (SANITIZER_REPORT.test(this.log())) sanitizerReports.push(`${this.name}:\n${this.log()}`);
    return this.exitCode;
  }

  kill() {
    if (this.alive()) this.child.kill('SIGKILL');
  }
}

/* ---- the stack: redis-server, veil-collector, veil-aggregator, pages ---- */

const stack = {
  async start() {
    this.dir = mkdtempSync(join(tmpdir(), 'veil-compat-'));
    for (const bin of ['veil-collector', 'veil-aggregator'])
      if (!existsSync(join(BUILD, bin))) throw new Error(`${join(BUILD, bin)} is missing: run make`);
    const sock = join(this.dir, 'redis.sock');
    this.redis = new Proc('redis-server', 'redis-server',
      ['--port', '0', '--unixsocket', sock, '--unixsocketperm', '700', '--dir', this.dir,
        '--save', '', '--appendonly', 'no', '--daemonize', 'no'], join(this.dir, 'redis.log'));
    await waitUntil('redis-server', () => existsSync(sock), 10_000);

    const collectorPort = await freePort();
    this.collectorUrl = `http://127.0.0.1:${collectorPort}`;
    const adminPort = await freePort();
    this.adminUrl = `http://127.0.0.1:${adminPort}`; /* /metrics (admin_listen) */
    this.collector = new Proc('veil-collector', join(BUILD, 'veil-collector'),
      [`--listen=127.0.0.1:${collectorPort}`, `--admin_listen=127.0.0.1:${adminPort}`, `--redis=unix:${sock}`, `--sites=${SITES.join(',')}`,
        '--threads=1', `--spool_dir=${join(this.dir, 'spool')}`], join(this.dir, 'collector.log'));
    await waitUntil('veil-collector /healthz', async () => {
      if (!this.collector.alive()) throw new Error(`veil-collector exited:\n${this.collector.log()}`);
      const res = await fetch(`${this.collectorUrl}/healthz`);
      return res.status === 200 && (await res.text()).includes('"connected"');
    }, 10_000);

    const apiPort = await freePort();
    this.apiUrl = `http://127.0.0.1:${apiPort}`;
    this.aggregator = new Proc('veil-aggregator', join(BUILD, 'veil-aggregator'),
      [`--redis=unix:${sock}`, `--api_listen=127.0.0.1:${apiPort}`, `--api_token=${TOKEN}`,
        '--k_anonymity=1', '--block_ms=50'], join(this.dir, 'aggregator.log'));
    await waitUntil('the stats API', async () => {
      if (!this.aggregator.alive()) throw new Error(`veil-aggregator exited:\n${this.aggregator.log()}`);
      return (await fetch(`${this.apiUrl}/healthz`)).status === 200;
    }, 15_000);

    this.pages = createServer((req, res) => this.servePage(req, res));
    await new Promise((res) => this.pages.listen(0, '127.0.0.1', res));
    this.siteUrl = `http://127.0.0.1:${this.pages.address().port}`;
    /* Same server under another host name: another site for the browser. */
    this.outboundUrl = `http://localhost:${this.pages.address().port}`;
  },

  /* /node_modules/<pkg>/...: the trackers as npm ships them (extensionless
   * ES module imports get ".js"); /page/<tracker>/...: the test page of
   * one tracker, a single-page app whatever the rest of its path. */
  servePage(req, res) {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (path.startsWith('/node_modules/')) {
      let file = normalize(join(ROOT, path));
      if (!file.startsWith(join(ROOT, 'node_modules'))) return this.notFound(res);
      if (!existsSync(file) && existsSync(`${file}.js`)) file = `${file}.js`;
      if (!existsSync(file)) return this.notFound(res);
      res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' });
      return res.end(readFileSync(file));
    }
    const m = /^\/page\/([a-z]+)/.exec(path);
    if (!m || !existsSync(join(HERE, 'pages', `compat-${m[1]}.html`))) return this.notFound(res);
    const body = readFileSync(join(HERE, 'pages', `compat-${m[1]}.html`), 'utf8')
      .replaceAll('__COLLECTOR__', this.collectorUrl)
      .replaceAll('__OUTBOUND__', this.outboundUrl);
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(body);
  },

  notFound(res) {
    res.writeHead(404);
    res.end();
  },

  async api(path) {
    const res = await fetch(`${this.apiUrl}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    if (res.status !== 200) throw new Error(`${path} -> ${res.status}`);
    return res.json();
  },

  /* The site's counts once `events` events are rolled up (then a little
   * longer, so that unexpected extra events show up too). */
  async counts(site, events) {
    const path = `/api/v1/stats/aggregate?site_id=${site}&period=day&metrics=events,pageviews,visitors`;
    let last;
    await waitUntil(`${events} events for ${site}`, async () => {
      last = (await this.api(path)).results;
      return last.events.value >= events;
    }, 15_000).catch(() => {});
    await sleep(700);
    last = (await this.api(path)).results;
    return { events: last.events.value, pageviews: last.pageviews.value, visitors: last.visitors.value };
  },

  /* Breakdown rows as {value: visitors}. */
  async breakdown(site, property) {
    const body = await this.api(`/api/v1/stats/breakdown?site_id=${site}&period=day&property=${property}&metrics=visitors`);
    const key = property.split(':').pop();
    return Object.fromEntries(body.results.map((row) => [row[key], row.visitors]));
  },

  async counters() {
    const text = await (await fetch(`${this.adminUrl}/metrics`)).text();
    const out = {};
    for (const m of text.matchAll(/^veil_collector_(\w+)_total (\d+)$/gm)) out[m[1]] = Number(m[2]);
    return out;
  },

  async stop() {
    if (this.pages) await new Promise((res) => this.pages.close(res));
    for (const proc of [this.collector, this.aggregator, this.redis]) if (proc) await proc.stop();
    if (this.dir && !process.env.VEIL_KEEP_TMP) rmSync(this.dir, { recursive: true, force: true });
  },

  kill() {
    for (const proc of [this.collector, this.aggregator, this.redis]) if (proc) proc.kill();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  },
};

/* ---- the journeys ---- */

let browser; /* with the desktop User-Agent */
let headless; /* Chromium's own User-Agent */

/* Load the page, navigate twice inside the app (pushState), send a custom
 * event with props, click an outbound link (the tracker sends its event,
 * then the tab leaves for the other site), close. Returns the bodies sent
 * to /api/event once each has been answered. */
async function journey(ctx, tracker) {
  const page = await ctx.newPage();
  const sent = [];
  let answered = 0;
  const before = (await stack.counters()).events_accepted || 0;
  page.on('request', (req) => {
    if (!req.url().startsWith(`${stack.collectorUrl}/api/event`) || req.method() !== 'POST') return;
    sent.push(req.postData() || '');
    req.response().then(() => answered++, () => answered++);
  });
  await page.goto(`${stack.siteUrl}/page/${tracker}/`);
  await page.waitForFunction(() => window.trackerReady === true);
  await page.evaluate(() => window.navigate('/page/x/pricing'));
  await page.evaluate(() => window.navigate('/page/x/docs'));
  await page.evaluate(() => window.signup());
  await page.click('#outbound');
  await waitUntil('the outbound click event', () => sent.some((b) => b.includes('Outbound Link: Click')), 10_000);
  /* A beacon sent as the tab leaves for the outbound site may never show
   * its answer to the page; the collector's own count of accepted events
   * says it arrived all the same. */
  await waitUntil('answers to every event', async () => answered === sent.length ||
    ((await stack.counters()).events_accepted || 0) - before >= sent.length, 10_000);
  await page.close();
  if (process.env.VEIL_DEBUG) for (const body of sent) console.log(`beacon: ${body}`);
  return sent;
}

test('legacy plausible-tracker: pageviews, SPA navigation, props as a JSON string, outbound click', async () => {
  const ctx = await browser.newContext({ userAgent: USER_AGENT });
  const sent = await journey(ctx, 'legacy');
  await ctx.close();
  /* the legacy tracker sends props as a string: what Veil used to refuse */
  checkEqual(sent.some((b) => /"p":"\{\\"plan\\":\\"pro\\"\}"/.test(b || '')), true,
    `no JSON-string props in ${JSON.stringify(sent)}`);
  checkEqual(await stack.counts('legacy.example', 5), { events: 5, pageviews: 3, visitors: 1 },
    'legacy.example counts');
  checkEqual(await stack.breakdown('legacy.example', 'event:props:plan'), { pro: 1 }, 'plan prop');
  const names = await stack.breakdown('legacy.example', 'event:name');
  checkEqual([names.Signup, names['Outbound Link: Click']], [1, 1], `event names ${JSON.stringify(names)}`);
  const urls = await stack.breakdown('legacy.example', 'event:props:url');
  checkEqual(Object.keys(urls), [`${stack.outboundUrl}/page/x/away`], 'outbound url prop');
});

test('@barbapapazes/plausible-tracker (@nuxtjs/plausible): props as a JSON string, revenue, outbound click', async () => {
  const ctx = await browser.newContext({ userAgent: USER_AGENT });
  const sent = await journey(ctx, 'nuxt');
  await ctx.close();
  checkEqual(sent.some((b) => /"p":"\{\\"plan\\":\\"team\\"\}".*"\$":\{"amount":15.99/.test(b)), true,
    `no JSON-string props with revenue in ${JSON.stringify(sent)}`);
  checkEqual(await stack.counts('nuxt.example', 5), { events: 5, pageviews: 3, visitors: 1 },
    'nuxt.example counts');
  checkEqual(await stack.breakdown('nuxt.example', 'event:props:plan'), { team: 1 }, 'plan prop');
  const names = await stack.breakdown('nuxt.example', 'event:name');
  checkEqual([names.Signup, names['Outbound Link: Click']], [1, 1], `event names ${JSON.stringify(names)}`);
});

test('@plausible-analytics/tracker: pageviews, SPA navigation, props, outbound click', async () => {
  const ctx = await browser.newContext({ userAgent: USER_AGENT });
  const sent = await journey(ctx, 'current');
  await ctx.close();
  checkEqual(sent.some((b) => /"v":\d+/.test(b || '')), true, `no tracker version in ${JSON.stringify(sent)}`);
  /* engagement events may follow each page; they are not counted as events */
  checkEqual(await stack.counts('current.example', 5), { events: 5, pageviews: 3, visitors: 1 },
    'current.example counts');
  checkEqual(await stack.breakdown('current.example', 'event:props:tier'), { startup: 1 }, 'tier prop');
  const names = await stack.breakdown('current.example', 'event:name');
  checkEqual([names.signup, names['Outbound Link: Click']], [1, 1], `event names ${JSON.stringify(names)}`);
});

test('HeadlessChrome is dropped by the bot filter (answered 202, not counted)', async () => {
  const before = await stack.counters();
  const ctx = await headless.newContext();
  const page = await ctx.newPage();
  const ua = await page.evaluate(() => navigator.userAgent);
  checkEqual(/HeadlessChrome/.test(ua), true, `the agent is headless: ${ua}`);
  const statuses = [];
  page.on('response', (res) => {
    if (res.url().startsWith(`${stack.collectorUrl}/api/event`)) statuses.push(res.status());
  });
  await page.goto(`${stack.siteUrl}/page/headless/`);
  await page.waitForFunction(() => window.trackerReady === true);
  await waitUntil('the pageview answer', () => statuses.length >= 1, 10_000);
  await ctx.close();
  checkEqual(statuses[0], 202, 'a bot is answered 202');
  await waitUntil('the bot counter', async () => ((await stack.counters()).dropped_bot || 0) > (before.dropped_bot || 0), 10_000);
  /* then one pageview with a desktop agent: exactly one is counted */
  const desktop = await browser.newContext({ userAgent: USER_AGENT });
  const page2 = await desktop.newPage();
  await page2.goto(`${stack.siteUrl}/page/headless/`);
  await page2.waitForFunction(() => window.trackerReady === true);
  await sleep(200);
  await desktop.close();
  checkEqual(await stack.counts('headless.example', 1), { events: 1, pageviews: 1, visitors: 1 },
    'headless.example counts');
});

async function main() {
  let passed = 0;
  let failed = 0;
  const watchdog = setTimeout(() => {
    stack.kill();
    console.log(`compat browser tests: gave up after ${TOTAL_TIMEOUT_MS / 1000} s`);
    console.log(`${passed} passed, ${tests.length - passed} failed`);
    process.exit(1);
  }, TOTAL_TIMEOUT_MS);
  try {
    const { chromium } = await import('playwright-core').catch(() => {
      throw new Error('playwright-core is missing: run npm ci');
    });
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
    await stack.start();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
      args: [...CHROMIUM_BASE_ARGS, `--user-agent=${USER_AGENT}`] });
    headless = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_BASE_ARGS });
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
      console.log('--- collector log (tail) ---');
      console.log(stack.collector.log().split('\n').slice(-30).join('\n'));
    }
  } catch (err) {
    console.log(`compat browser tests: setup failed: ${err.stack || err}`);
    failed = tests.length - passed;
  } finally {
    for (const b of [browser, headless]) if (b) await b.close().catch(() => {});
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
