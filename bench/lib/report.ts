import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Figure {
  readonly scenario: string;
  readonly metric: string;
  readonly value: number;
  readonly unit: string;
  /** What the figure is compared with, measured in the same run. */
  readonly baseline?: { readonly name: string; readonly value: number; readonly unit: string };
  /** value / baseline.value (for "higher is better" figures) unless stated otherwise in `note`. */
  readonly ratio?: number;
  /** The issue's target, and whether this run met it. */
  readonly target?: string;
  readonly met?: boolean;
  readonly note?: string;
}

export interface Machine {
  readonly cpus: number;
  readonly model: string;
  readonly memoryGb: number;
  readonly loadAverageAtStart: readonly number[];
  readonly node: string;
  readonly postgres: string;
  readonly pglite: string;
  readonly platform: string;
}

export function machineInfo(postgres: string, pglite: string): Machine {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    model: cpus[0]?.model ?? 'unknown',
    memoryGb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    node: process.version,
    postgres,
    pglite,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  if (abs >= 100_000) return Math.round(n).toLocaleString('en-US');
  if (abs >= 100) return (Math.round(n * 10) / 10).toLocaleString('en-US');
  if (abs >= 1) return String(Math.round(n * 100) / 100);
  return String(Math.round(n * 1000) / 1000);
}

const ratioText = (f: Figure): string => (f.ratio === undefined ? '' : `${fmt(f.ratio)}×`);
const baselineText = (f: Figure): string => (f.baseline ? `${fmt(f.baseline.value)} ${f.baseline.unit} (${f.baseline.name})` : '');
const targetText = (f: Figure): string => (f.target ? `${f.target}${f.met === undefined ? '' : f.met ? ' ✓' : ' ✗'}` : '');

export function textTable(figures: readonly Figure[]): string {
  const rows = [['scenario', 'metric', 'value', 'baseline (same run)', 'ratio', 'target'], ...figures.map((f) => [f.scenario, f.metric, `${fmt(f.value)} ${f.unit}`, baselineText(f), ratioText(f), targetText(f)])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r, j) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ') + (j === 0 ? `\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : '')).join('\n');
}

export function markdown(title: string, machine: Machine, mode: string, figures: readonly Figure[], notes: readonly string[]): string {
  const lines = [
    `# ${title}`,
    '',
    `${new Date().toISOString()} · mode \`${mode}\` · ${machine.cpus} × ${machine.model} · ${machine.memoryGb} GB · load average at start ${machine.loadAverageAtStart.join(' ')}`,
    `Node ${machine.node} · PostgreSQL ${machine.postgres} · PGlite ${machine.pglite} · ${machine.platform}`,
    '',
    'Every ratio compares with a baseline measured in the same run on the same machine (it is shared and noisy: absolute figures move, ratios much less).',
    '',
    '| scenario | metric | value | baseline (same run) | ratio | target |',
    '| --- | --- | --- | --- | --- | --- |',
    ...figures.map((f) => `| ${f.scenario} | ${f.metric}${f.note ? ` (${f.note})` : ''} | ${fmt(f.value)} ${f.unit} | ${baselineText(f)} | ${ratioText(f)} | ${targetText(f)} |`),
    '',
    ...(notes.length > 0 ? ['## Notes', '', ...notes.map((n) => `- ${n}`), ''] : []),
  ];
  return lines.join('\n');
}

export function writeResults(dir: string, stem: string, data: unknown, md: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${stem}.json`), `${JSON.stringify(data, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, `${stem}.md`), md);
}
