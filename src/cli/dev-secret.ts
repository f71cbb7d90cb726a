import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { readTextIfExists } from '../lib/read-if-exists.js';

/** The development JWT secret lives here, so tokens stay valid across restarts of `steady dev`. */
export function devSecretPath(dataDir: string): string {
  return path.join(dataDir, 'jwt-secret');
}

/** The data directory's secret, or null when there is none yet. */
export function readDevSecret(dataDir: string): string | null {
  const file = devSecretPath(dataDir);
  const text = readTextIfExists(file);
  if (text === null) return null;
  const secret = text.trim();
  if (secret.length < 32) {
    throw new Error(`${file} does not hold a usable secret (32 or more characters); delete it to generate a new one (tokens signed with the old one stop working)`);
  }
  return secret;
}

/**
 * The data directory's secret, generated on first use: 48 random bytes, base64url (64 characters),
 * in a file only this user can read. Creation is exclusive, so two processes racing agree on one secret.
 */
export function readOrCreateDevSecret(dataDir: string): string {
  const existing = readDevSecret(dataDir);
  if (existing !== null) return existing;
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(48).toString('base64url');
  try {
    fs.writeFileSync(devSecretPath(dataDir), `${secret}\n`, { flag: 'wx', mode: 0o600 });
    return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return readDevSecret(dataDir) ?? secret;
  }
}
