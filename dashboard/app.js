/* app.js - the Veil dashboard: token entry, site and period pickers, top
 * metrics, a uPlot time series, breakdown tables, realtime visitors and CSV
 * downloads, all read from the stats API on the same origin (docs/API.md,
 * docs/DASHBOARD.md).
 *
 * It must never store the API token anywhere but this tab's sessionStorage
 * (no localStorage, no cookie), never put it in a URL (it travels only in
 * the Authorization header), never load anything from another origin, and
 * never insert a value from the API as HTML: row values are page paths and
 * referrers that anyone can send, so they are set with textContent only. */
import uPlot from 'uplot';

const TOKEN_KEY = 'veil.token';
const API_BASE = 'api/v1/'; /* relative: works behind a path prefix too */
const REALTIME_MS = 30_000;
const PAGE_SIZE = 100;
const CSV_LIMIT = 1000;
const CHART_HEIGHT = 260;

/* Breakdown panels; every tab is one `property` of the breakdown endpoint.
 * `column` is the row key the API answers with (docs/API.md). */
const PANELS = [
  {
    id: 'pages',
    title: 'Pages',
    tabs: [
      { label: 'Top pages', property: 'event:page', column: 'page', metrics: ['visitors', 'pageviews'] },
      { label: 'Entry pages', property: 'visit:entry_page', column: 'entry_page', metrics: ['visitors', 'visits'] },
    ],
  },
  {
    id: 'sources',
    title: 'Sources',
    tabs: [
      { label: 'Sources', property: 'visit:source', column: 'source', metrics: ['visitors', 'visits'] },
      { label: 'UTM source', property: 'visit:utm_source', column: 'utm_source', metrics: ['visitors', 'visits'] },
      { label: 'UTM medium', property: 'visit:utm_medium', column: 'utm_medium', metrics: ['visitors', 'visits'] },
      { label: 'UTM campaign', property: 'visit:utm_campaign', column: 'utm_campaign', metrics: ['visitors', 'visits'] },
    ],
  },
  {
    id: 'locations',
    title: 'Locations',
    tabs: [
      { label: 'Countries', property: 'visit:country', column: 'country', metrics: ['visitors', 'visits'], country: true },
      { label: 'Regions', property: 'visit:region', column: 'region', metrics: ['visitors', 'visits'] },
      { label: 'Cities', property: 'visit:city', column: 'city', metrics: ['visitors', 'visits'] },
    ],
  },
  {
    id: 'devices',
    title: 'Devices',
    tabs: [
      { label: 'Browsers', property: 'visit:browser', column: 'browser', metrics: ['visitors', 'visits'] },
      { label: 'OS', property: 'visit:os', column: 'os', metrics: ['visitors', 'visits'] },
      { label: 'Devices', property: 'visit:device', column: 'device', metrics: ['visitors', 'visits'] },
      { label: 'Screens', property: 'visit:screen', column: 'screen', metrics: ['visitors', 'visits'] },
    ],
  },
  {
    id: 'events',
    title: 'Events',
    tabs: [
      { label: 'Events', property: 'event:name', column: 'name', metrics: ['visitors', 'events'] },
      /* The API cannot list property keys, so the operator types one. */
      { label: 'Event properties', property: 'event:props:', column: null, metrics: ['visitors', 'events'], prop: true },
    ],
  },
];

const METRIC_LABELS = {
  visitors: 'Visitors',
  pageviews: 'Pageviews',
  visits: 'Visits',
  events: 'Events',
};

const TOP_METRICS = ['visitors', 'pageviews', 'bounce_rate', 'visit_duration', 'scroll_depth'];

/* ---- small helpers ---- */

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role') node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

const numberFormat = new Intl.NumberFormat();
const formatInt = (n) => numberFormat.format(n);

function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function formatMetric(metric, value) {
  switch (metric) {
    case 'bounce_rate':
    case 'scroll_depth':
      return `${value}%`;
    case 'visit_duration':
      return formatDuration(value);
    default:
      return formatInt(value);
  }
}

