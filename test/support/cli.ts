import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Cli, Env } from '../../src/cli/io.js';
import { runCli } from '../../src/cli/program.js';

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface InProcessOptions {
  readonly env?: Env;
  readonly stdin?: string;
  readonly isTTY?: boolean;
  /** stdin is a terminal (an operator who can answer a question). */
  readonly stdinIsTTY?: boolean;
  readonly signal?: AbortSignal;
  /** Called with stdout as it grows, e.g. to stop a `-w` once the expected line appears. */
  readonly onOutput?: (stdout: string) => void;
}

/** Runs `steady <argv>` in this process, with its own environment (nothing from the test process's), capturing the output. */
export async function runInProcess(argv: readonly string[], options: InProcessOptions = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const cli: Cli = {
    env: options.env ?? {},
    out: (text) => {
      stdout += text;
      options.onOutput?.(stdout);
    },
    err: (text) => void (stderr += text),
    isTTY: options.isTTY ?? false,
    stdin: Object.assign(Readable.from(options.stdin === undefined ? [] : [Buffer.from(options.stdin)]), { isTTY: options.stdinIsTTY === true }),
    signal: options.signal,
    exitCode: 0,
  };
  const code = await runCli(argv, cli);
  return { code, stdout, stderr };
}

/** Writes a file (a manifest for `apply -f`) into `dir` and answers its path. */
export function writeFileIn(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}
