#!/usr/bin/env node
/* dashboard-parity.mjs - the dashboard features of issue 15 in headless
 * Chromium against the real stats API (docs/DASHBOARD.md, "Tests"):
 * previous-period comparison, hourly Today and Yesterday, the date picker,
 * click-to-filter with pills, goals, channels, exit pages, per-row bounce
 * rate and duration, self-refresh.
 *
 *   node tests/browser/dashboard-parity.mjs     (VEIL_BUILD=build by default)
 *
 * The API gains these features on its own schedule, so every test first asks
 * the API the page's exact query from node: when the API answers, the page
 * must show exactly that answer (and the data set's numbers where the data
 * set says them); when it refuses (400), the page must show the API's own
 * reason where the numbers would be, and no number for that part. Every
 * refused request the page made must be explained on the page. Screenshots
 * go to $VEIL_BUILD/screenshots/dashboard-*.png. Same stack, data set and
 * runner as dashboard.mjs (dashboard-lib.mjs). */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as lib from './dashboard-lib.mjs';

const { BUILD, SITE, TOKEN, D0, D1, D2, DAY_VISITORS, TOTALS, ALL_DAYS, TOP, stack } = lib;
const { check, checkEqual, expectedTotals, expectedRows, apiGet, apiTry, openPage, checkNoConsoleErrors } = lib;
const { waitLoaded, shownMetrics, shownRows, clickTab } = lib;

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
let main = null; /* the signed-in desktop tab, shared by the tests in order */
const D3 = lib.isoDay(lib.NOW - 3 * 86_400_000);

function shot(page, name) {
  mkdirSync(join(BUILD, 'screenshots'), { recursive: true });
  return page.screenshot({ path: join(BUILD, 'screenshots', `dashboard-${name}.png`), fullPage: true });
}

/* A tab that records the reasons of the API's refusals (400) it receives. */
async function openRecordingPage(opts) {
  const page = await openPage(opts);
  page.refusals = [];
  page.on('response', async (res) => {
    if (res.status() !== 400 || !res.url().includes('/api/v1/')) return;
    try {
      page.refusals.push((await res.json()).error);
    } catch {
      page.refusals.push('(unreadable)');
    }
  });
  return page;
}

/* Every refusal the page received (since the view last changed: callers
 * empty page.refusals first) is explained in its text (the reason is
 * shown verbatim: in a note, the chart note, a panel or the error box). */
async function checkRefusalsShown(page) {
  const text = await page.evaluate(() => document.body.innerText);
  for (const reason of new Set(page.refusals)) check(text.includes(reason), `refusal not explained on the page: ${reason}\n${text}`);
}

/* Open the dashboard at a view (URL fragment) and sign in. */
async function openView(page, hash) {
  await page.goto(`${stack.apiUrl}/#${hash}`);
  await page.waitForSelector('#login:not([hidden])');
  await page.fill('#token', TOKEN);
  await page.click('#login-form button[type=submit]');
  await waitLoaded(page);
}

const view = (extra = '') => `site=${SITE}&period=custom&from=${D1}&to=${D0}${extra}`;

/* ---- tests ---- */

