/* app.js - the Veil dashboard's entry point: token entry, site and period
 * pickers, filter pills, top metrics with the previous-period comparison,
 * realtime visitors and the self-refresh while open. The chart lives in
 * chart.js, the breakdown cards in panels.js, the view and its URL in
 * state.js (docs/DASHBOARD.md).
 *
 * It must never store the API token anywhere but this tab's sessionStorage
 * (no localStorage, no cookie), never put it in a URL (it travels only in
 * the Authorization header, api.js), never load anything from another
 * origin, never insert a value from the API as HTML, and never show a
 * number that is not the API's answer to the view's exact query. */
import { api, apiMetrics, auth, ApiError, describeError, downloadCsv, fileSafe, isRefusal } from './api.js';
import { clearPrevious, loadPreviousTimeseries, loadTimeseries, plottedInterval, resizeChart } from './chart.js';
import { $, addDays, el, formatDay, formatInt, formatMetric } from './format.js';
import { PANELS, buildPanels, loadAllPanels } from './panels.js';
import {
  filterParams,
  previousRange,
  propertyName,
  rangeParams,
  readHash,
  removeFilter,
  setFilter,
  toggleFilter,
  siteToday,
  state,
  zoneLabel,
  writeHash,
} from './state.js';

const TOKEN_KEY = 'veil.token';
/* Realtime visitors and today's numbers are re-read this often while the
 * tab is visible. Tests shorten it with VEIL_TEST_REFRESH_MS (set before
 * the page loads; it can only make the interval shorter). */
const REFRESH_MS = Math.min(30_000, Number(globalThis.VEIL_TEST_REFRESH_MS) || 30_000);
const BASE_METRICS = ['visitors', 'pageviews', 'bounce_rate', 'visit_duration', 'scroll_depth'];
/* The cards of the view: the conversion rate too under a goal filter
 * (Plausible's habit; the API answers it there, docs/API.md "Goals"). */
const topMetrics = () =>
  state.filters.some((f) => f.property === 'event:goal' && !f.negate) ? [...BASE_METRICS, 'conversion_rate'] : BASE_METRICS;
const METRIC_NAMES = {
  visitors: 'Unique visitors',
  pageviews: 'Pageviews',
  bounce_rate: 'Bounce rate',
  visit_duration: 'Visit duration',
  scroll_depth: 'Scroll depth',
  conversion_rate: 'Conversion rate',
};
/* Ratios compare in percentage points, counts and durations in percent. */
const POINTS = new Set(['bounce_rate', 'scroll_depth', 'conversion_rate']);

let refreshTimer = null;
let current = null; /* the last aggregate results, for the comparison */
let answered = null; /* the metrics the API answered for this view */
let previous = null; /* the previous period's aggregate results */

/* ---- errors ---- */