const dayFormat = new Intl.DateTimeFormat(undefined, {
  day: 'numeric',
  month: 'short',
  year: 'numeric',
  timeZone: 'UTC',
});
const formatDay = (iso) => dayFormat.format(new Date(`${iso}T00:00:00Z`));

function todayUtc() {
  return new Date().toISOString().slice(0, 10);
}

function addDays(iso, n) {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

let countryNames = null;
try {
  countryNames = new Intl.DisplayNames(undefined, { type: 'region' });
} catch {
  countryNames = null;
}
function countryName(code) {
  if (!countryNames || !/^[A-Z]{2}$/.test(code)) return null;
  try {
    const name = countryNames.of(code);
    return name && name !== code ? name : null;
  } catch {
    return null;
  }
}

/* ---- the API ---- */

class ApiError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

/* GET api/v1/<path>?<params> with the token in the Authorization header.
 * Resolves with parsed JSON (or a Blob with csv); rejects with ApiError. */
async function api(path, params, { csv = false } = {}) {
  const query = new URLSearchParams(params);
  if (csv) query.set('format', 'csv');
  let res;
  try {
    res = await fetch(`${API_BASE}${path}?${query}`, {
      headers: {
        Authorization: `Bearer ${state.token}`,
        Accept: csv ? 'text/csv' : 'application/json',
      },
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  } catch (err) {
    throw new ApiError(0, `cannot reach the stats API (${err.message})`);
  }
  if (!res.ok) {
    let reason = '';
    try {
      reason = (await res.json()).error || '';
    } catch {
      reason = '';
    }
    throw new ApiError(res.status, reason || res.statusText || 'request failed');
  }
  if (csv) return res.blob();
  return res.json();
}

/* ---- state ---- */

const state = {
  token: null,
  sites: [],
  site: '',
  period: '30d',
  from: '',
  to: '',
  propKey: '',
  tabs: Object.fromEntries(PANELS.map((p) => [p.id, 0])),
  generation: 0,
  chart: null,
  realtimeTimer: null,
  dateRange: null,
};

function rangeParams() {
  if (state.period === 'custom') return { period: 'custom', date: `${state.from},${state.to}` };
  return { period: state.period };
}

function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  if (h.get('site')) state.site = h.get('site');
  const period = h.get('period');
  if (period && [...$('period').options].some((o) => o.value === period)) state.period = period;
  if (h.get('from')) state.from = h.get('from');
  if (h.get('to')) state.to = h.get('to');
  if (h.get('prop')) state.propKey = h.get('prop');
  for (const p of PANELS) {
    const t = Number(h.get(p.id));
    if (Number.isInteger(t) && t >= 0 && t < p.tabs.length) state.tabs[p.id] = t;
  }
}

/* Site, period and tabs in the fragment, so a reload or a shared link
 * shows the same view. Never the token. */
function writeHash() {
  const h = new URLSearchParams({ site: state.site, period: state.period });
  if (state.period === 'custom') {
    h.set('from', state.from);
    h.set('to', state.to);
  }
  if (state.propKey) h.set('prop', state.propKey);
  for (const p of PANELS) if (state.tabs[p.id]) h.set(p.id, String(state.tabs[p.id]));
  history.replaceState(null, '', `#${h}`);
}

/* ---- errors ---- */

function describeError(err) {
  if (!(err instanceof ApiError)) return String(err.message || err);
  switch (err.status) {
    case 0:
      return `Cannot reach the stats API: ${err.message}.`;
    case 400:
      return `The stats API rejected the query (400 Bad Request): ${err.message}.`;
    case 401:
      return `The stats API refused the token (401 Unauthorized): ${err.message}. Enter a valid token.`;
    case 403:
      return `This token may not read ${state.site} (403 Forbidden): ${err.message}.`;
    case 503:
      return `The stats API's storage is unavailable (503): ${err.message}.`;
    default:
      return `The stats API answered ${err.status}: ${err.message}.`;
  }
}

function showError(err) {
  const box = $('error');
  box.textContent = describeError(err);
  box.dataset.status = err instanceof ApiError ? String(err.status) : '';
  box.hidden = false;
  if (err instanceof ApiError && err.status === 401) signOut({ keepError: true });
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

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
  state.token = null;
  state.generation++;
  stopRealtime();
  if (!keepError) clearError();
  showLogin();
}

async function signIn(token) {
  state.token = token;
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
  if (!state.token || !state.site) return;
  if (state.period === 'custom' && !(state.from && state.to && state.from <= state.to)) {
    showError(new Error('Pick a custom range whose first day is on or before its last day.'));
    return;
  }
  clearError();
  writeHash();
  const gen = ++state.generation;
  loadAggregate(gen);
  loadTimeseries(gen);
  for (const p of PANELS) loadPanel(p, gen);
  startRealtime();
}

function guard(gen, fn) {
  return (value) => {
    if (gen === state.generation) fn(value);
  };
}

function failed(gen) {
  return (err) => {
    if (gen === state.generation) showError(err);
  };
}

function loadAggregate(gen) {
  for (const m of TOP_METRICS) setMetric(m, null);
  api('stats/aggregate', { site_id: state.site, ...rangeParams(), metrics: TOP_METRICS.join(',') })
    .then(guard(gen, renderAggregate), failed(gen));
}

function setMetric(metric, value) {
  const node = document.querySelector(`.metric[data-metric="${metric}"] .metric-value`);
  node.dataset.value = value == null ? '' : String(value);
  node.textContent = value == null ? '…' : formatMetric(metric, value);
}

function renderAggregate(data) {
  for (const m of TOP_METRICS) setMetric(m, data.results?.[m]?.value ?? 0);
  renderMeta(data.meta || {});
}

function renderMeta(meta) {
  state.dateRange = meta.date_range || null;
  const range = $('range');
  if (state.dateRange) {
    const [first, last] = state.dateRange;
    range.textContent =
      first === last ? `${formatDay(first)} (UTC)` : `${formatDay(first)} – ${formatDay(last)} (UTC days)`;
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

/* ---- time series ---- */

function loadTimeseries(gen) {
  $('chart').dataset.points = '';
  const monthly = state.period === '6mo' || state.period === '12mo';
  $('chart-title').textContent = `Visitors and pageviews per ${monthly ? 'month' : 'day'}`;
  api('stats/timeseries', { site_id: state.site, ...rangeParams(), metrics: 'visitors,pageviews' })
    .then(guard(gen, renderTimeseries), failed(gen));
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

const Y_INCRS = [1, 2, 5];
for (let i = 1; i <= 9; i++) for (const b of [1, 2, 5]) Y_INCRS.push(b * 10 ** i);

const shortDay = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', timeZone: 'UTC' });
const shortMonth = new Intl.DateTimeFormat(undefined, { month: 'short', year: 'numeric', timeZone: 'UTC' });

function renderTimeseries(data) {
  const rows = data.results || [];
  const monthly = state.period === '6mo' || state.period === '12mo';
  const xs = rows.map((r) => Date.parse(`${r.date}T00:00:00Z`) / 1000);
  const chartData = [xs, rows.map((r) => r.visitors ?? 0), rows.map((r) => r.pageviews ?? 0)];
  const box = $('chart');
  /* The plotted numbers, also for tests and for reading without a mouse. */
  box.dataset.points = String(rows.length);
  box.dataset.dates = rows.map((r) => r.date).join(',');
  box.dataset.visitors = chartData[1].join(',');
  box.dataset.pageviews = chartData[2].join(',');
  if (state.chart) {
    state.chart.destroy();
    state.chart = null;
  }
  box.replaceChildren();
  const text = cssVar('--muted');
  const grid = cssVar('--grid');
  const c1 = cssVar('--series-1');
  const c2 = cssVar('--series-2');
  const bucket = monthly ? shortMonth : shortDay;
  const label = (ts) => bucket.format(new Date(ts * 1000));
  /* Half a bucket of room on each side, so the first and last points (and
   * a single day) are not drawn on the frame. */
  const pad = (monthly ? 15 : 0.5) * 86400;
  const axis = {
    stroke: text,
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
    font: '12px system-ui, sans-serif',
  };
  const count = (u, v) => (v == null ? '–' : formatInt(v));
  const opts = {
    width: Math.max(200, box.clientWidth),
    height: CHART_HEIGHT,
    scales: {
      x: { time: false, range: (u, min, max) => [min - pad, max + pad] },
      y: { range: (u, min, max) => [0, max > 0 ? Math.ceil(max * 1.15) : 1] },
    },
    series: [
      { label: monthly ? 'Month' : 'Day', value: (u, ts) => (ts == null ? '–' : label(ts)) },
      {
        label: 'Visitors',
        stroke: c1,
        fill: cssVar('--series-1-fill'),
        width: 2,
        value: count,
        points: { show: rows.length <= 62, size: 6, fill: c1 },
      },
      {
        label: 'Pageviews',
        stroke: c2,
        width: 2,
        dash: [6, 4],
        value: count,
        points: { show: rows.length <= 62, size: 5, fill: c2 },
      },
    ],
    axes: [
      {
        ...axis,
        /* One tick per bucket, thinned to what fits the width. */
        splits: (u) => {
          const fit = Math.max(1, Math.floor(u.bbox.width / devicePixelRatio / (monthly ? 84 : 64)));
          const step = Math.ceil(xs.length / fit);
          return xs.filter((_, i) => i % step === 0);
        },
        values: (u, splits) => splits.map(label),
      },
      { ...axis, incrs: Y_INCRS, size: 50, values: (u, vals) => vals.map((v) => formatInt(v)) },
    ],
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    /* Values show in the legend only while a day is pointed at. */
    hooks: { setLegend: [(u) => u.root.classList.toggle('idle', u.cursor.idx == null)] },
  };
  state.chart = new uPlot(opts, chartData, box);
}

function resizeChart() {
  if (!state.chart) return;
  const w = Math.max(200, $('chart').clientWidth);
  if (w !== state.chart.width) state.chart.setSize({ width: w, height: CHART_HEIGHT });
}

/* ---- breakdown panels ---- */

function buildPanels() {
  const host = $('panels');
  for (const p of PANELS) {
    const tabs = el('div', { class: 'tabs', role: 'tablist', 'aria-label': p.title });
    p.tabButtons = p.tabs.map((t, i) => {
      const b = el('button', {
        type: 'button',
        class: 'tab',
        role: 'tab',
        text: t.label,
        'data-property': t.property,
        'aria-controls': `panel-${p.id}-body`,
      });
      b.addEventListener('click', () => {
        if (state.tabs[p.id] === i) return;
        state.tabs[p.id] = i;
        writeHash();
        loadPanel(p, state.generation);
      });
      tabs.append(b);
      return b;
    });
    const csv = el('button', { type: 'button', class: 'csv', text: 'CSV', title: 'Download this table as CSV' });
    csv.addEventListener('click', () => downloadPanelCsv(p));

    const propInput = el('input', {
      type: 'text',
      name: 'prop-key',
      placeholder: 'property key, e.g. plan',
      autocomplete: 'off',
      spellcheck: false,
      maxLength: 64,
      value: state.propKey,
    });
    const propForm = el(
      'form',
      { class: 'prop-form', hidden: true },
      el('label', { class: 'field inline' }, el('span', { text: 'Property' }), propInput),
      el('button', { type: 'submit', text: 'Show' })
    );
    propForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      state.propKey = propInput.value.trim();
      writeHash();
      loadPanel(p, state.generation);
    });

    const head = el('tr');
    const table = el('table', { class: 'rows' }, el('thead', {}, head), el('tbody'));
    const more = el('button', { type: 'button', class: 'more', text: 'Show more', hidden: true });
    more.addEventListener('click', () => loadPanel(p, state.generation, p.page + 1));
    const card = el(
      'section',
      { class: 'card panel', id: `panel-${p.id}`, 'data-panel': p.id },
      el('div', { class: 'card-head' }, el('h2', { text: p.title }), csv),
      tabs,
      propForm,
      el('div', { class: 'table-wrap', id: `panel-${p.id}-body`, role: 'tabpanel' }, table),
      more,
      el('div', { class: 'panel-notes' })
    );
    Object.assign(p, { card, head, table, more, propForm, propInput, notes: card.querySelector('.panel-notes') });
    host.append(card);
  }
}

function tabColumn(tab) {
  return tab.prop ? state.propKey : tab.column;
}

function tabProperty(tab) {
  return tab.prop ? `event:props:${state.propKey}` : tab.property;
}

/* Load page `page` of the panel's active tab; page 1 replaces the rows,
 * later pages append ("Show more"). */
function loadPanel(p, gen, page = 1) {
  const tab = p.tabs[state.tabs[p.id]];
  p.tabButtons.forEach((b, i) => b.setAttribute('aria-selected', String(i === state.tabs[p.id])));
  p.propForm.hidden = !tab.prop;
  const req = (p.req = (p.req || 0) + 1);
  const current = () => gen === state.generation && req === p.req;
  p.page = page;
  p.more.hidden = true;
  const body = p.table.tBodies[0];
  if (page === 1) {
    p.head.replaceChildren(
      el('th', { scope: 'col', class: 'value', text: tab.prop ? state.propKey || 'Property' : tab.label }),
      ...tab.metrics.map((m) => el('th', { scope: 'col', class: 'num', text: METRIC_LABELS[m] }))
    );
    body.replaceChildren();
    p.notes.replaceChildren();
    p.rows = [];
  }
  if (tab.prop && !state.propKey) {
    p.card.dataset.state = 'idle';
    p.notes.append(
      el('p', {
        class: 'hint',
        text: 'Type the key of a custom event property (the tracker\'s props, e.g. "plan") to break events down by its values.',
      })
    );
    return;
  }
  p.card.dataset.state = 'loading';
  const params = {
    site_id: state.site,
    ...rangeParams(),
    property: tabProperty(tab),
    metrics: tab.metrics.join(','),
    limit: String(PAGE_SIZE),
    page: String(page),
  };
  api('stats/breakdown', params).then(
    (data) => {
      if (current()) renderPanel(p, tab, data, page);
    },
    (err) => {
      if (!current()) return;
      p.card.dataset.state = 'error';
      showError(err);
    }
  );
}

function renderPanel(p, tab, data, page) {
  const column = tabColumn(tab);
  const results = data.results || [];
  const meta = data.meta || {};
  p.rows.push(...results);
  const body = p.table.tBodies[0];
  const max = Math.max(1, ...p.rows.map((r) => r.visitors || 0));
  for (const r of results) {
    const value = String(r[column] ?? '');
    const other = value === '(other)';
    const cell = el('td', { class: 'value', 'data-value': value, title: value });
    const bar = el('span', { class: 'bar' });
    bar.style.width = `${Math.round((100 * (r.visitors || 0)) / max)}%`;
    const label = el('span', { class: 'label' });
    const name = tab.country && !other ? countryName(value) : null;
    if (name) label.append(name, el('span', { class: 'code', text: ` ${value}` }));
    else label.textContent = value === '' ? '(none)' : value;
    cell.append(bar, label);
    const tr = el('tr', other ? { class: 'other' } : {}, cell);
    for (const m of tab.metrics) {
      const v = r[m] ?? 0;
      tr.append(el('td', { class: 'num', 'data-metric': m, 'data-value': String(v), text: formatInt(v) }));
    }
    body.append(tr);
  }
  /* Bars of earlier pages are relative to the same maximum only on page 1;
   * rows come sorted by visitors, so the first page holds the maximum. */
  if (p.rows.length === 0 && page === 1)
    body.append(el('tr', { class: 'empty' }, el('td', { colSpan: 1 + tab.metrics.length, text: 'No data for this period.' })));
  p.more.hidden = results.length < PAGE_SIZE;
  p.card.dataset.state = 'ready';
  renderPanelNotes(p, meta);
}

function renderPanelNotes(p, meta) {
  p.notes.replaceChildren();
  const k = meta.k_anonymity;
  const folded = meta.folded_rows || 0;
  const hasOther = p.rows.some((r) => Object.values(r).includes('(other)'));
  if (folded > 0) {
    const rows = folded === 1 ? '1 value' : `${formatInt(folded)} values`;
    const text = meta.other_suppressed
      ? `${rows} seen by fewer than ${k} visitors ${folded === 1 ? 'is' : 'are'} hidden (k-anonymity, k = ${k}): ` +
        'together they still had fewer than k visitors, so no "(other)" row is shown.'
      : `${rows} seen by fewer than ${k} visitors ${folded === 1 ? 'is' : 'are'} folded into "(other)" (k-anonymity, k = ${k}).`;
    p.notes.append(el('p', { class: 'note kanon', 'data-folded': String(folded), text }));
  } else if (meta.other_suppressed) {
    p.notes.append(
      el('p', {
        class: 'note kanon',
        'data-folded': '0',
        text: `Rare values beyond the daily row cap are withheld: together they had fewer than ${k} visitors (k-anonymity).`,
      })
    );
  } else if (hasOther) {
    p.notes.append(
      el('p', {
        class: 'note',
        text: '"(other)" counts values beyond the per-day row cap of the roll-up.',
      })
    );
  }
}

/* ---- CSV ---- */

function fileSafe(s) {
  return String(s).replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
}

function rangeForFile() {
  if (state.dateRange) return `${state.dateRange[0]}_${state.dateRange[1]}`;
  return state.period;
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function downloadCsv(path, params, name, button) {
  button.disabled = true;
  try {
    const blob = await api(path, params, { csv: true });
    saveBlob(blob, name);
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

function downloadPanelCsv(p) {
  const tab = p.tabs[state.tabs[p.id]];
  if (tab.prop && !state.propKey) return;
  const property = tabProperty(tab);
  const name = `veil_${fileSafe(state.site)}_${fileSafe(property.replace(/:/g, '-'))}_${rangeForFile()}.csv`;
  const params = {
    site_id: state.site,
    ...rangeParams(),
    property,
    metrics: tab.metrics.join(','),
    limit: String(CSV_LIMIT),
  };
  downloadCsv('stats/breakdown', params, name, p.card.querySelector('.csv'));
}

function downloadTimeseriesCsv() {
  const name = `veil_${fileSafe(state.site)}_timeseries_${rangeForFile()}.csv`;
  const params = { site_id: state.site, ...rangeParams(), metrics: TOP_METRICS.join(',') };
  downloadCsv('stats/timeseries', params, name, $('timeseries-csv'));
}

/* ---- realtime ---- */

function loadRealtime() {
  if (!state.token || !state.site || document.hidden) return;
  const gen = state.generation;
  const site = state.site;
  api('stats/realtime/visitors', { site_id: site }).then(
    (n) => {
      if (site !== state.site || !state.token) return;
      const node = $('realtime');
      node.dataset.value = String(n);
      node.textContent = formatInt(n);
    },
    failed(gen)
  );
}

function startRealtime() {
  stopRealtime();
  $('realtime').textContent = '…';
  $('realtime').dataset.value = '';
  loadRealtime();
  state.realtimeTimer = setInterval(loadRealtime, REALTIME_MS);
}

function stopRealtime() {
  if (state.realtimeTimer) clearInterval(state.realtimeTimer);
  state.realtimeTimer = null;
}

/* ---- wiring ---- */

function syncPeriodControls() {
  $('period').value = state.period;
  $('custom-range').hidden = state.period !== 'custom';
  if (state.period === 'custom') {
    if (!state.to) state.to = todayUtc();
    if (!state.from) state.from = addDays(state.to, -13);
    $('from').value = state.from;
    $('to').value = state.to;
  }
}

function init() {
  readHash();
  buildPanels();
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
  $('timeseries-csv').addEventListener('click', downloadTimeseriesCsv);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) loadRealtime();
  });
  if (typeof ResizeObserver === 'function') new ResizeObserver(resizeChart).observe($('chart'));
  else window.addEventListener('resize', resizeChart);

  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else showLogin();
}

init();