test('comparison: previous-period totals, change and a dotted line, as the API answers them', async () => {
  main = await openRecordingPage();
  await openView(main, view());
  await main.check('#compare');
  await waitLoaded(main);
  /* D1..D0 (2 days) compares with D3..D2. */
  await main.waitForFunction(() => document.getElementById('compare-note').dataset.range);
  checkEqual(await main.getAttribute('#compare-note', 'data-range'), `${D3},${D2}`, 'previous range');
  await main.waitForSelector('.metric[data-metric="visitors"] .metric-change:not([hidden])');
  const prevApi = await apiGet('stats/aggregate', { site_id: SITE, period: 'custom', date: `${D3},${D2}`, metrics: TOP });
  const want = expectedTotals([D2]);
  const cur = expectedTotals([D1, D0]);
  const shown = await main.$$eval('.metric', (ns) =>
    Object.fromEntries(ns.map((n) => [n.dataset.metric, { ...n.querySelector('.metric-change').dataset, text: n.querySelector('.metric-change').textContent }]))
  );
  for (const m of Object.keys(want)) {
    checkEqual(Number(shown[m].previous), prevApi.results[m].value, `${m} previous shown vs API`);
    checkEqual(Number(shown[m].previous), want[m], `${m} previous shown vs data set`);
  }
  /* visitors 17 vs 8: +113 %; bounce rate 47 vs 40: +7 points. */
  checkEqual(Number(shown.visitors.change), Math.round((100 * (cur.visitors - want.visitors)) / want.visitors), 'visitors change');
  check(shown.visitors.text.startsWith('+113%'), `visitors change text: ${shown.visitors.text}`);
  checkEqual(Number(shown.bounce_rate.change), cur.bounce_rate - want.bounce_rate, 'bounce rate change in points');
  check(/pts/.test(shown.bounce_rate.text), `bounce rate change text: ${shown.bounce_rate.text}`);

  await main.waitForFunction(() => document.getElementById('chart').dataset.previousVisitors);
  const chart = await main.$eval('#chart', (c) => ({ ...c.dataset }));
  const prevTs = await apiGet('stats/timeseries', { site_id: SITE, period: 'custom', date: `${D3},${D2}`, metrics: 'visitors', interval: 'day' });
  checkEqual(chart.previousVisitors.split(',').map(Number), prevTs.results.map((r) => r.visitors), 'dotted line vs API');
  checkEqual(chart.previousVisitors.split(',').map(Number), [0, DAY_VISITORS[D2].length], 'dotted line vs data set');
  const legend = await main.$$eval('.u-legend .u-series', (s) => s.map((n) => n.textContent));
  check(legend.some((t) => /previous period/.test(t)), `no previous-period series in the legend: ${legend}`);
  check(/cmp=1/.test(main.url()), 'comparison not kept in the URL');
  await shot(main, 'compare');
  /* Off again: no comparison numbers, no dotted line. */
  await main.uncheck('#compare');
  await waitLoaded(main);
  check(await main.isHidden('.metric[data-metric="visitors"] .metric-change'), 'change still shown');
  checkEqual(await main.getAttribute('#chart', 'data-previous-visitors'), '', 'dotted line still drawn');
  checkNoConsoleErrors(main);
});

test('hourly Today and Yesterday: 24 hours as the API answers, or its reason and the day', async () => {
  for (const [period, day] of [['day', D0], ['yesterday', D1]]) {
    main.refusals = [];
    await main.selectOption('#period', period);
    await waitLoaded(main);
    const shown = await shownMetrics(main);
    checkEqual(shown.pageviews.value, expectedTotals([day]).pageviews, `${period} pageviews vs data set`);
    const chart = await main.$eval('#chart', (c) => ({ ...c.dataset }));
    const hourly = await apiTry('stats/timeseries', { site_id: SITE, period: 'day', date: day, metrics: 'visitors,pageviews', interval: 'hour' });
    if (hourly.ok) {
      checkEqual(chart.interval, 'hour', `${period} chart interval`);
      checkEqual(chart.dates.split(','), hourly.body.results.map((r) => r.date), `${period} hours vs API`);
      checkEqual(chart.visitors.split(',').map(Number), hourly.body.results.map((r) => r.visitors), `${period} hourly visitors vs API`);
      checkEqual(chart.pageviews.split(',').map(Number), hourly.body.results.map((r) => r.pageviews), `${period} hourly pageviews vs API`);
      const hours = lib.expectedHours(day);
      checkEqual(chart.dates.split(','), hours.map((h) => `${day} ${h.hour}:00:00`), `${period} hours vs data set`);
      checkEqual(chart.visitors.split(',').map(Number), hours.map((h) => h.visitors), `${period} hourly visitors vs data set`);
      checkEqual(chart.pageviews.split(',').map(Number), hours.map((h) => h.pageviews), `${period} hourly pageviews vs data set`);
    } else {
      checkEqual(hourly.status, 400, 'hourly refusal status');
      checkEqual(chart.interval, 'day', `${period} falls back to the day`);
      checkEqual(chart.dates, day, `${period} day bucket`);
      checkEqual(Number(chart.pageviews), TOTALS[day].pageviews, `${period} day pageviews`);
      const note = await main.textContent('#chart-note');
      check(note.includes(hourly.body) && /Hourly/.test(note), `${period}: the API's reason is not shown: ${note}`);
    }
    check(main.url().includes(`period=${period}`), `period not in the URL: ${main.url()}`);
    await shot(main, period === 'day' ? 'today' : 'yesterday');
    await checkRefusalsShown(main);
  }
  /* Yesterday compared with the day before, in the same buckets. */
  await main.check('#compare');
  await waitLoaded(main);
  await main.waitForFunction(() => document.getElementById('chart').dataset.previousVisitors);
  checkEqual(await main.getAttribute('#compare-note', 'data-range'), `${D2},${D2}`, 'the day before yesterday');
  const chart = await main.$eval('#chart', (c) => ({ ...c.dataset }));
  const prev = await apiGet('stats/timeseries', { site_id: SITE, period: 'custom', date: `${D2},${D2}`, metrics: 'visitors', interval: chart.interval });
  checkEqual(chart.previousVisitors.split(',').map(Number), prev.results.map((r) => r.visitors), 'previous day line vs API');
  checkEqual(chart.previousVisitors.split(',').length, chart.visitors.split(',').length, 'previous line has the same buckets');
  await main.uncheck('#compare');
  await waitLoaded(main);
});