function showError(err) {
  const box = $('error');
  box.textContent = describeError(err, state.site);
  box.dataset.status = err instanceof ApiError ? String(err.status) : '';
  box.hidden = false;
  if (err instanceof ApiError && err.status === 401) signOut({ keepError: true });
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

/* Errors of the current view only. */
const failed = (gen) => (err) => {
  if (gen === state.generation) showError(err);
};

/* ---- sign in / out ---- */

function showLogin() {
  $('login').hidden = false;
  $('controls').hidden = true;
  $('dashboard').hidden = true;
  $('no-sites').hidden = true;
  $('token').focus();
}

function signOut({ keepError = false } = {}) {
  sessionStorage.removeItem(TOKEN_KEY);
  auth.token = null;
  state.generation++;
  stopRefresh();
  if (!keepError) clearError();
  showLogin();
}

async function signIn(token) {
  auth.token = token;
  const gen = ++state.generation;
  let data;
  try {
    data = await api('sites', {});
  } catch (err) {
    if (gen === state.generation) showError(err);
    return;
  }
  if (gen !== state.generation) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  clearError();
  $('login').hidden = true;
  $('token').value = '';
  state.sites = (data.sites || []).map((s) => s.domain);
  state.zones = Object.fromEntries((data.sites || []).map((s) => [s.domain, s.timezone || 'UTC']));
  const select = $('site');
  select.replaceChildren(...state.sites.map((d) => el('option', { value: d, text: d })));
  $('controls').hidden = false;
  if (state.sites.length === 0) {
    $('no-sites').hidden = false;
    $('dashboard').hidden = true;
    return;
  }
  $('no-sites').hidden = true;
  if (!state.sites.includes(state.site)) state.site = state.sites[0];
  select.value = state.site;
  $('dashboard').hidden = false;
  refresh();
}

/* ---- loading ---- */

function refresh() {
  if (!auth.token || !state.site) return;
  if (state.period === 'custom' && !(state.from && state.to && state.from <= state.to)) {
    showError(new Error('Pick a custom range whose first day is on or before its last day.'));
    return;
  }
  clearError();
  writeHash(PANELS);
  renderFilters();
  const gen = ++state.generation;
  loadAggregate(gen);
  loadTimeseries(gen, failed(gen));
  loadAllPanels(gen);
  startRefresh();
}

/* ---- top metrics and the comparison ---- */

function metricNode(metric) {
  return document.querySelector(`.metric[data-metric="${metric}"]`);
}

function setMetric(metric, value) {
  const node = metricNode(metric).querySelector('.metric-value');
  node.dataset.value = value == null ? '' : String(value);
  node.textContent = value == null ? '…' : value === 'n/a' ? '—' : formatMetric(metric, value);
}

function setChange(metric) {
  const node = metricNode(metric).querySelector('.metric-change');
  const cur = current?.[metric]?.value;
  const prev = previous?.[metric]?.value;
  if (!state.compare || cur == null || prev == null) {
    node.hidden = true;
    node.textContent = '';
    node.dataset.previous = '';
    node.dataset.change = '';
    return;
  }
  let change;
  let text;
  if (POINTS.has(metric)) {
    change = cur - prev;
    text = `${change > 0 ? '+' : ''}${change} pts`;
  } else if (prev === 0) {
    change = null;
    text = cur === 0 ? '±0%' : 'new';
  } else {
    change = Math.round((100 * (cur - prev)) / prev);
    text = `${change > 0 ? '+' : ''}${change}%`;
  }
  node.hidden = false;
  node.dataset.previous = String(prev);
  node.dataset.change = change == null ? '' : String(change);
  /* Up is good except for the bounce rate. */
  const good = metric === 'bounce_rate' ? -change : change;
  node.className = `metric-change ${good > 0 ? 'up' : good < 0 ? 'down' : 'flat'}`;
  node.replaceChildren(el('span', { class: 'delta', text }), ` vs ${formatMetric(metric, prev)}`);
}

/* The aggregate of the view; with `quiet` (self-refresh) the shown numbers
 * stay until the new ones arrive and the previous period is not re-read. */
async function loadAggregate(gen, { quiet = false } = {}) {
  const TOP_METRICS = topMetrics();
  const card = metricNode('conversion_rate');
  card.hidden = !TOP_METRICS.includes('conversion_rate');
  if (card.hidden) setMetric('conversion_rate', 'n/a');
  if (!quiet) {
    current = null;
    answered = null;
    previous = null;
    $('metrics-note').replaceChildren();
    $('compare-note').replaceChildren();
    $('compare-note').dataset.range = '';
    for (const m of TOP_METRICS) {
      setMetric(m, null);
      setChange(m);
    }
  }
  /* A metric the API cannot answer for this view (e.g. bounce rate under
   * a filter) is dropped by name and shown as "—" with the reason. */
  let answer;
  try {
    answer = await apiMetrics('stats/aggregate', { site_id: state.site, ...rangeParams(), ...filterParams() }, TOP_METRICS);
  } catch (err) {
    if (gen !== state.generation) return;
    if (isRefusal(err) && state.filters.length > 0) {
      for (const m of TOP_METRICS) setMetric(m, 'n/a');
      $('metrics-note').replaceChildren(
        el('p', { class: 'note unavailable', text: `The stats API cannot answer the totals with these filters: ${err.message}.` })
      );
    } else showError(err);
    return;
  }
  if (gen !== state.generation) return;
  const data = answer.data;
  answered = answer.metrics;
  current = data.results || {};
  for (const m of TOP_METRICS) {
    setMetric(m, answer.metrics.includes(m) ? current[m]?.value ?? 0 : 'n/a');
    setChange(m);
  }
  $('metrics-note').replaceChildren(
    ...answer.dropped.map((d) =>
      el('p', { class: 'note unavailable', 'data-metric': d.metric, text: `${METRIC_NAMES[d.metric]}: not available for this view (${d.reason}).` })
    )
  );
  renderMeta(data.meta || {});
  if (state.compare && !quiet) loadComparison(gen, data.meta || {});
}

/* The previous period's totals and dotted line: same filters, the same
 * number of days (or whole months) right before the range. */
async function loadComparison(gen, meta) {
  const TOP_METRICS = topMetrics();
  const note = (text) => $('compare-note').replaceChildren(text ? el('span', { text }) : '');
  if (!meta.date_range) return;
  if (meta.clipped_to_retention) {
    note('Comparison: the previous period is past retention, so there is nothing to compare with.');
    clearPrevious('past retention.');
    return;
  }
  const prev = previousRange(meta.date_range);
  note(`Compared with ${formatDay(prev[0])} – ${formatDay(prev[1])}`);
  $('compare-note').dataset.range = prev.join(',');
  loadPreviousTimeseries(gen, prev);
  try {
    const { data } = await apiMetrics(
      'stats/aggregate',
      { site_id: state.site, period: 'custom', date: prev.join(','), ...filterParams() },
      TOP_METRICS
    );
    if (gen !== state.generation) return;
    if (data.meta?.clipped_to_retention) {
      note(`Comparison: part of ${formatDay(prev[0])} – ${formatDay(prev[1])} is past retention, so it is not compared.`);
      clearPrevious('partly past retention.');
      return;
    }
    previous = data.results || {};
    for (const m of TOP_METRICS) setChange(m);
  } catch (err) {
    if (gen === state.generation) note(`Comparison not available: ${err.message}.`);
  }
}

function renderMeta(meta) {
  state.dateRange = meta.date_range || null;
  const range = $('range');
  if (state.dateRange) {
    const [first, last] = state.dateRange;
    range.textContent =
      first === last ? `${formatDay(first)} (${zoneLabel()})` : `${formatDay(first)} – ${formatDay(last)} (${zoneLabel()} days)`;
    if (meta.clipped_to_retention)
      range.append(el('span', { class: 'clipped', text: ' · older days have expired (retention) and are not counted' }));
  }
  const privacy = $('privacy');
  privacy.replaceChildren();
  if (meta.dp_epsilon > 0) {
    privacy.append(
      el(
        'p',
        { class: 'notice dp', 'data-epsilon': String(meta.dp_epsilon) },
        el('strong', { text: `Differential privacy is on (ε = ${meta.dp_epsilon}). ` }),
        'Every number on this page has calibrated random noise added, so that no single ' +
          'visitor can be told apart; differences of a few units are not meaningful, ' +
          'and small counts are rough.'
      )
    );
  }
  $('visitors-note').textContent = meta.visitors ? `* ${meta.visitors}` : '';
}

/* ---- filter pills ---- */

function renderFilters() {
  const bar = $('filters');
  bar.hidden = state.filters.length === 0;
  const pills = state.filters.map((f) => {
    const op = f.negate ? 'is not' : 'is';
    const remove = el('button', { type: 'button', class: 'pill-remove', text: '×', 'aria-label': `Remove filter ${propertyName(f.property)} ${op} ${f.value}` });
    remove.addEventListener('click', () => {
      removeFilter(f.property);
      refresh();
    });
    /* "is" / "is not": the API answers both exactly (docs/API.md "Filters") */
    const toggle = el('button', { type: 'button', class: 'pill-op', text: op, title: f.negate ? 'Show only this value' : 'Exclude this value', 'aria-label': `${propertyName(f.property)} ${op}: switch` });
    toggle.addEventListener('click', () => {
      toggleFilter(f.property);
      refresh();
    });
    return el(
      'span',
      { class: 'pill', 'data-property': f.property, 'data-value': f.value, 'data-negate': f.negate ? '1' : '0' },
      `${propertyName(f.property)} `,
      toggle,
      ' ',
      el('strong', { text: f.value }),
      remove
    );
  });
  const clear = el('button', { type: 'button', class: 'link-button', id: 'clear-filters', text: 'Clear filters' });
  clear.addEventListener('click', () => {
    state.filters = [];
    refresh();
  });
  bar.replaceChildren(...pills, ...(pills.length > 1 ? [clear] : []));
}

function addFilter(property, value) {
  setFilter(property, value);
  refresh();
}

/* ---- realtime and self-refresh ---- */

function loadRealtime() {
  if (!auth.token || !state.site || document.hidden) return;
  const gen = state.generation;
  const site = state.site;
  api('stats/realtime/visitors', { site_id: site }).then((n) => {
    if (site !== state.site || !auth.token) return;
    const node = $('realtime');
    node.dataset.value = String(n);
    node.textContent = formatInt(n);
  }, failed(gen));
}

/* While the tab is visible: realtime every REFRESH_MS, and the totals and
 * chart too when the range reaches the site's today. Breakdown tables are not re-read (that would
 * drop "Show more" pages under the reader). */
function tick() {
  if (!auth.token || !state.site || document.hidden) return;
  loadRealtime();
  if (state.dateRange && state.dateRange[1] >= siteToday()) {
    const gen = state.generation;
    loadAggregate(gen, { quiet: true });
    loadTimeseries(gen, failed(gen), { quiet: true });
    $('dashboard').dataset.refreshed = String(Number($('dashboard').dataset.refreshed || 0) + 1);
  }
}

function startRefresh() {
  stopRefresh();
  $('realtime').textContent = '…';
  $('realtime').dataset.value = '';
  loadRealtime();
  refreshTimer = setInterval(tick, REFRESH_MS);
}

function stopRefresh() {
  if (refreshTimer) clearInterval(refreshTimer);
  refreshTimer = null;
}

/* ---- wiring ---- */

function syncPeriodControls() {
  $('period').value = state.period;
  $('custom-range').hidden = state.period !== 'custom';
  $('compare').checked = state.compare;
  if (state.period === 'custom') {
    if (!state.to) state.to = siteToday();
    if (!state.from) state.from = addDays(state.to, -13);
    $('from').value = state.from;
    $('to').value = state.to;
  }
}

function downloadTimeseriesCsv() {
  const range = state.dateRange ? `${state.dateRange[0]}_${state.dateRange[1]}` : state.period;
  const name = `veil_${fileSafe(state.site)}_timeseries_${range}.csv`;
  const interval = plottedInterval();
  const params = {
    site_id: state.site,
    ...rangeParams(),
    ...filterParams(),
    /* The metrics the API answered for this view's totals; hours keep no
     * scroll depth (the API reads 0 there): leave it out. */
    metrics: (answered || topMetrics()).filter((m) => interval !== 'hour' || m !== 'scroll_depth').join(','),
    ...(interval === 'hour' ? { interval } : {}),
  };
  downloadCsv('stats/timeseries', params, name, $('timeseries-csv'), showError);
}

function init() {
  readHash(PANELS);
  buildPanels({ report: showError, onFilter: addFilter, onTab: () => writeHash(PANELS) });
  syncPeriodControls();

  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = $('token').value.trim();
    if (token) signIn(token);
  });
  $('sign-out').addEventListener('click', () => signOut());
  $('controls').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.from = $('from').value;
    state.to = $('to').value;
    refresh();
  });
  $('site').addEventListener('change', () => {
    state.site = $('site').value;
    refresh();
  });
  $('period').addEventListener('change', () => {
    state.period = $('period').value;
    syncPeriodControls();
    refresh();
  });
  $('compare').addEventListener('change', () => {
    state.compare = $('compare').checked;
    $('compare-note').replaceChildren();
    refresh();
  });
  $('timeseries-csv').addEventListener('click', downloadTimeseriesCsv);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) tick();
  });
  if (typeof ResizeObserver === 'function') new ResizeObserver(resizeChart).observe($('chart'));
  else window.addEventListener('resize', resizeChart);

  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else showLogin();
}

init();
