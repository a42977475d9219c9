/* panels.js - the breakdown cards: one `stats/breakdown` call per visible
 * tab, 100 rows a page with "Show more", per-row bounce rate and visit
 * duration for visit properties, click a row to filter by it, k-anonymity
 * notes, CSV.
 *
 * It must never insert a row value as HTML (textContent only), never show
 * a number the API did not give for this exact query (a refused property,
 * metric or filter is shown as the API's reason, not as other numbers), and
 * never offer "(other)" or an empty value as a filter. */
import { api, downloadCsv, fileSafe, isRefusal } from './api.js';
import { $, countryName, el, formatInt, formatMetric } from './format.js';
import { filterable, filterParams, rangeParams, state } from './state.js';

const PAGE_SIZE = 100;
const CSV_LIMIT = 1000;
const VISIT = ['visitors', 'visits'];
/* Per-row metrics of visit properties (Plausible's v1 breakdown has them). */
const ROW_EXTRA = ['bounce_rate', 'visit_duration'];

/* Breakdown cards; every tab is one `property` of the breakdown endpoint.
 * `column` is the row key the API answers with (docs/API.md); `visit`
 * tabs ask for ROW_EXTRA too. */
export const PANELS = [
  {
    id: 'pages',
    title: 'Pages',
    tabs: [
      { label: 'Top pages', property: 'event:page', column: 'page', metrics: ['visitors', 'pageviews'] },
      { label: 'Entry pages', property: 'visit:entry_page', column: 'entry_page', metrics: VISIT, visit: true },
      { label: 'Exit pages', property: 'visit:exit_page', column: 'exit_page', metrics: VISIT, visit: true },
    ],
  },
  {
    id: 'sources',
    title: 'Sources',
    tabs: [
      { label: 'Sources', property: 'visit:source', column: 'source', metrics: VISIT, visit: true },
      { label: 'Channels', property: 'visit:channel', column: 'channel', metrics: VISIT, visit: true },
      { label: 'UTM source', property: 'visit:utm_source', column: 'utm_source', metrics: VISIT, visit: true },
      { label: 'UTM medium', property: 'visit:utm_medium', column: 'utm_medium', metrics: VISIT, visit: true },
      { label: 'UTM campaign', property: 'visit:utm_campaign', column: 'utm_campaign', metrics: VISIT, visit: true },
      { label: 'UTM term', property: 'visit:utm_term', column: 'utm_term', metrics: VISIT, visit: true },
      { label: 'UTM content', property: 'visit:utm_content', column: 'utm_content', metrics: VISIT, visit: true },
    ],
  },
  {
    id: 'locations',
    title: 'Locations',
    tabs: [
      { label: 'Countries', property: 'visit:country', column: 'country', metrics: VISIT, visit: true, country: true },
      { label: 'Regions', property: 'visit:region', column: 'region', metrics: VISIT, visit: true },
      { label: 'Cities', property: 'visit:city', column: 'city', metrics: VISIT, visit: true },
    ],
  },
  {
    id: 'devices',
    title: 'Devices',
    tabs: [
      { label: 'Browsers', property: 'visit:browser', column: 'browser', metrics: VISIT, visit: true },
      { label: 'OS', property: 'visit:os', column: 'os', metrics: VISIT, visit: true },
      { label: 'Devices', property: 'visit:device', column: 'device', metrics: VISIT, visit: true },
      { label: 'Screens', property: 'visit:screen', column: 'screen', metrics: VISIT, visit: true },
      /* visitors and visits only (docs/API.md): no per-row bounce rate. */
      { label: 'Visitor type', property: 'visit:visitor_type', column: 'visitor_type', metrics: VISIT },
    ],
  },
  {
    id: 'goals',
    title: 'Goal conversions',
    tabs: [{ label: 'Goals', property: 'event:goal', column: 'goal', metrics: ['visitors', 'events', 'conversion_rate'] }],
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
  bounce_rate: 'Bounce',
  visit_duration: 'Duration',
  conversion_rate: 'CR',
};

/* Per-row metrics the API refused, per property (the reason), remembered
 * until the page is reloaded so each table asks once. */
const refusedExtra = new Map();

let hooks = { report: () => {}, onFilter: () => {}, onTab: () => {} };

const tabColumn = (tab) => (tab.prop ? state.propKey : tab.column);
const tabProperty = (tab) => (tab.prop ? `event:props:${state.propKey}` : tab.property);

/* Build the cards into #panels. report(err): errors that are not this
 * query's refusal; onFilter(property, value): a row was clicked;
 * onTab(): the view changed (write the URL). */
export function buildPanels(h) {
  hooks = h;
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
        hooks.onTab();
        loadPanel(p, state.generation);
      });
      tabs.append(b);
      return b;
    });
    if (p.tabs.length === 1) tabs.hidden = true;
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
      hooks.onTab();
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

/* The metrics asked of a tab: its own, plus bounce rate and duration for
 * visit properties unless the API refused them already. */
const tabMetrics = (tab) => (tab.visit && !refusedExtra.has(tabProperty(tab)) ? [...tab.metrics, ...ROW_EXTRA] : tab.metrics);

