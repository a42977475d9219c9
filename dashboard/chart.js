/* chart.js - the time series card: visitors and pageviews per hour (Today,
 * Yesterday, one-day ranges), day or month from `stats/timeseries`, and the
 * previous period's visitors as a dotted line when comparing.
 *
 * It must never plot a number the API did not give for this exact query:
 * when hourly buckets are refused it says so and plots the day's buckets;
 * when a filtered query is refused it plots nothing and shows the API's
 * reason. The plotted numbers are also in the chart element's data-*
 * attributes (for tests and for reading without a mouse). */
import uPlot from 'uplot';
import { api, apiMetrics, isRefusal } from './api.js';
import { $, cssVar, el, formatInt } from './format.js';
import { filterParams, isHourly, isMonthly, rangeParams, state } from './state.js';

const CHART_HEIGHT = 260;
const Y_INCRS = [1, 2, 5];
for (let i = 1; i <= 9; i++) for (const b of [1, 2, 5]) Y_INCRS.push(b * 10 ** i);

const shortDay = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', timeZone: 'UTC' });
const shortMonth = new Intl.DateTimeFormat(undefined, { month: 'short', year: 'numeric', timeZone: 'UTC' });
const shortHour = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: 'UTC' });

const chart = {
  plot: null,
  rows: null /* the current period's rows */,
  metrics: ['visitors', 'pageviews'] /* the metrics the API answered for them */,
  previous: null /* the previous period's rows, or null */,
  interval: 'day' /* the buckets actually plotted */,
  notes: [],
};

/* A bucket's name (`YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS`, site-local and
 * naive) as seconds, read as UTC so no browser time zone applies. */
function bucketSeconds(name) {
  const s = String(name).replace(' ', 'T');
  return Date.parse(s.length > 10 ? `${s}${/Z|[+-]\d\d:?\d\d$/.test(s) ? '' : 'Z'}` : `${s}T00:00:00Z`) / 1000;
}

/* Load the current period's series. `report(err)` handles errors that are
 * not refusals of this query. Resolves when rendered (or refused). */
export async function loadTimeseries(gen, report, { quiet = false } = {}) {
  const box = $('chart');
  if (!quiet) {
    box.dataset.points = '';
    chart.previous = null;
  }
  const hourly = isHourly();
  let interval = hourly ? 'hour' : isMonthly() ? 'month' : 'day';
  const notes = [];
  const base = { site_id: state.site, ...rangeParams(), ...filterParams() };
  const wanted = ['visitors', 'pageviews'];
  let answer;
  try {
    answer = await apiMetrics('stats/timeseries', { ...base, ...(hourly ? { interval: 'hour' } : {}) }, wanted);
  } catch (err) {
    if (gen !== state.generation) return;
    /* Hours refused (by an API without them, or under a filter): days. */
    if (hourly && isRefusal(err)) {
      notes.push(`Hourly buckets are not available for this view ("${err.message}"), so the day is one point.`);
      interval = 'day';
      try {
        answer = await apiMetrics('stats/timeseries', base, wanted);
      } catch (err2) {
        if (gen === state.generation) failTimeseries(err2, report, notes);
        return;
      }
    } else {
      failTimeseries(err, report, notes);
      return;
    }
  }
  if (gen !== state.generation) return;
  for (const d of answer.dropped) notes.push(`${d.metric === 'pageviews' ? 'Pageviews' : 'Visitors'}: not plotted for this view (${d.reason}).`);
  chart.metrics = answer.metrics;
  chart.rows = answer.data.results || [];
  chart.interval = interval;
  chart.notes = notes;
  $('chart-title').textContent = `Visitors and pageviews per ${interval}`;
  render();
}

function failTimeseries(err, report, notes) {
  chart.rows = null;
  if (chart.plot) chart.plot.destroy();
  chart.plot = null;
  const box = $('chart');
  box.replaceChildren();
  box.dataset.points = 'n/a';
  if (isRefusal(err) && state.filters.length > 0) {
    chart.notes = [...notes, `The stats API cannot answer this chart with these filters: ${err.message}.`];
    showNotes();
  } else {
    chart.notes = notes;
    showNotes();
    report(err);
  }
}

/* Load the previous period [first, last] for the dotted line, in the
 * view's buckets (hours falling back to days as for the current period;
 * render() draws it only when both have the same buckets). */
export async function loadPreviousTimeseries(gen, [first, last]) {
  const base = { site_id: state.site, period: 'custom', date: `${first},${last}`, ...filterParams(), metrics: 'visitors' };
  let interval = isHourly() ? 'hour' : isMonthly() ? 'month' : 'day';
  try {
    let data;
    try {
      data = await api('stats/timeseries', { ...base, interval });
    } catch (err) {
      if (!(interval === 'hour' && isRefusal(err))) throw err;
      interval = 'day';
      data = await api('stats/timeseries', { ...base, interval });
    }
    if (gen !== state.generation || !state.compare) return;
    chart.previous = data.results || [];
    chart.previousInterval = interval;
  } catch (err) {
    if (gen !== state.generation) return;
    chart.previous = null;
    chart.notes = [...chart.notes.filter((n) => !n.startsWith('Previous period')), `Previous period: not shown (${err.message}).`];
  }
  render();
}

