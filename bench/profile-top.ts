/**
 * Prints where a V8 CPU profile (from `npm run bench -- --profile`) spends its time: the functions
 * with the most self time, then self time by package (or src/ folder).
 *   npx tsx bench/profile-top.ts bench/results/profiles/api-bench_cold-*  [N]
 * Given a directory, reads the busiest profile in it (the main thread; a loader thread writes one too).
 */
import fs from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  startTime: number;
  endTime: number;
}

const [target, n = '25'] = process.argv.slice(2);
if (!target) {
  process.stderr.write('usage: tsx bench/profile-top.ts FILE.cpuprofile|DIR [N]\n');
  process.exit(2);
}

const IDLE = new Set(['(idle)', '(program)']);
const busySamples = (p: Profile): number => {
  const idleIds = new Set(p.nodes.filter((node) => IDLE.has(node.callFrame.functionName)).map((node) => node.id));
  return p.samples.filter((id) => !idleIds.has(id)).length;
};
const read = (file: string): Profile => JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
const profile = fs.statSync(target).isDirectory()
  ? fs
      .readdirSync(target)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => read(path.join(target, f)))
      .sort((a, b) => busySamples(b) - busySamples(a))[0]
  : read(target);
if (!profile) throw new Error(`no .cpuprofile in ${target}`);

const where = (url: string): string =>
  url.replace(/^file:\/\/.*?node_modules\//, '~/').replace(/^file:\/\/.*?\/(src|dist)\//, '$1/');
const hits = new Map<number, number>();
for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
const byFunction = new Map<string, number>();
const byPackage = new Map<string, number>();
for (const node of profile.nodes) {
  const { functionName, url, lineNumber } = node.callFrame;
  const count = hits.get(node.id) ?? 0;
  const file = where(url);
  const key = `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + count);
  const pkg = file.startsWith('~/')
    ? file.split('/').slice(1, file.startsWith('~/@') ? 3 : 2).join('/')
    : /^(src|dist)\//.test(file)
      ? file.split('/').slice(0, -1).join('/')
      : file.startsWith('node:')
        ? 'node:internal'
        : functionName || '(native)';
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + count);
}
const total = profile.samples.length;
const busy = busySamples(profile);
const print = (title: string, map: Map<string, number>): void => {
  process.stdout.write(`\n${title}\n`);
  for (const [key, count] of [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(n))) {
    process.stdout.write(`${((count / total) * 100).toFixed(1).padStart(5)}%  ${key}\n`);
  }
};
process.stdout.write(`${total} samples over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s, ${((busy / total) * 100).toFixed(1)}% busy\n`);
print('self time by function', byFunction);
print('self time by package', byPackage);