export function loadAllPanels(gen) {
  for (const p of PANELS) loadPanel(p, gen);
}

/* Load page `page` of the panel's active tab; page 1 replaces the rows,
 * later pages append ("Show more"). */
export async function loadPanel(p, gen, page = 1) {
  const tab = p.tabs[state.tabs[p.id]];
  p.tabButtons.forEach((b, i) => b.setAttribute('aria-selected', String(i === state.tabs[p.id])));
  p.propForm.hidden = !tab.prop;
  const req = (p.req = (p.req || 0) + 1);
  const current = () => gen === state.generation && req === p.req;
  p.page = page;
  p.filterExtraReason = null;
  p.droppedReasons = [];
  p.more.hidden = true;
  if (page === 1) {
    p.head.replaceChildren();
    p.table.tBodies[0].replaceChildren();
    p.notes.replaceChildren();
    p.rows = [];
    p.metrics = null;
  }
  if (tab.prop && !state.propKey) {
    p.card.dataset.state = 'idle';
    note(p, 'hint', 'Type the key of a custom event property (the tracker\'s props, e.g. "plan") to break events down by its values.');
    return;
  }
  p.card.dataset.state = 'loading';
  const base = {
    site_id: state.site,
    ...rangeParams(),
    ...filterParams(),
    property: tabProperty(tab),
    limit: String(PAGE_SIZE),
    page: String(page),
  };
  let metrics = tabMetrics(tab);
  let data;
  try {
    data = await api('stats/breakdown', { ...base, metrics: metrics.join(',') });
  } catch (err) {
    if (!current()) return;
    /* Per-row bounce rate and duration refused: remember, ask without. */
    if (isRefusal(err) && metrics.length > tab.metrics.length && /^(metrics|filters): (bounce_rate|visit_duration)\b/.test(err.message)) {
      /* Remembered when refused for the property itself, not a filter. */
      if (err.message.startsWith('metrics:')) refusedExtra.set(tabProperty(tab), err.message);
      else p.filterExtraReason = err.message;
      metrics = tab.metrics;
      try {
        data = await api('stats/breakdown', { ...base, metrics: metrics.join(',') });
      } catch (err2) {
        const retry = await askDropping(base, metrics, err2);
        if (!current() || !shownDropped(p, retry)) return;
        ({ data, metrics } = retry);
      }
    } else {
      const retry = await askDropping(base, metrics, err);
      if (!current() || !shownDropped(p, retry)) return;
      ({ data, metrics } = retry);
    }
  }
  if (!current()) return;
  p.metrics = metrics;
  renderPanel(p, tab, metrics, data, page);
}

/* Under a filter the API may refuse one metric of a table by name ("filters:
 * visits is not kept per ..."): ask again without it, keeping the rest.
 * {data, metrics, reasons}, or {err} with the last refusal. */
async function askDropping(base, metrics, err) {
  const reasons = [];
  for (;;) {
    const m = isRefusal(err) && metrics.length > 1 ? metrics.find((x) => new RegExp(`^filters: ${x} is not kept\\b`).test(err.message)) : null;
    if (!m) return { err, reasons };
    reasons.push(err.message);
    metrics = metrics.filter((x) => x !== m);
    try {
      return { data: await api('stats/breakdown', { ...base, metrics: metrics.join(',') }), metrics, reasons };
    } catch (next) {
      err = next;
    }
  }
}

/* The outcome of askDropping on the panel: the reasons of the dropped
 * metrics kept for renderPanel's notes (true), or the refusal in place of
 * the rows (false). */
function shownDropped(p, retry) {
  if (!retry.data) {
    fail(p, retry.err);
    for (const reason of retry.reasons || []) note(p, 'note metric-dropped', `Not available with these filters: ${reason}.`);
    return false;
  }
  p.droppedReasons = retry.reasons;
  return true;
}

function note(p, cls, text, attrs = {}) {
  p.notes.append(el('p', { class: cls, text, ...attrs }));
}

/* A refused query says why where the rows would be; anything else goes to
 * the error box. */
function fail(p, err) {
  if (!isRefusal(err)) {
    p.card.dataset.state = 'error';
    hooks.report(err);
    return;
  }
  p.card.dataset.state = 'unavailable';
  p.card.dataset.reason = err.message;
  const text =
    state.filters.length > 0
      ? `The stats API cannot answer this table with these filters: ${err.message}.`
      : `Not available from this stats API: ${err.message}.`;
  note(p, 'note unavailable', text);
  rowExtraNote(p, p.tabs[state.tabs[p.id]]);
}

function rowExtraNote(p, tab) {
  const reason = tab.visit && (refusedExtra.get(tabProperty(tab)) || p.filterExtraReason);
  if (reason) note(p, 'note row-extra', `Bounce rate and visit duration per row are not available from this stats API (${reason}).`);
}

/* Days of the range counted before per-row counts existed are left out of
 * the per-row bounce rate and duration (and exit pages): say so. */
