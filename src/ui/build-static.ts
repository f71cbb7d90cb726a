import path from 'node:path';
import { buildDashboard } from './build.js';
import { writeDashboard } from './static-files.js';

/** `npm run build`'s second step: the dashboard into dist/ui/static/, beside the compiled server. */
const dir = path.resolve(process.argv[2] ?? 'dist/ui/static');
const bundle = await buildDashboard();
await writeDashboard(bundle, dir);
for (const f of [bundle.index, ...bundle.assets.values()]) {
  process.stdout.write(`${path.relative(process.cwd(), path.join(dir, f.name === 'index.html' ? '' : 'assets', f.name))}  ${f.body.length} B, ${f.gzip.length} B gzipped\n`);
}
