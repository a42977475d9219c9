/* api.js - the stats API client of the dashboard: GET api/v1/<path> on the
 * same origin with the token in the Authorization header, and the words an
 * API error is shown with.
 *
 * It must never put the token in a URL, send cookies, or send a referrer. */

const API_BASE = 'api/v1/'; /* relative: works behind a path prefix too */

export class ApiError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

/* The token every call sends; set by the sign-in code. */
export const auth = { token: null };

/* GET api/v1/<path>?<params>. Resolves with parsed JSON (or a Blob with
 * csv); rejects with ApiError (status 0 when the API cannot be reached). */
export async function api(path, params, { csv = false } = {}) {
  const query = new URLSearchParams(params);
  if (csv) query.set('format', 'csv');
  let res;
  try {
    res = await fetch(`${API_BASE}${path}?${query}`, {
      headers: {
        Authorization: `Bearer ${auth.token}`,
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

/* True when err is the API refusing a query it cannot answer (400): the
 * dashboard then shows the API's reason where the numbers would be. */
export const isRefusal = (err) => err instanceof ApiError && err.status === 400;

/* An error in words, with the status, for the error box. */
export function describeError(err, site) {
  if (!(err instanceof ApiError)) return String(err.message || err);
  switch (err.status) {
    case 0:
      return `Cannot reach the stats API: ${err.message}.`;
    case 400:
      return `The stats API rejected the query (400 Bad Request): ${err.message}.`;
    case 401:
      return `The stats API refused the token (401 Unauthorized): ${err.message}. Enter a valid token.`;
    case 403:
      return `This token may not read ${site} (403 Forbidden): ${err.message}.`;
    case 503:
      return `The stats API's storage is unavailable (503): ${err.message}.`;
    default:
      return `The stats API answered ${err.status}: ${err.message}.`;
  }
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/* Fetch the API's own CSV answer (with the token header) and save it as a
 * Blob named `name`; `button` is disabled meanwhile, errors go to report. */
export async function downloadCsv(path, params, name, button, report) {
  button.disabled = true;
  try {
    saveBlob(await api(path, params, { csv: true }), name);
  } catch (err) {
    report(err);
  } finally {
    button.disabled = false;
  }
}

export function fileSafe(s) {
  return String(s).replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
}

/* GET with `metrics`, dropping each metric the API refuses by name (a 400
 * whose reason starts with "filters: <metric>" or "metrics: <metric>", as
 * docs/API.md words them) and asking again with the rest. Resolves with
 * {data, metrics (the ones answered), dropped: [{metric, reason}]};
 * rejects like api() when nothing is left or the refusal names no metric. */
export async function apiMetrics(path, params, metrics) {
  const dropped = [];
  let left = [...metrics];
  for (;;) {
    try {
      const data = await api(path, { ...params, metrics: left.join(',') });
      return { data, metrics: left, dropped };
    } catch (err) {
      const m = isRefusal(err) && left.length > 1 ? left.find((x) => new RegExp(`^(filters|metrics): ${x}\\b`).test(err.message)) : null;
      if (!m) throw err;
      dropped.push({ metric: m, reason: err.message });
      left = left.filter((x) => x !== m);
    }
  }
}