test('Today with a filter: an hourly chart from the hourly rows, no fallback note', async () => {
  const page = await openRecordingPage();
  const filters = 'visit:source==news.example';
  await openView(page, `site=${SITE}&period=day&f=${encodeURIComponent(filters)}`);
  await page.waitForSelector('#filters .pill[data-property="visit:source"]');
  await page.waitForFunction(() => document.getElementById('chart').dataset.interval);
  const chart = await page.$eval('#chart', (c) => ({ ...c.dataset }));
  const api = await apiGet('stats/timeseries', { site_id: SITE, period: 'day', date: D0, metrics: 'visitors,pageviews', interval: 'hour', filters });
  checkEqual(chart.interval, 'hour', 'filtered Today chart interval');
  checkEqual(chart.dates.split(','), api.results.map((r) => r.date), 'filtered hours vs API');
  checkEqual(chart.visitors.split(',').map(Number), api.results.map((r) => r.visitors), 'filtered hourly visitors vs API');
  checkEqual(chart.pageviews.split(',').map(Number), api.results.map((r) => r.pageviews), 'filtered hourly pageviews vs API');
  const hours = lib.expectedHourRows('source', 'news.example', D0);
  checkEqual(chart.visitors.split(',').map(Number), hours.map((h) => h.visitors), 'filtered hourly visitors vs data set');
  check(hours.some((h) => h.visitors > 0), 'the data set has filtered hours');
  const note = (await page.textContent('#chart-note')) || '';
  check(!/Hourly buckets are not available/.test(note), `a fallback note under a filter: ${note}`);
  /* the other panels' refusals under this filter are theirs (and shown); none is about hours */
  check(!page.refusals.some((r) => /hour/i.test(r)), `an hourly refusal: ${page.refusals}`);
  await checkRefusalsShown(page);
  await shot(page, 'today-filter');
  checkNoConsoleErrors(page);
  await page.close();
});

test('date picker: a custom range answers the API and the data set; one day is hourly', async () => {
  await main.selectOption('#period', 'custom');
  await main.fill('#from', D2);
  await main.fill('#to', D1);
  await main.click('#apply-range');
  await waitLoaded(main);
  const shown = await shownMetrics(main);
  const want = expectedTotals([D2, D1]);
  const api = await apiGet('stats/aggregate', { site_id: SITE, period: 'custom', date: `${D2},${D1}`, metrics: TOP });
  for (const m of Object.keys(want)) {
    checkEqual(shown[m].value, api.results[m].value, `${m} vs API`);
    checkEqual(shown[m].value, want[m], `${m} vs data set`);
  }
  checkEqual((await main.getAttribute('#chart', 'data-dates')).split(','), [D2, D1], 'chart days');
  await main.fill('#from', D1);
  main.refusals = [];
  await main.click('#apply-range');
  await waitLoaded(main);
  const hourly = await apiTry('stats/timeseries', { site_id: SITE, period: 'custom', date: `${D1},${D1}`, metrics: 'visitors', interval: 'hour' });
  checkEqual(await main.getAttribute('#chart', 'data-interval'), hourly.ok ? 'hour' : 'day', 'one-day range interval');
  check(/from=.*&to=/.test(main.url()), 'range not in the URL');
  await checkRefusalsShown(main);
});

