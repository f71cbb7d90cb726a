import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readTextIfExists } from '../lib/read-if-exists.js';
import type { Env } from './io.js';

/** Where the CLI finds its server and token when neither flags nor STEADY_URL/STEADY_TOKEN give them. */
export interface ContextFile {
  readonly url: string;
  readonly token: string;
}

/** `$XDG_CONFIG_HOME/steady/config.json`, by default `~/.config/steady/config.json`. */
export function contextFilePath(env: Env): string {
  const base = env.XDG_CONFIG_HOME?.trim() || path.join(env.HOME?.trim() || os.homedir(), '.config');
  return path.join(base, 'steady', 'config.json');
}

/** The context file, null when there is none; a file that is not ours is an error that names it. */
export function readContextFile(env: Env): ContextFile | null {
  const file = contextFilePath(env);
  const text = readTextIfExists(file);
  if (text === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  const { url, token } = (parsed ?? {}) as { url?: unknown; token?: unknown };
  if (typeof url !== 'string' || typeof token !== 'string') throw new Error(`${file}: expected {"url": "...", "token": "..."}; delete it or run \`steady dev\` to write it again`);
  return { url, token };
}

/**
 * Writes the context file: only its owner may read it (it holds a token), and it is replaced whole
 * (a temporary file renamed over it), so a reader never sees half of it.
 */
export function writeContextFile(env: Env, context: ContextFile): string {
  const file = contextFilePath(env);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, `${JSON.stringify({ url: context.url, token: context.token }, null, 2)}\n`, { mode: 0o600 });
  // A mode given to writeFileSync applies only when the file is created, and umask may narrow it: set it.
  fs.chmodSync(temporary, 0o600);
  fs.renameSync(temporary, file);
  return file;
}
