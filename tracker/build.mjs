#!/usr/bin/env node
/* build.mjs - minify tracker/veil.js into <outdir>/veil.js.
 *
 *   node tracker/build.mjs [outdir]      (default: build/tracker)
 *
 * Prints the raw and gzipped sizes and exits non-zero when the gzipped
 * script is over the 1536-byte budget (docs/TRACKER.md). Writes nothing
 * but <outdir>/veil.js. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { transform } from 'esbuild';

const BUDGET_GZIP_BYTES = 1536;

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, 'veil.js');
const outdir = resolve(process.argv[2] || join(here, '..', 'build', 'tracker'));
const target = join(outdir, 'veil.js');

try {
  const result = await transform(readFileSync(source, 'utf8'), {
    loader: 'js',
    minify: true,
    target: 'es2017',
    legalComments: 'none',
    charset: 'utf8',
    sourcefile: 'veil.js',
  });
  const code = result.code.trim() + '\n';
  mkdirSync(outdir, { recursive: true });
  writeFileSync(target, code);
  const raw = Buffer.byteLength(code);
  const gzipped = gzipSync(code, { level: 9 }).length;
  const verdict = gzipped <= BUDGET_GZIP_BYTES ? 'ok' : 'OVER BUDGET';
  console.log(
    `veil.js: ${raw} bytes minified, ${gzipped} bytes gzipped ` +
      `(budget ${BUDGET_GZIP_BYTES}) ${verdict} -> ${target}`
  );
  process.exit(gzipped <= BUDGET_GZIP_BYTES ? 0 : 1);
} catch (err) {
  console.error(`tracker/build.mjs: ${err.message || err}`);
  process.exit(1);
}