test('click a row to filter: a pill, and the API\'s filtered answer or its reason (no unfiltered number)', async () => {
  await lib.setCustomRange(main, D2, D0);
  main.refusals = [];
  await main.click(`#panel-sources td.value[data-value="news.example"] button.filter-link`);
  await main.waitForSelector('#filters .pill[data-property="visit:source"]');
  await waitLoaded(main);
  const pill = await main.textContent('#filters .pill');
  check(/Source is news\.example/.test(pill), `pill: ${pill}`);
  check(decodeURIComponent(main.url()).includes('f=visit:source==news.example'), `filter not in the URL: ${main.url()}`);
  const filters = 'visit:source==news.example';
  const q = { site_id: SITE, period: 'custom', date: `${D2},${D0}`, filters };
  const agg = await lib.apiDropping('stats/aggregate', q, TOP.split(','));
  const shown = await shownMetrics(main);
  const note = await main.textContent('#metrics-note');
  if (agg.ok) {
    for (const m of Object.keys(shown)) {
      if (agg.dropped[m]) {
        checkEqual(shown[m].text, '—', `${m}: a number the API refused under the filter`);
        check(note.includes(agg.dropped[m]), `${m}: the API's reason is not shown: ${note}`);
      } else checkEqual(shown[m].value, agg.body.results[m].value, `filtered ${m} vs API`);
    }
    /* news.example's visitors over the three days (k = 1). */
    checkEqual(shown.visitors.value, 8, 'filtered visitors vs data set');
  } else {
    for (const m of Object.keys(shown)) checkEqual(shown[m].text, '—', `${m} shows a number the API refused`);
    check(note.includes(agg.body), `totals: the API's reason is not shown: ${note}`);
  }
  const ts = await lib.apiDropping('stats/timeseries', q, ['visitors', 'pageviews']);
  const chart = await main.$eval('#chart', (c) => ({ ...c.dataset }));
  if (ts.ok) {
    checkEqual(chart.visitors.split(',').map(Number), ts.body.results.map((r) => r.visitors), 'filtered chart vs API');
    checkEqual(chart.visitors.split(',').map(Number), [0, 4, 4], 'filtered chart vs data set');
    if (ts.metrics.includes('pageviews')) checkEqual(chart.pageviews.split(',').map(Number), ts.body.results.map((r) => r.pageviews), 'filtered pageviews vs API');
    else checkEqual(chart.pageviews, '', 'pageviews plotted though refused');
  } else {
    checkEqual(chart.points, 'n/a', 'chart plotted a refused query');
    check((await main.textContent('#chart-note')).includes(ts.body), 'chart: the API\'s reason is not shown');
  }
  /* Another panel under the filter: the pages of news.example's page
   * views, from the pair counts (docs/KEYS.md "Pair counts"). */
  const br = await apiTry('stats/breakdown', { site_id: SITE, period: 'custom', date: `${D2},${D0}`, filters, property: 'event:page', metrics: 'visitors,pageviews', limit: 100, page: 1 });
  if (br.ok) {
    checkEqual(await shownRows(main, 'pages', 'page'), br.body.results, 'filtered pages vs API');
    checkEqual(br.body.results, [
      { page: '/', visitors: 7, pageviews: 9 },
      { page: '/pricing', visitors: 7, pageviews: 13 },
    ], 'pages filtered by a source vs data set');
  } else {
    checkEqual(await main.getAttribute('#panel-pages', 'data-state'), 'unavailable', 'pages panel state');
    checkEqual(await shownRows(main, 'pages', 'page'), [], 'pages rows of a refused query');
  }
  /* A visit panel under the filter: the countries of news.example's
   * visits (pairs of two visit dimensions keep visitors and visits). */
  const geo = await apiTry('stats/breakdown', { ...q, property: 'visit:country', metrics: 'visitors,visits', limit: 100, page: 1 });
  if (geo.ok) {
    checkEqual(await shownRows(main, 'locations', 'country'), geo.body.results, 'countries filtered by a source vs API');
    checkEqual(geo.body.results, [
      { country: 'DE', visitors: 3, visits: 5 },
      { country: 'FR', visitors: 2, visits: 4 },
    ], 'countries filtered by a source vs data set');
  } else checkEqual(await main.getAttribute('#panel-locations', 'data-state'), 'unavailable', 'locations panel state');
  /* The table of the filtered property itself: only the matching rows, with
   * their own per-row bounce rate and duration where the API answers them. */
  let own = await apiTry('stats/breakdown', { ...q, property: 'visit:source', metrics: 'visitors,visits,bounce_rate,visit_duration', limit: 100, page: 1 });
  if (!own.ok && /^(metrics|filters): (bounce_rate|visit_duration)/.test(own.body))
    own = await apiTry('stats/breakdown', { ...q, property: 'visit:source', metrics: 'visitors,visits', limit: 100, page: 1 });
  if (own.ok) {
    checkEqual(await shownRows(main, 'sources', 'source'), own.body.results, 'sources filtered by source vs API');
    checkEqual(own.body.results.map((r) => r.source), ['news.example'], 'sources filtered by source vs data set');
  } else checkEqual(await main.getAttribute('#panel-sources', 'data-state'), 'unavailable', 'sources panel state');
  if (agg.ok) {
    /* The chart's CSV: the API's own CSV of the metrics it answered here. */
    const [download] = await Promise.all([main.waitForEvent('download'), main.click('#timeseries-csv')]);
    const csv = readFileSync(await download.path(), 'utf8');
    const want = await apiGet('stats/timeseries', { ...q, metrics: agg.metrics.join(',') }, { csv: true });
    checkEqual(csv, want, 'filtered timeseries CSV vs API');
    check(csv.startsWith(`date,${agg.metrics.join(',')}\r\n`), `CSV head: ${csv.slice(0, 60)}`);
  }
  await shot(main, 'filter');
  await checkRefusalsShown(main);

  /* "is not": the pill's operator switches the filter to v1's != (the
   * API's is_not, docs/API.md "Filters"), and back. */
  await main.click('#filters .pill[data-property="visit:source"] .pill-op');
  await main.waitForSelector('#filters .pill[data-property="visit:source"][data-negate="1"]');
  await waitLoaded(main);
  const notPill = await main.textContent('#filters .pill');
  check(/Source is not news\.example/.test(notPill), `pill: ${notPill}`);
  check(decodeURIComponent(main.url()).includes('f=visit:source!=news.example'), `is not: not in the URL: ${main.url()}`);
  const nq = { site_id: SITE, period: 'custom', date: `${D2},${D0}`, filters: 'visit:source!=news.example' };
  const nagg = await lib.apiDropping('stats/aggregate', nq, TOP.split(','));
  check(nagg.ok, `the API refused is not: ${nagg.body}`);
  const nshown = await shownMetrics(main);
  for (const m of Object.keys(nshown))
    if (!nagg.dropped[m]) checkEqual(nshown[m].value, nagg.body.results[m].value, `is not: ${m} vs API`);
  /* the table asks for per-row bounce rate and duration too (answered for
   * the filtered property's own table), and falls back without them */
  let nown = await apiTry('stats/breakdown', { ...nq, property: 'visit:source', metrics: 'visitors,visits,bounce_rate,visit_duration', limit: 100, page: 1 });
  if (!nown.ok && /^(metrics|filters): (bounce_rate|visit_duration)/.test(nown.body))
    nown = await apiTry('stats/breakdown', { ...nq, property: 'visit:source', metrics: 'visitors,visits', limit: 100, page: 1 });
  check(nown.ok, `the API refused the sources under is not: ${nown.body}`);
  checkEqual(await shownRows(main, 'sources', 'source'), nown.body.results, 'sources filtered by is not vs API');
  check(!nown.body.results.some((r) => r.source === 'news.example'), 'is not: news.example is still a row');
  check(nown.body.results.length > 0, 'is not: no other source');
  await shot(main, 'filter-is-not');
  await main.click('#filters .pill[data-property="visit:source"] .pill-op');
  await main.waitForSelector('#filters .pill[data-property="visit:source"][data-negate="0"]');
  await waitLoaded(main);
});

