import fs from 'node:fs';
import { sampleProcess } from './steady.js';

/** CPU seconds so far of PostgreSQL (every process of the server), one steady process and this one. */
export interface CpuMark {
  readonly at: number;
  readonly postgres: number;
  readonly steady: number;
  readonly self: number;
}

export function cpuMark(steadyPid: number): CpuMark {
  let postgres = 0;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) !== 'postgres') continue;
      postgres += sampleProcess(Number(pid))?.cpuSec ?? 0;
    } catch {
      // Gone between the listing and the read.
    }
  }
  const usage = process.cpuUsage();
  return { at: performance.now(), postgres, steady: sampleProcess(steadyPid)?.cpuSec ?? 0, self: (usage.user + usage.system) / 1e6 };
}

/** Where the cores went between two marks, in % of one core: what limits a throughput figure. */
export function cpuSplit(from: CpuMark, to: CpuMark): string {
  const seconds = (to.at - from.at) / 1000;
  const pct = (a: number, b: number) => Math.round(((b - a) / seconds) * 100);
  return `CPU in % of one core: PostgreSQL ${pct(from.postgres, to.postgres)}, steady ${pct(from.steady, to.steady)}, load generator ${pct(from.self, to.self)}`;
}
