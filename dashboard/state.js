/* state.js - what the dashboard shows (site, period, range, filters,
 * comparison, tabs) and its round trip through the URL fragment, plus the
 * query parameters every API call derives from it.
 *
 * It must never put the token in the URL: the fragment holds only the view.
 * Filters are kept as (property, value) pairs and sent in Plausible's v1
 * syntax (`filters=prop==value;prop2==value2`, docs/API.md). */
import { addDays, addMonths, dayCount } from './format.js';

/* The periods of the picker: the API's own, plus Yesterday (a `day` on the
 * day before today) and Custom range. */
export const PERIODS = ['day', 'yesterday', '7d', '30d', 'month', '6mo', '12mo', 'custom'];

/* Human names of filterable properties, for the pills. */
const PROPERTY_NAMES = {
  'event:page': 'Page',
  'event:name': 'Event',
  'event:goal': 'Goal',
  'visit:entry_page': 'Entry page',
  'visit:exit_page': 'Exit page',
  'visit:source': 'Source',
  'visit:channel': 'Channel',
  'visit:utm_source': 'UTM source',
  'visit:utm_medium': 'UTM medium',
  'visit:utm_campaign': 'UTM campaign',
  'visit:utm_term': 'UTM term',
  'visit:utm_content': 'UTM content',
  'visit:country': 'Country',
  'visit:region': 'Region',
  'visit:city': 'City',
  'visit:browser': 'Browser',
  'visit:os': 'OS',
  'visit:device': 'Device',
  'visit:screen': 'Screen',
  'visit:visitor_type': 'Visitor type',
};

export function propertyName(property) {
  if (PROPERTY_NAMES[property]) return PROPERTY_NAMES[property];
  if (property.startsWith('event:props:')) return `Property ${property.slice(12)}`;
  return property;
}

export const state = {
  sites: [],
  zones: {} /* site -> IANA time zone, from /api/v1/sites */,
  site: '',
  period: '30d',
  from: '',
  to: '',
  propKey: '',
  filters: [] /* [{property, value, negate}] (negate: "is not", v1's !=) */,
  compare: false,
  tabs: {},
  generation: 0,
  dateRange: null,
};

/* The site's time zone ('UTC' when the API names none or the browser does
 * not know it). Days and hours in the API are the site's local ones. */
export function siteZone() {
  const tz = state.zones[state.site] || 'UTC';
  try {
    new Intl.DateTimeFormat('en-CA', { timeZone: tz });
    return tz;
  } catch {
    return 'UTC';
  }
}

/* Today in the site's time zone, YYYY-MM-DD. */
export function siteToday() {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: siteZone(), year: 'numeric', month: '2-digit', day: '2-digit' })
    .formatToParts(new Date());
  const get = (t) => parts.find((p) => p.type === t).value;
  return `${get('year')}-${get('month')}-${get('day')}`;
}

/* How the range line names the days: "UTC" or the site's zone. */
export function zoneLabel() {
  const tz = siteZone();
  return tz === 'UTC' || tz === 'Etc/UTC' ? 'UTC' : tz;
}

/* The period and date parameters of the current view. */
export function rangeParams() {
  if (state.period === 'custom') return { period: 'custom', date: `${state.from},${state.to}` };
  if (state.period === 'yesterday') return { period: 'day', date: addDays(siteToday(), -1) };
  return { period: state.period };
}

/* Hourly buckets for a single day (Today, Yesterday, or a one-day range). */
export function isHourly() {
  return state.period === 'day' || state.period === 'yesterday' || (state.period === 'custom' && state.from === state.to);
}

export function isMonthly() {
  return state.period === '6mo' || state.period === '12mo';
}

/* A value that v1 filter syntax carries literally: `;` separates filters,
 * `|` alternatives and `*` is a glob there (docs/API.md "Filters"), with no
 * escape, so a value holding one of them is not offered as a filter (it
 * would match other values: a wrong number). */
export const filterable = (value) => value !== '' && value !== '(other)' && !/[;|*]/.test(value);

/* The `filters` parameter of the current view, or {} without filters. */
export function filterParams() {
  if (state.filters.length === 0) return {};
  return {
    filters: state.filters.map(filterText).join(';'),
  };
}

/* One filter in v1 syntax (`prop==value` or `prop!=value`), as sent and
 * as kept in the URL fragment. */
const filterText = (f) => `${f.property}${f.negate ? '!=' : '=='}${f.value}`;

/* Add (or replace: one filter per property) a filter; negate: "is not". */
export function setFilter(property, value, negate = false) {
  state.filters = state.filters.filter((f) => f.property !== property);
  state.filters.push({ property, value, negate });
}

/* Switch a property's filter between "is" and "is not". */
export function toggleFilter(property) {
  for (const f of state.filters) if (f.property === property) f.negate = !f.negate;
}

export function removeFilter(property) {
  state.filters = state.filters.filter((f) => f.property !== property);
}

/* The previous period for a range [first, last] of the current view: the
 * same number of whole months before it for the month periods, else the
 * same number of days immediately before it. */
export function previousRange([first, last]) {
  const months = { month: 1, '6mo': 6, '12mo': 12 }[state.period];
  if (months) return [addMonths(first, -months), addDays(first, -1)];
  const n = dayCount(first, last);
  return [addDays(first, -n), addDays(first, -1)];
}

/* Read the view from the URL fragment (panels: [{id, tabs}]). */
export function readHash(panels) {
  const h = new URLSearchParams(location.hash.slice(1));
  if (h.get('site')) state.site = h.get('site');
  const period = h.get('period');
  if (period && PERIODS.includes(period)) state.period = period;
  if (h.get('from')) state.from = h.get('from');
  if (h.get('to')) state.to = h.get('to');
  if (h.get('prop')) state.propKey = h.get('prop');
  state.compare = h.get('cmp') === '1';
  state.filters = [];
  for (const f of h.getAll('f')) {
    const at = f.indexOf('=');
    const negate = at > 0 && f[at - 1] === '!';
    const end = negate ? at - 1 : at;
    if (end > 0 && (negate || f[at + 1] === '=') && filterable(f.slice(at + (negate ? 1 : 2))))
      setFilter(f.slice(0, end), f.slice(at + (negate ? 1 : 2)), negate);
  }
  for (const p of panels) {
    const t = Number(h.get(p.id));
    state.tabs[p.id] = Number.isInteger(t) && t >= 0 && t < p.tabs.length ? t : 0;
  }
}

/* Site, period, filters, comparison and tabs in the fragment, so a reload
 * or a shared link shows the same view. Never the token. */
export function writeHash(panels) {
  const h = new URLSearchParams({ site: state.site, period: state.period });
  if (state.period === 'custom') {
    h.set('from', state.from);
    h.set('to', state.to);
  }
  if (state.compare) h.set('cmp', '1');
  for (const f of state.filters) h.append('f', filterText(f));
  if (state.propKey) h.set('prop', state.propKey);
  for (const p of panels) if (state.tabs[p.id]) h.set(p.id, String(state.tabs[p.id]));
  history.replaceState(null, '', `#${h}`);
}