test('several filters (on a 390 px phone): pills from the URL, removed one by one, cleared; numbers return', async () => {
  const page = await openRecordingPage({ width: 390, height: 844 });
  await openView(page, `site=${SITE}&period=custom&from=${D2}&to=${D0}&cmp=1&f=visit:source==news.example&f=visit:country==FR`);
  const widths = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(widths[0] <= widths[1], `page is ${widths[0]} px wide in a ${widths[1]} px viewport with pills and comparison`);
  const pills = await page.$$eval('#filters .pill', (ps) => ps.map((p) => `${p.dataset.property}=${p.dataset.value}`));
  checkEqual(pills, ['visit:source=news.example', 'visit:country=FR'], 'pills');
  const filters = 'visit:source==news.example;visit:country==FR';
  const agg = await lib.apiDropping('stats/aggregate', { site_id: SITE, period: 'custom', date: `${D2},${D0}`, filters }, TOP.split(','));
  const shown = await shownMetrics(page);
  if (agg.ok) {
    for (const m of Object.keys(shown))
      checkEqual(shown[m].text === '—' ? 'refused' : shown[m].value, agg.dropped[m] ? 'refused' : agg.body.results[m].value, `two filters ${m} vs API`);
  } else {
    for (const m of Object.keys(shown)) checkEqual(shown[m].text, '—', `${m} shows a number the API refused`);
    check((await page.textContent('#metrics-note')).includes(agg.body), 'two filters: the reason is not shown');
  }
  await shot(page, 'filters');
  await checkRefusalsShown(page);
  await page.click('#filters .pill[data-property="visit:country"] .pill-remove');
  await page.waitForFunction(() => document.querySelectorAll('#filters .pill').length === 1);
  await waitLoaded(page);
  await page.click('#filters .pill .pill-remove');
  await page.waitForSelector('#filters', { state: 'hidden' });
  await waitLoaded(page);
  const back = await shownMetrics(page);
  checkEqual(back.visitors.value, expectedTotals(ALL_DAYS).visitors, 'unfiltered visitors after removing the pills');
  check(!page.url().includes('f='), `filters left in the URL: ${page.url()}`);
  checkNoConsoleErrors(page);
  await page.close();
});

