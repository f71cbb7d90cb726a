import fs from 'node:fs/promises';
import path from 'node:path';
import { dashboardFile, type DashboardBundle } from './bundle.js';

/**
 * A built dashboard on disk, as the container image ships it: `index.html` and `assets/`.
 * Only the bytes are stored; types, gzip and validators are derived again when read.
 */

export async function writeDashboard(bundle: DashboardBundle, dir: string): Promise<void> {
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(path.join(dir, 'assets'), { recursive: true });
  await fs.writeFile(path.join(dir, 'index.html'), bundle.index.body);
  for (const asset of bundle.assets.values()) await fs.writeFile(path.join(dir, 'assets', asset.name), asset.body);
}

export async function readDashboard(dir: string): Promise<DashboardBundle> {
  const index = dashboardFile('index.html', await fs.readFile(path.join(dir, 'index.html')));
  const names = await fs.readdir(path.join(dir, 'assets'));
  const assets = await Promise.all(names.map(async (name) => dashboardFile(name, await fs.readFile(path.join(dir, 'assets', name)))));
  return { index, assets: new Map(assets.map((a) => [a.name, a])) };
}
