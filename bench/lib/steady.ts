import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/steady.js');

const live = new Set<ChildProcess>();

/** Kills every steady process this run started (on SIGINT/SIGTERM of the benchmark). */
export function killAllChildren(): void {
  for (const child of live) child.kill('SIGKILL');
}

export interface SteadyChild {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the first line matching `pattern` (and the time it was seen), or rejects on timeout/exit. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<{ line: string; at: number }>;
  /** The last lines of output, for error messages. */
  tail(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  readonly name: string;
  readonly args: readonly string[];
  readonly env: Record<string, string>;
  /** Extra node flags, e.g. --cpu-prof. */
  readonly nodeArgs?: readonly string[];
  /** Another checkout's bin/steady.js, to compare two versions in one run (default: this one's). */
  readonly bin?: string;
}

/**
 * Runs `steady <args>` as its own process, the way an operator does. Output is scanned line by line
 * for the patterns someone waits for, and only a short tail is kept: a controller at full speed logs a
 * line per reconcile, and the benchmark must not grow with it.
 */
export function startSteady(options: StartOptions): SteadyChild {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.bin ?? BIN, ...options.args], {
    env: { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  const tailLines: string[] = [];
  const waiters = new Set<(line: string, at: number) => boolean>();
  let partial = '';
  const onData = (chunk: Buffer): void => {
    const at = performance.now();
    const text = partial + chunk.toString('utf8');
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      tailLines.push(line);
      if (tailLines.length > 60) tailLines.shift();
      if (waiters.size > 0) for (const w of [...waiters]) if (w(line, at)) waiters.delete(w);
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let dead = false;
  void exited.then(() => {
    dead = true;
  });
  const tail = (): string => [...tailLines, partial].join('\n').slice(-4000);
  return {
    name: options.name,
    child,
    pid: child.pid!,
    tail,
    waitForLine(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${options.name}: timed out waiting for ${pattern}:\n${tail()}`));
        }, timeoutMs);
        const check = (line: string, at: number): boolean => {
          if (!pattern.test(line)) return false;
          clearTimeout(timer);
          resolve({ line, at });
          return true;
        };
        // A line already seen counts too.
        const seen = tailLines.find((l) => pattern.test(l));
        if (seen !== undefined) {
          clearTimeout(timer);
          resolve({ line: seen, at: performance.now() });
          return;
        }
        waiters.add(check);
        void exited.then(() =>
          setTimeout(() => {
            if (!waiters.delete(check)) return;
            clearTimeout(timer);
            reject(new Error(`${options.name} exited before ${pattern}:\n${tail()}`));
          }, 50),
        );
      });
    },
    async stop(graceMs = 12_000) {
      if (dead) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Starts `steady serve --role ROLE` and returns it with the URL it bound (PORT=0). */
export async function serve(
  name: string,
  role: 'api' | 'controller' | 'all',
  env: Record<string, string>,
  options: { migrate?: boolean; nodeArgs?: readonly string[] } = {},
): Promise<{ proc: SteadyChild; url: string }> {
  const proc = startSteady({
    name,
    args: ['serve', '--role', role, ...(options.migrate ? ['--migrate'] : [])],
    env: { PORT: '0', ...env },
    nodeArgs: options.nodeArgs,
  });
  const { line } = await proc.waitForLine(/"msg":"steady is up"/, 90_000);
  return { proc, url: (JSON.parse(line) as { url: string }).url };
}

export interface ProcSample {
  /** Resident set size now, and its high-water mark, in MB. */
  readonly rssMb: number;
  readonly hwmMb: number;
  /** user + system CPU seconds consumed so far. */
  readonly cpuSec: number;
}

const CLOCK_TICKS = 100;

/** What /proc says about a process (Linux). */
export function sampleProcess(pid: number): ProcSample | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024, cpuSec: (utime + stime) / CLOCK_TICKS };
  } catch {
    return null;
  }
}

/** Samples a process every `everyMs` and remembers the peak RSS (VmHWM is the kernel's own peak). */
export class ProcessWatcher {
  private timer: NodeJS.Timeout;
  peakRssMb = 0;
  peakHwmMb = 0;

  constructor(
    readonly pid: number,
    everyMs = 250,
  ) {
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
    this.sample();
  }

  sample(): ProcSample | null {
    const s = sampleProcess(this.pid);
    if (s) {
      this.peakRssMb = Math.max(this.peakRssMb, s.rssMb);
      this.peakHwmMb = Math.max(this.peakHwmMb, s.hwmMb);
    }
    return s;
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}