/* [panel, tab, property, column, metrics, data set dimension] of the new
 * tables. */
const NEW_TABLES = [
  ['goals', null, 'event:goal', 'goal', ['visitors', 'events', 'conversion_rate'], 'goal'],
  ['sources', 'Channels', 'visit:channel', 'channel', ['visitors', 'visits', 'bounce_rate', 'visit_duration'], 'channel'],
  ['pages', 'Exit pages', 'visit:exit_page', 'exit_page', ['visitors', 'visits', 'bounce_rate', 'visit_duration'], 'exit_page'],
  ['devices', 'Visitor type', 'visit:visitor_type', 'visitor_type', ['visitors', 'visits'], 'visitor_type'],
];
const ALL_VISITORS = expectedTotals(ALL_DAYS).visitors;

test('goals (conversion rate), channels, exit pages: the API\'s rows, or its reason in the card', async () => {
  await main.click('#filters .pill .pill-remove');
  await lib.setCustomRange(main, D2, D0);
  main.refusals = [];
  for (const [panel, tab, property, column, metrics, dim] of NEW_TABLES) {
    if (tab) await clickTab(main, panel, tab);
    await main.waitForSelector(`#panel-${panel}:is([data-state="ready"], [data-state="unavailable"])`);
    let api = await apiTry('stats/breakdown', { site_id: SITE, period: 'custom', date: `${D2},${D0}`, property, metrics: metrics.join(','), limit: 100, page: 1 });
    if (!api.ok && metrics.includes('bounce_rate') && /^metrics:.*(bounce_rate|visit_duration)/.test(api.body)) {
      const base = metrics.slice(0, 2);
      api = await apiTry('stats/breakdown', { site_id: SITE, period: 'custom', date: `${D2},${D0}`, property, metrics: base.join(','), limit: 100, page: 1 });
    }
    if (api.ok) {
      const rows = await shownRows(main, panel, column);
      checkEqual(rows, api.body.results, `${property} rows vs API`);
      if (dim) {
        /* every column the API answered, per-row bounce rate and duration included */
        const counts = metrics.filter((m) => m === 'conversion_rate' || api.body.results.length === 0 || m in api.body.results[0]).filter((m) => m !== 'conversion_rate');
        const want = expectedRows(dim, ALL_DAYS, column, counts);
        if (metrics.includes('conversion_rate'))
          for (const r of want) r.conversion_rate = Math.round((1000 * r.visitors) / ALL_VISITORS) / 10;
        const pick = (r) => Object.fromEntries(Object.keys(want[0] || {}).map((k) => [k, r[k]]));
        checkEqual(rows.map(pick), want, `${property} rows vs data set`);
      }
    } else {
      checkEqual(await main.getAttribute(`#panel-${panel}`, 'data-state'), 'unavailable', `${property} panel state`);
      const note = await main.textContent(`#panel-${panel} .note.unavailable`);
      check(note.includes(api.body), `${property}: the API's reason is not shown: ${note}`);
      checkEqual(await shownRows(main, panel, column), [], `${property} rows of a refused query`);
    }
  }
  await shot(main, 'tables');
  await checkRefusalsShown(main);

  /* A goal row filters by the goal; the conversion rate card appears. */
  main.refusals = [];
  await main.click('#panel-goals td.value[data-value="Signup"] button.filter-link');
  await main.waitForSelector('#filters .pill[data-property="event:goal"]');
  await waitLoaded(main);
  const q = { site_id: SITE, period: 'custom', date: `${D2},${D0}`, filters: 'event:goal==Signup' };
  const agg = await lib.apiDropping('stats/aggregate', q, [...TOP.split(','), 'conversion_rate']);
  const shown = await shownMetrics(main);
  check('conversion_rate' in shown, 'no conversion rate card under a goal filter');
  if (agg.ok) {
    for (const m of Object.keys(shown))
      checkEqual(shown[m].text === '—' ? 'refused' : shown[m].value, agg.dropped[m] ? 'refused' : agg.body.results[m].value, `goal-filtered ${m} vs API`);
    if (!agg.dropped.conversion_rate) {
      checkEqual(shown.conversion_rate.value, Math.round((1000 * 6) / ALL_VISITORS) / 10, 'Signup conversion rate vs data set');
      checkEqual(shown.conversion_rate.text, '28.6%', 'conversion rate text');
    }
  } else checkEqual(shown.conversion_rate.text, '—', 'conversion rate of a refused query');
  await checkRefusalsShown(main);
  await shot(main, 'goal-filter');
  await main.click('#filters .pill .pill-remove');
  await waitLoaded(main);
  check(await main.isHidden('.metric[data-metric="conversion_rate"]'), 'conversion rate card stays without a goal filter');
});

