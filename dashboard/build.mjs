#!/usr/bin/env node
/* build.mjs - build the dashboard into the directory veil-aggregator serves
 * as dashboard_dir:
 *
 *   node dashboard/build.mjs [outdir]      (default: build/dashboard)
 *
 *   <outdir>/index.html
 *   <outdir>/static/app.js          app.js + uPlot, bundled and minified by esbuild
 *   <outdir>/static/style.css
 *   <outdir>/static/uPlot.min.css
 *   <outdir>/static/favicon.svg
 *
 * The API serves "/" as index.html and "/static/<path>" from static/
 * (docs/API.md, "Dashboard files"), so everything but index.html lives in
 * static/. Everything is local: the page loads nothing from another origin.
 * Writes nothing outside <outdir>; replaces its static/ wholesale. */
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(process.argv[2] || join(here, '..', 'build', 'dashboard'));
const staticDir = join(outdir, 'static');
const require = createRequire(import.meta.url);

try {
  const uplotCss = join(dirname(require.resolve('uplot/package.json')), 'dist', 'uPlot.min.css');
  rmSync(staticDir, { recursive: true, force: true });
  mkdirSync(staticDir, { recursive: true });
  await build({
    entryPoints: [join(here, 'app.js')],
    outfile: join(staticDir, 'app.js'),
    bundle: true,
    format: 'esm',
    minify: true,
    target: 'es2020',
    platform: 'browser',
    legalComments: 'eof', /* keeps uPlot's MIT notice */
    charset: 'utf8',
    logLevel: 'warning',
  });
  copyFileSync(join(here, 'index.html'), join(outdir, 'index.html'));
  copyFileSync(join(here, 'style.css'), join(staticDir, 'style.css'));
  copyFileSync(join(here, 'favicon.svg'), join(staticDir, 'favicon.svg'));
  copyFileSync(uplotCss, join(staticDir, 'uPlot.min.css'));
  const js = readFileSync(join(staticDir, 'app.js'));
  console.log(
    `dashboard: app.js ${statSync(join(staticDir, 'app.js')).size} bytes ` +
      `(${gzipSync(js, { level: 9 }).length} gzipped) -> ${outdir}`
  );
} catch (err) {
  console.error(`dashboard/build.mjs: ${err.message || err}`);
  process.exit(1);
}
