import { parseArgs } from 'node:util';
import { signToken } from '../api/tokens.js';
import type { Config } from '../config.js';
import { NODE_LIMITS } from '../domain/validation.js';
import { parseDuration } from '../lib/duration.js';
import { readDevSecret, readOrCreateDevSecret } from './dev-secret.js';

export const TOKEN_USAGE = `usage: steady token --sub NAME [--role admin|node]... [--ttl 24h]

  --sub NAME     the subject: a user, or for --role node the node's name
  --role ROLE    admin or node; repeat it (or separate with commas) for both
  --ttl DURATION how long the token is valid (default 24h; ms, s, m, h)

Prints a JWT signed (HS256) with JWT_SECRET, or without it with the development
secret in STEADY_DATA_DIR (created if needed).`;

export const TOKEN_ROLES = ['admin', 'node'] as const;
export type TokenRole = (typeof TOKEN_ROLES)[number];

export type SigningSecret = { readonly secret: string; readonly source: string } | { readonly error: string };

/**
 * The secret tokens are signed with: JWT_SECRET, else (development only: no DATABASE_URL) the data
 * directory's secret, which `create` generates when missing. An expected outcome, so a value, not a throw.
 */
export function resolveSigningSecret(config: Config, mode: 'read' | 'create'): SigningSecret {
  if (config.jwt.secret !== null) return { secret: config.jwt.secret, source: 'JWT_SECRET' };
  if (config.jwt.jwksUrl !== null) {
    return { error: 'JWT_SECRET is not set and JWT_JWKS_URL is: tokens come from your identity provider, steady can only sign with JWT_SECRET' };
  }
  if (config.databaseUrl !== null) {
    return { error: 'JWT_SECRET is not set: with DATABASE_URL the API verifies tokens with JWT_SECRET, so set the same value here' };
  }
  const secret = mode === 'create' ? readOrCreateDevSecret(config.dataDir) : readDevSecret(config.dataDir);
  if (secret === null) {
    return { error: `JWT_SECRET is not set and ${config.dataDir} holds no development secret (start \`steady dev\` once, or set JWT_SECRET)` };
  }
  return { secret, source: `${config.dataDir}/jwt-secret` };
}

/** `steady token --sub NAME [--role admin|node]... [--ttl 24h]`; returns the exit code. */
export async function runToken(args: readonly string[], config: Config): Promise<number> {
  let values: { sub?: string; role?: string[]; ttl?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        sub: { type: 'string' },
        role: { type: 'string', multiple: true },
        ttl: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    return usageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) {
    process.stdout.write(`${TOKEN_USAGE}\n`);
    return 0;
  }
  const sub = values.sub?.trim() ?? '';
  if (sub === '') return usageError('--sub is required');
  const roles = [...new Set((values.role ?? []).flatMap((r) => r.split(',')).map((r) => r.trim()).filter((r) => r !== ''))];
  const unknown = roles.filter((r) => !(TOKEN_ROLES as readonly string[]).includes(r));
  if (unknown.length > 0) return usageError(`unknown role ${JSON.stringify(unknown[0])}; roles are ${TOKEN_ROLES.join(' and ')}`);
  if (roles.includes('node') && !(sub.length <= NODE_LIMITS.name.max && NODE_LIMITS.name.pattern.test(sub))) {
    return usageError(`with --role node, --sub is the node name: 1-${NODE_LIMITS.name.max} letters, digits, ".", "-" or "_"`);
  }
  const ttlMs = parseDuration(values.ttl ?? '24h');
  if (ttlMs === null || ttlMs < 1000) return usageError(`--ttl: expected a duration of at least 1s such as 30m or 24h, got ${JSON.stringify(values.ttl)}`);

  const resolved = resolveSigningSecret(config, 'create');
  if ('error' in resolved) {
    process.stderr.write(`steady token: ${resolved.error}\n`);
    return 1;
  }
  const token = await signToken(resolved.secret, {
    sub,
    roles,
    ttlSec: Math.floor(ttlMs / 1000),
    issuer: config.jwt.issuer,
    audience: config.jwt.audience,
  });
  process.stdout.write(`${token}\n`);
  return 0;
}

function usageError(message: string): number {
  process.stderr.write(`steady token: ${message}\n\n${TOKEN_USAGE}\n`);
  return 2;
}