test('per-row bounce rate and visit duration: the API\'s numbers, or its reason and the counts', async () => {
  await clickTab(main, 'sources', 'Sources');
  const q = { site_id: SITE, period: 'custom', date: `${D2},${D0}`, property: 'visit:source', limit: 100, page: 1 };
  const full = await apiTry('stats/breakdown', { ...q, metrics: 'visitors,visits,bounce_rate,visit_duration' });
  const heads = await main.$$eval('#panel-sources thead th', (ths) => ths.map((t) => t.textContent));
  if (full.ok) {
    checkEqual(heads, ['Sources', 'Visitors', 'Visits', 'Bounce', 'Duration'], 'columns');
    const shown = await shownRows(main, 'sources', 'source');
    checkEqual(shown, full.body.results, 'per-row metrics vs API');
    /* real numbers: the data set's bounces and seconds of D1 and D0 (D2 was
     * counted before per-row counts: left out, and said so) */
    checkEqual(shown, expectedRows('source', ALL_DAYS, 'source', ['visitors', 'visits', 'bounce_rate', 'visit_duration']), 'per-row metrics vs data set');
    checkEqual(shown.find((r) => r.source === 'news.example'), { source: 'news.example', visitors: 8, visits: 11, bounce_rate: 45, visit_duration: 118 }, 'news.example row');
    checkEqual(full.body.meta.visit_rows_missing_days, 1, 'days left out in meta');
    checkEqual(await main.getAttribute('#panel-sources .note.row-days', 'data-days'), '1', 'days left out shown');
    checkEqual(await main.textContent('#panel-sources tr:has(td.value[data-value="Direct / None"]) td.num[data-metric="bounce_rate"]'), '—', 'a row without per-row counts shows a dash, not 0');
    await main.locator('#panel-sources').screenshot({ path: join(BUILD, 'screenshots', 'dashboard-parity-per-row.png') });
    await clickTab(main, 'pages', 'Exit pages');
    await main.waitForSelector('#panel-pages[data-state="ready"]');
    const exits = await shownRows(main, 'pages', 'exit_page');
    checkEqual(exits, expectedRows('exit_page', ALL_DAYS, 'exit_page', ['visitors', 'visits', 'bounce_rate', 'visit_duration']), 'exit pages vs data set');
    checkEqual(exits.find((r) => r.exit_page === '/about'), { exit_page: '/about', visitors: 1, visits: 1, bounce_rate: 100, visit_duration: 0 }, 'exit visitors at most its visits');
    await main.locator('#panel-pages').screenshot({ path: join(BUILD, 'screenshots', 'dashboard-parity-exit-pages.png') });
  } else {
    checkEqual(heads, ['Sources', 'Visitors', 'Visits'], 'columns without per-row metrics');
    const note = await main.textContent('#panel-sources .note.row-extra');
    check(note.includes(full.body), `the API's reason is not shown: ${note}`);
    checkEqual(
      await shownRows(main, 'sources', 'source'),
      expectedRows('source', ALL_DAYS, 'source', ['visitors', 'visits']),
      'counts still shown, from the data set'
    );
  }
  checkNoConsoleErrors(main);
});