/* Drop the dotted line (comparison turned off or not possible). */
export function clearPrevious(note) {
  chart.previous = null;
  chart.notes = chart.notes.filter((n) => !n.startsWith('Previous period'));
  if (note) chart.notes.push(`Previous period: ${note}`);
  if (chart.rows) render();
}

function showNotes() {
  $('chart-note').replaceChildren(...chart.notes.map((n) => el('p', { class: 'note', text: n })));
}

function render() {
  showNotes();
  const rows = chart.rows;
  if (!rows) return;
  const interval = chart.interval;
  const xs = rows.map((r) => bucketSeconds(r.date));
  const prev = chart.previous && chart.previousInterval === interval ? rows.map((_, i) => chart.previous[i]?.visitors ?? null) : null;
  const hasPv = chart.metrics.includes('pageviews');
  const data = [xs, rows.map((r) => r.visitors ?? 0)];
  if (hasPv) data.push(rows.map((r) => r.pageviews ?? 0));
  if (prev) data.push(prev);
  const box = $('chart');
  box.dataset.points = String(rows.length);
  box.dataset.interval = interval;
  box.dataset.dates = rows.map((r) => r.date).join(',');
  box.dataset.visitors = data[1].join(',');
  box.dataset.pageviews = hasPv ? data[2].join(',') : '';
  box.dataset.previousVisitors = prev ? chart.previous.map((r) => r.visitors ?? 0).join(',') : '';
  box.dataset.previousDates = prev ? chart.previous.map((r) => r.date).join(',') : '';
  if (chart.plot) chart.plot.destroy();
  chart.plot = null;
  box.replaceChildren();

  const text = cssVar('--muted');
  const grid = cssVar('--grid');
  const c1 = cssVar('--series-1');
  const c2 = cssVar('--series-2');
  const bucket = interval === 'month' ? shortMonth : interval === 'hour' ? shortHour : shortDay;
  const label = (ts) => bucket.format(new Date(ts * 1000));
  /* Half a bucket of room on each side, so the first and last points (and
   * a single bucket) are not drawn on the frame. */
  const pad = { month: 15 * 86400, day: 43200, hour: 1800 }[interval];
  const axis = {
    stroke: text,
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
    font: '12px system-ui, sans-serif',
  };
  const count = (u, v) => (v == null ? '–' : formatInt(v));
  const few = rows.length <= 62;
  const series = [
    { label: { month: 'Month', day: 'Day', hour: 'Hour' }[interval], value: (u, ts) => (ts == null ? '–' : label(ts)) },
    { label: 'Visitors', stroke: c1, fill: cssVar('--series-1-fill'), width: 2, value: count, points: { show: few, size: 6, fill: c1 } },
  ];
  if (hasPv)
    series.push({ label: 'Pageviews', stroke: c2, width: 2, dash: [6, 4], value: count, points: { show: few, size: 5, fill: c2 } });
  if (prev) {
    series.push({ label: 'Visitors (previous period)', stroke: text, width: 2, dash: [2, 4], value: count, points: { show: false } });
  }
  const opts = {
    width: Math.max(200, box.clientWidth),
    height: CHART_HEIGHT,
    scales: {
      x: { time: false, range: (u, min, max) => [min - pad, max + pad] },
      y: { range: (u, min, max) => [0, max > 0 ? Math.ceil(max * 1.15) : 1] },
    },
    series,
    axes: [
      {
        ...axis,
        /* One tick per bucket, thinned to what fits the width. */
        splits: (u) => {
          const fit = Math.max(1, Math.floor(u.bbox.width / devicePixelRatio / (interval === 'month' ? 84 : 64)));
          const step = Math.ceil(xs.length / fit);
          return xs.filter((_, i) => i % step === 0);
        },
        values: (u, splits) => splits.map(label),
      },
      { ...axis, incrs: Y_INCRS, size: 50, values: (u, vals) => vals.map((v) => formatInt(v)) },
    ],
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    /* Values show in the legend only while a bucket is pointed at. */
    hooks: { setLegend: [(u) => u.root.classList.toggle('idle', u.cursor.idx == null)] },
  };
  chart.plot = new uPlot(opts, data, box);
}

export function resizeChart() {
  if (!chart.plot) return;
  const w = Math.max(200, $('chart').clientWidth);
  if (w !== chart.plot.width) chart.plot.setSize({ width: w, height: CHART_HEIGHT });
}

/* The interval actually plotted (for the CSV download). */
export const plottedInterval = () => chart.interval;
