#!/usr/bin/env node
/* engines.mjs - every npm package Veil installs must run on Debian 12's own
 * Node.js (docs/DEPLOYMENT.md, "Node.js").
 *
 *   node tests/node/engines.mjs
 *
 * Reads package-lock.json (what `npm ci` installs, including transitive
 * packages) and checks each package's `engines.node` range against the
 * Node.js version Debian 12 ships (DEBIAN12_NODE below), and that
 * package.json pins exact versions (a range could float to a release that
 * drops Node 18). It never runs the packages and needs no network. Prints
 * one line per failure and a closing "N passed, N failed"; exits non-zero on
 * any failure. The range checker is tested on known answers first, so a
 * broken checker cannot pass everything. */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/* bookworm and bookworm-security's nodejs (18.20.4+dfsg-1~deb12u*). */
const DEBIAN12_NODE = '18.20.4';

function parseVersion(s) {
  const m = /^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-[0-9A-Za-z.-]+)?$/.exec(s.trim());
  if (!m) return null;
  const part = (p) => (p === undefined || /^[xX*]$/.test(p) ? null : Number(p));
  return [part(m[1]), part(m[2]), part(m[3])];
}

function cmp(a, b) {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

/* One comparator ("^18.1", ">=20", "18.x", "*") as a list of [op, version]
 * with every missing part filled in; null when it cannot be read. */
function comparator(tok) {
  const m = /^(\^|~|>=|<=|>|<|=)?\s*(.*)$/.exec(tok);
  const op = m[1] || '';
  if (m[2] === '' || m[2] === '*' || /^[xX]$/.test(m[2])) return [];
  const v = parseVersion(m[2]);
  if (!v || v[0] === null) return null;
  const [maj, min, pat] = v;
  const lo = [maj, min ?? 0, pat ?? 0];
  if (op === '^') {
    const hi = maj > 0 ? [maj + 1, 0, 0] : min === null ? [1, 0, 0] : min > 0 ? [0, min + 1, 0] : [0, 0, (pat ?? 0) + 1];
    return [['>=', lo], ['<', hi]];
  }
  if (op === '~' || (op === '' && (min === null || pat === null)) || (op === '=' && (min === null || pat === null))) {
    const hi = min === null || (op !== '~' && pat !== null) ? [maj + 1, 0, 0] : [maj, min + 1, 0];
    if (op !== '~' && min !== null && pat === null) return [['>=', lo], ['<', [maj, min + 1, 0]]];
    return [['>=', lo], ['<', hi]];
  }
  if (op === '>' && (min === null || pat === null)) return [['>=', min === null ? [maj + 1, 0, 0] : [maj, min + 1, 0]]];
  if (op === '<=' && (min === null || pat === null)) return [['<', min === null ? [maj + 1, 0, 0] : [maj, min + 1, 0]]];
  return [[op === '' ? '=' : op, lo]];
}

/* Does version `ver` satisfy the npm range `range`? null if unreadable. */
export function satisfies(ver, range) {
  const v = parseVersion(ver);
  for (const alt of range.split('||')) {
    let set = alt.trim();
    const hy = /^(\S+)\s+-\s+(\S+)$/.exec(set);
    if (hy) set = `>=${hy[1]} <=${hy[2]}`;
    set = set.replace(/(\^|~|>=|<=|>|<|=)\s+/g, '$1');
    const cs = [];
    for (const tok of set.split(/\s+/).filter(Boolean)) {
      const c = comparator(tok);
      if (c === null) return null;
      cs.push(...c);
    }
    const ok = cs.every(([op, w]) => {
      const r = cmp(v, w);
      return { '=': r === 0, '>=': r >= 0, '>': r > 0, '<=': r <= 0, '<': r < 0 }[op];
    });
    if (ok) return true;
  }
  return false;
}

let passed = 0;
let failed = 0;
function check(cond, message) {
  if (cond) passed++;
  else { failed++; console.log(`FAIL ${message}`); }
}

/* The checker itself, on answers npm's semver gives. */
const known = [
  ['>=18', true], ['>=20', false], ['>=18.20.5', false], ['^18.0.0', true], ['^18.20.5', false],
  ['^16 || ^18 || >=20', true], ['>=14.17 <19', true], ['>=19', false], ['18.x', true], ['*', true],
  ['~18.19', false], ['~18.20.1', true], ['>18', false], ['<=18', true], ['16 - 18', true],
  ['>= 18.0.0', true], ['>=20.0.0 || >=18.21', false], ['', true],
];
for (const [range, want] of known) check(satisfies(DEBIAN12_NODE, range) === want, `checker: ${DEBIAN12_NODE} in '${range}' should be ${want}`);

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
for (const deps of [pkg.dependencies || {}, pkg.devDependencies || {}]) {
  for (const [name, spec] of Object.entries(deps)) {
    check(/^\d+\.\d+\.\d+$/.test(spec), `package.json pins ${name} to '${spec}', not one exact version`);
  }
}

const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
let seen = 0;
for (const [path, meta] of Object.entries(lock.packages || {})) {
  if (path === '') continue;
  seen++;
  const range = meta.engines && meta.engines.node;
  if (range === undefined) { passed++; continue; }
  const ok = satisfies(DEBIAN12_NODE, range);
  check(ok === true, `${path.replace(/^node_modules\//, '')}@${meta.version}: engines.node '${range}' ${ok === null ? 'cannot be read' : `excludes Debian 12's Node.js ${DEBIAN12_NODE}`}`);
}
check(seen > 0, 'package-lock.json lists no packages');
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
