#!/usr/bin/env node
/* dashboard.mjs - the dashboard in headless Chromium against the real
 * stats API (docs/DASHBOARD.md, "Tests").
 *
 *   node tests/browser/dashboard.mjs        (VEIL_BUILD=build by default)
 *   node tests/browser/dashboard.mjs --serve [--aggregator-option ...]
 *        start the same stack and data set and wait, to look by hand
 *
 * Starts its own stack (dashboard-lib.mjs) in a fresh temp dir: redis-server on a unix socket,
 * a known data set written straight into Redis in the docs/KEYS.md schema,
 * the dashboard built by dashboard/build.mjs, and $VEIL_BUILD/veil-aggregator
 * on a free loopback port serving both. Each test drives Chromium
 * (playwright-core, /usr/bin/chromium, a fresh profile) and compares what
 * the page shows with what the API answers to the same query (fetched from
 * node) and with the data set itself. Screenshots go to
 * $VEIL_BUILD/screenshots/dashboard.png and dashboard-mobile.png.
 * Prints one line per test and a closing "N passed, N failed"; exits
 * non-zero on any failure; gives up after 120 s in all. */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as lib from './dashboard-lib.mjs';

const { BUILD, SITE, SMALL_SITE, TOKEN, SITE_TOKEN, D0, D1, D2, DAY_VISITORS, TOTALS, env, stack } = lib;
const { check, checkEqual, expectedTotals, expectedRows, apiGet, openPage, checkNoConsoleErrors, signIn } = lib;
const { waitLoaded, shownMetrics, shownRows, clickTab, setCustomRange, ALL_DAYS, CUSTOM, TOP } = lib;

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
let requests = [];
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
  checkEqual(await env.ctx.cookies(), [], 'cookies in the browser');
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

/* Tables of visit properties show per-row bounce rate and duration too. */
const VISIT_ROW = ['visitors', 'visits', 'bounce_rate', 'visit_duration'];

test('breakdown tables equal the API and the data set (pages, sources, countries, events, props)', async () => {
  const cases = [
    ['pages', null, 'event:page', 'page', 'page', ['visitors', 'pageviews']],
    ['pages', 'Entry pages', 'visit:entry_page', 'entry_page', 'entry_page', VISIT_ROW],
    ['sources', null, 'visit:source', 'source', 'source', VISIT_ROW],
    ['sources', 'UTM campaign', 'visit:utm_campaign', 'utm_campaign', 'utm_campaign', VISIT_ROW],
    ['locations', null, 'visit:country', 'country', 'country', VISIT_ROW],
    ['locations', 'Cities', 'visit:city', 'city', 'city', VISIT_ROW],
    ['devices', 'OS', 'visit:os', 'os', 'os', VISIT_ROW],
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
    /* Today is per hour where the API has hourly buckets (24), else one day. */
    const hourly = await lib.apiTry('stats/timeseries', { site_id: SITE, period, metrics: 'visitors', interval: 'hour' });
    const points = period === 'day' ? (hourly.ok ? hourly.body.results.length : 1) : 7;
    checkEqual(Number(await main.getAttribute('#chart', 'data-points')), points, `${period} chart points`);
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
    ['sources', 'visit:source', 'source', VISIT_ROW, 1, true, ['news.example', 'Direct / None']],
    ['locations', 'visit:country', 'country', VISIT_ROW, 2, true, ['DE', 'FR']],
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

if (process.argv[2] === '--serve') lib.serve();
else lib.runTests(tests);