function missingDaysNote(p, tab, data) {
  const n = data.meta && data.meta.visit_rows_missing_days;
  if (n > 0)
    note(p, 'note row-days', `${tab.property === 'visit:exit_page' ? 'Exits, bounce rate' : 'Bounce rate'} and duration per row leave out ${n} day${n === 1 ? '' : 's'} of this range, counted before they were kept.`, { 'data-days': String(n) });
}

function renderPanel(p, tab, metrics, data, page) {
  const column = tabColumn(tab);
  const property = tabProperty(tab);
  const results = data.results || [];
  p.rows.push(...results);
  if (page === 1) {
    p.head.replaceChildren(
      el('th', { scope: 'col', class: 'value', text: tab.prop ? state.propKey || 'Property' : tab.label }),
      ...metrics.map((m) => el('th', { scope: 'col', class: 'num', text: METRIC_LABELS[m] || m }))
    );
  }
  const body = p.table.tBodies[0];
  /* Rows come sorted by visitors, so page 1 holds the maximum. */
  const max = Math.max(1, ...p.rows.map((r) => r.visitors || 0));
  for (const r of results) {
    const value = String(r[column] ?? '');
    const other = value === '(other)';
    const cell = el('td', { class: 'value', 'data-value': value, title: value });
    const bar = el('span', { class: 'bar' });
    bar.style.width = `${Math.round((100 * (r.visitors || 0)) / max)}%`;
    const name = tab.country && !other ? countryName(value) : null;
    const label = filterable(value)
      ? el('button', { type: 'button', class: 'label filter-link', title: `Filter by ${value}` })
      : el('span', { class: 'label' });
    if (name) label.append(name, el('span', { class: 'code', text: ` ${value}` }));
    else label.textContent = value === '' ? '(none)' : value;
    if (filterable(value)) label.addEventListener('click', () => hooks.onFilter(property, value));
    cell.append(bar, label);
    const tr = el('tr', other ? { class: 'other' } : {}, cell);
    for (const m of metrics) {
      /* null: a per-row bounce rate or duration of a row with no visit on
       * the days that keep them (docs/API.md); shown as a dash, not 0 */
      if (r[m] === null) {
        tr.append(el('td', { class: 'num none', 'data-metric': m, 'data-value': '', title: 'Not counted on these days', text: '—' }));
        continue;
      }
      const v = r[m] ?? 0;
      tr.append(el('td', { class: 'num', 'data-metric': m, 'data-value': String(v), text: formatMetric(m, v) }));
    }
    body.append(tr);
  }
  if (p.rows.length === 0 && page === 1)
    body.append(el('tr', { class: 'empty' }, el('td', { colSpan: 1 + metrics.length, text: 'No data for this period.' })));
  p.more.hidden = results.length < PAGE_SIZE;
  p.card.dataset.state = 'ready';
  p.notes.replaceChildren();
  for (const reason of p.droppedReasons || []) note(p, 'note metric-dropped', `Not available with these filters: ${reason}.`);
  rowExtraNote(p, tab);
  missingDaysNote(p, tab, data);
  renderKanonNotes(p, data.meta || {});
}

function renderKanonNotes(p, meta) {
  const k = meta.k_anonymity;
  const folded = meta.folded_rows || 0;
  const hasOther = p.rows.some((r) => Object.values(r).includes('(other)'));
  if (folded > 0) {
    const rows = folded === 1 ? '1 value' : `${formatInt(folded)} values`;
    const verb = folded === 1 ? 'is' : 'are';
    const text = meta.other_suppressed
      ? `${rows} seen by fewer than ${k} visitors ${verb} hidden (k-anonymity, k = ${k}): ` +
        'together they still had fewer than k visitors, so no "(other)" row is shown.'
      : `${rows} seen by fewer than ${k} visitors ${verb} folded into "(other)" (k-anonymity, k = ${k}).`;
    note(p, 'note kanon', text, { 'data-folded': String(folded) });
  } else if (meta.other_suppressed) {
    note(p, 'note kanon', `Rare values beyond the daily row cap are withheld: together they had fewer than ${k} visitors (k-anonymity).`, {
      'data-folded': '0',
    });
  } else if (hasOther) {
    note(p, 'note', '"(other)" counts values beyond the per-day row cap of the roll-up.');
  }
}

function downloadPanelCsv(p) {
  const tab = p.tabs[state.tabs[p.id]];
  if (tab.prop && !state.propKey) return;
  const property = tabProperty(tab);
  const range = state.dateRange ? `${state.dateRange[0]}_${state.dateRange[1]}` : state.period;
  const name = `veil_${fileSafe(state.site)}_${fileSafe(property.replace(/:/g, '-'))}_${range}.csv`;
  const params = {
    site_id: state.site,
    ...rangeParams(),
    ...filterParams(),
    property,
    /* The metrics the table was answered with (not one the API refused). */
    metrics: (p.metrics || tabMetrics(tab)).join(','),
    limit: String(CSV_LIMIT),
  };
  downloadCsv('stats/breakdown', params, name, p.card.querySelector('.csv'), hooks.report);
}