test('site time zone: the range names it, Today and Yesterday are the site\'s days as the API counts them', async () => {
  /* A zone whose date differs from UTC's right now (UTC+14 from 10:00 UTC,
   * UTC-11 before 11:00 UTC), so a page that used UTC's today would fail. */
  const zone = new Date().getUTCHours() >= 10 ? 'Pacific/Kiritimati' : 'Pacific/Pago_Pago';
  await stack.client.command('HSET', `veil:{reg}:site:${lib.SMALL_SITE}`, 'timezone', zone);
  await stack.client.command('SADD', 'veil:{reg}:sites', lib.SMALL_SITE);
  await stack.client.command('INCR', 'veil:{reg}:version');
  const sites = await apiGet('sites', {});
  checkEqual(sites.sites.find((x) => x.domain === lib.SMALL_SITE).timezone, zone, 'the API reports the zone');
  const page = await openRecordingPage();
  const asked = [];
  page.on('request', (r) => r.url().includes('/stats/aggregate') && asked.push(new URL(r.url()).searchParams));
  await openView(page, `site=${lib.SMALL_SITE}&period=day`);
  const today = (await apiGet('stats/aggregate', { site_id: lib.SMALL_SITE, period: 'day', metrics: 'visitors' })).meta.date_range[0];
  /* from the parts: how a locale lays out a date differs between ICU builds
   * (Debian 12's Node 18 writes en-CA as 12/07/2026) */
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' })
    .formatToParts(new Date());
  const part = (type) => parts.find((p) => p.type === type).value;
  const local = `${part('year')}-${part('month')}-${part('day')}`;
  checkEqual(today, local, "the API's today for the site vs the zone's date");
  check(today !== lib.isoDay(Date.now()), 'the zone does not differ from UTC now: the test would prove nothing');
  const range = await page.textContent('#range');
  check(range.includes(zone), `range line does not name the zone: ${range}`);
  asked.length = 0;
  await page.selectOption('#period', 'yesterday');
  await waitLoaded(page);
  const yesterday = lib.isoDay(Date.parse(`${today}T00:00:00Z`) - 86_400_000);
  check(asked.some((q) => q.get('period') === 'day' && q.get('date') === yesterday), `Yesterday did not ask for ${yesterday}`);
  check((await page.textContent('#range')).includes(zone), 'zone not named for Yesterday');
  checkEqual(await page.getAttribute('#chart', 'data-dates'), Array.from({ length: 24 }, (_, h) => `${yesterday} ${String(h).padStart(2, '0')}:00:00`).join(','), 'Yesterday hours are the site\'s');
  checkNoConsoleErrors(page);
  await page.close();
});

test('self-refresh: realtime and today\'s totals follow new data without a reload', async () => {
  const page = await openPage();
  await page.addInitScript(() => {
    globalThis.VEIL_TEST_REFRESH_MS = 300;
  });
  await openView(page, `site=${SITE}&period=day`);
  const before = await shownMetrics(page);
  const rtBefore = Number(await page.getAttribute('#realtime', 'data-value'));
  checkEqual(before.pageviews.value, TOTALS[D0].pageviews, 'today before');
  /* Five new pageviews today and a new visitor this minute, in Redis. */
  await stack.client.command('HINCRBY', `veil:{0}:d:${SITE}:${D0}:totals`, 'pageviews', 5);
  await stack.client.command('PFADD', `veil:{0}:rt:${SITE}:${Math.floor(Date.now() / 60_000)}`, lib.vh(999));
  await page.waitForFunction(
    (want) => document.querySelector('.metric[data-metric="pageviews"] .metric-value').dataset.value === String(want),
    TOTALS[D0].pageviews + 5,
    { timeout: 5000 }
  );
  await page.waitForFunction((want) => document.getElementById('realtime').dataset.value === String(want), rtBefore + 1, { timeout: 5000 });
  const api = await apiGet('stats/aggregate', { site_id: SITE, period: 'day', metrics: TOP });
  checkEqual((await shownMetrics(page)).pageviews.value, api.results.pageviews.value, 'refreshed pageviews vs API');
  check(Number(await page.getAttribute('#dashboard', 'data-refreshed')) > 0, 'no refresh counted');
  checkNoConsoleErrors(page);
  await page.close();
});

lib.runTests(tests);
