/**
 * Prints the functions with the most self time in a V8 .cpuprofile (from `npm run bench -- --profile`):
 *   npx tsx bench/profile-top.ts bench/results/profiles/controller-cold-start-*.cpuprofile [N]
 */
import fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

const [file, n = '25'] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: tsx bench/profile-top.ts FILE.cpuprofile [N]\n');
  process.exit(2);
}
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; startTime: number; endTime: number };
const hits = new Map<number, number>();
for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
const byFunction = new Map<string, number>();
for (const node of profile.nodes) {
  const { functionName, url, lineNumber } = node.callFrame;
  const key = `${functionName || '(anonymous)'} ${url.replace(/^file:\/\/.*?node_modules\//, '~/').replace(/^file:\/\/.*?\/src\//, 'src/')}:${lineNumber + 1}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + (hits.get(node.id) ?? 0));
}
const total = profile.samples.length;
const rows = [...byFunction.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(n));
process.stdout.write(`${total} samples over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s\n`);
for (const [key, count] of rows) process.stdout.write(`${((count / total) * 100).toFixed(1).padStart(5)}%  ${key}\n`);
