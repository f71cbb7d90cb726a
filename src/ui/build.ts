import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { dashboardFile, indexHtml, type DashboardBundle, type DashboardFile } from './bundle.js';

/** The dashboard's browser code: Preact components under src/ui/app/, bundled by esbuild (tsx's own). */
export const DASHBOARD_ENTRY = fileURLToPath(new URL('./app/main.tsx', import.meta.url));

/**
 * Bundles the dashboard in memory: one minified ES module, one stylesheet and the icon, each named
 * by its content hash, and the page that links them. Deterministic: the same sources give the same
 * names, so every API process built from one checkout serves the same URLs.
 */
export async function buildDashboard(entry: string = DASHBOARD_ENTRY): Promise<DashboardBundle> {
  const result = await esbuild.build({
    entryPoints: { app: entry },
    absWorkingDir: path.dirname(entry),
    outdir: 'out',
    write: false,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    // Browsers of the last few years; nothing here needs a polyfill.
    target: ['es2022', 'chrome111', 'firefox115', 'safari16'],
    minify: true,
    legalComments: 'none',
    charset: 'utf8',
    entryNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    publicPath: '/assets/',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    loader: { '.svg': 'file' },
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'silent',
  });
  if (result.warnings.length > 0) {
    const text = await esbuild.formatMessages(result.warnings, { kind: 'warning' });
    throw new Error(`the dashboard's build has warnings:\n${text.join('\n')}`);
  }
  const files = result.outputFiles.map((f) => dashboardFile(path.basename(f.path), f.contents));
  const one = (ext: string): DashboardFile => {
    const found = files.filter((f) => f.name.endsWith(ext));
    if (found.length !== 1) throw new Error(`the dashboard's build made ${found.length} ${ext} files, expected 1`);
    return found[0]!;
  };
  const index = dashboardFile('index.html', new TextEncoder().encode(indexHtml({ script: one('.js'), style: one('.css'), icon: one('.svg') })));
  return { index, assets: new Map(files.map((f) => [f.name, f])) };
}
