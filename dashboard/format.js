/* format.js - small DOM and formatting helpers shared by the dashboard's
 * modules: element building, number, duration, date and country formatting.
 *
 * It must never insert text as HTML: el() sets text with textContent only,
 * because row values are page paths and referrers that anyone can send.
 * Dates are ISO strings treated as naive (site-local) days and hours, so
 * every formatter uses timeZone 'UTC' and no browser time zone leaks in. */

export const $ = (id) => document.getElementById(id);

/* el('tag', {class, text, data-*, aria-*, role, other props}, ...children) */
export function el(tag, props = {}, ...children) {
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
export const formatInt = (n) => numberFormat.format(n);

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/* A metric's value as shown: percentages, durations, or counts. */
export function formatMetric(metric, value) {
  switch (metric) {
    case 'bounce_rate':
    case 'scroll_depth':
    case 'conversion_rate':
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
export const formatDay = (iso) => dayFormat.format(new Date(`${iso}T00:00:00Z`));

export function addDays(iso, n) {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

/* The first day of the month n months from iso's month. */
export function addMonths(iso, n) {
  const d = new Date(`${iso.slice(0, 7)}-01T00:00:00Z`);
  d.setUTCMonth(d.getUTCMonth() + n);
  return d.toISOString().slice(0, 10);
}

/* Days from a to b inclusive (ISO days). */
export function dayCount(a, b) {
  return Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / 86_400_000) + 1;
}

let countryNames = null;
try {
  countryNames = new Intl.DisplayNames(undefined, { type: 'region' });
} catch {
  countryNames = null;
}

/* The English-or-locale name of an ISO 3166-1 alpha-2 code, or null. */
export function countryName(code) {
  if (!countryNames || !/^[A-Z]{2}$/.test(code)) return null;
  try {
    const name = countryNames.of(code);
    return name && name !== code ? name : null;
  } catch {
    return null;
  }
}

export function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}
