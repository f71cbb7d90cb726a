import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DashboardBundle } from './bundle.js';

/** Where the API gets the dashboard: a function, so that a test can hand it another bundle. */
export type DashboardSource = () => Promise<DashboardBundle>;

/**
 * The package's dashboard. The container image ships it built (dist/ui/static/, by `npm run build`);
 * a checkout builds it from src/ui/app/ in memory with esbuild on the first request — like
 * bin/steady.js running the TypeScript sources, no stale build can surprise anyone, and there is no
 * step to forget after `npm install`. Built once per source; a failed build is tried again next time.
 */
export function packagedDashboard(where: { readonly prebuilt?: string; readonly entry?: string } = {}): DashboardSource {
  const prebuilt = where.prebuilt ?? fileURLToPath(new URL('./static/', import.meta.url));
  let pending: Promise<DashboardBundle> | null = null;
  const load = async (): Promise<DashboardBundle> => {
    if (existsSync(path.join(prebuilt, 'index.html'))) return (await import('./static-files.js')).readDashboard(prebuilt);
    const { buildDashboard, DASHBOARD_ENTRY } = await import('./build.js');
    const entry = where.entry ?? DASHBOARD_ENTRY;
    if (!existsSync(entry)) throw new Error(`the dashboard is not built: neither ${prebuilt} nor its sources exist (run \`npm run build\`)`);
    return buildDashboard(entry);
  };
  return () => {
    pending ??= load().catch((err: unknown) => {
      pending = null;
      throw err;
    });
    return pending;
  };
}
