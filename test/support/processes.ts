import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/steady.js');

export interface SteadyProcess {
  readonly child: ChildProcess;
  /** Everything written so far to stdout and stderr. */
  output(): string;
  /** Resolves with the first output match, or rejects after the timeout with the output so far. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal name). */
  exited(): Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

/** Runs `steady <args>` as its own process, the way a user or an orchestrator does. */
export function startSteady(args: readonly string[], env: Record<string, string | undefined> = {}): SteadyProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    text += chunk.toString('utf8');
    for (const l of listeners) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exit = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    child,
    output: () => text,
    waitFor(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const match = text.match(pattern);
          if (match) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve(match);
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`timed out waiting for ${pattern} in:\n${text.slice(-3000)}`));
        }, timeoutMs);
        listeners.add(check);
        void exit.then(() => setTimeout(() => {
          if (listeners.has(check)) {
            listeners.delete(check);
            clearTimeout(timer);
            reject(new Error(`process exited before ${pattern} appeared:\n${text.slice(-3000)}`));
          }
        }, 50));
        check();
      });
    },
    exited: () => exit,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
  };
}

/** Runs `steady <args>` to completion. */
export async function runSteady(args: readonly string[], env: Record<string, string | undefined> = {}): Promise<{ code: number | string; output: string }> {
  const p = startSteady(args, env);
  const code = await p.exited();
  return { code, output: p.output() };
}
