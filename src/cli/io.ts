import { loadConfig, type Config } from '../config.js';
import type { Logger } from '../logger.js';

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Where a command reads and writes, and the exit code it settles on. `main.ts` passes the process's;
 * tests pass their own environment and read the output back, so every verb runs in-process too.
 */
export interface Cli {
  readonly env: Env;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** stdout is a terminal: aligned tables may be coloured (unless NO_COLOR is set). */
  readonly isTTY: boolean;
  readonly stdin: NodeJS.ReadableStream;
  /** Ends long-running commands (`-w`, `rollout status`, `dev`) like SIGINT does; for in-process tests. */
  readonly signal?: AbortSignal;
  exitCode: number;
}

export function processCli(): Cli {
  return {
    env: process.env,
    // Looked up at each call: tests replace process.stdout.write.
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    isTTY: process.stdout.isTTY === true,
    stdin: process.stdin,
    exitCode: 0,
  };
}

/** What the server commands share: the validated configuration and a logger built from it. */
export async function serverContext(cli: Cli): Promise<{ readonly config: Config; readonly logger: Logger }> {
  const config = loadConfig(cli.env);
  const { createLogger } = await import('../logger.js');
  return { config, logger: createLogger({ level: config.logLevel, format: config.logFormat }) };
}
