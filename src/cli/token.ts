import { Option, type Command } from 'commander';
import { loadConfig, type Config } from '../config.js';
import { NODE_LIMITS } from '../domain/validation.js';
import { collect, durationAtLeast, usageError } from './arguments.js';
import { readDevSecret, readOrCreateDevSecret } from './dev-secret.js';
import type { Cli } from './io.js';

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

/** `steady token --sub NAME [--role admin|node]... [--ttl 24h]`. */
export function addTokenCommand(program: Command, cli: Cli): Command {
  return program
    .command('token')
    .summary('print a JWT signed with JWT_SECRET')
    .description(
      'Prints a JWT signed (HS256) with JWT_SECRET, or without it with the development secret in STEADY_DATA_DIR (created if needed).',
    )
    .requiredOption('--sub <name>', "the subject: a user, or for --role node the node's name")
    .option('--role <role>', 'admin or node; repeat it (or separate with commas) for both', collect)
    .addOption(new Option('--ttl <duration>', 'how long the token is valid (ms, s, m, h)').argParser(durationAtLeast(1000, '30m or 24h')).default(86_400_000, '24h'))
    .action(async (options: { sub: string; role?: string[]; ttl: number }, command: Command) => {
      const sub = options.sub.trim();
      if (sub === '') usageError(command, '--sub must not be empty');
      // What the API takes as a subject (auth.ts): a token it would refuse is no use to print.
      if (sub.length > 255 || /\p{Cc}/u.test(sub)) usageError(command, '--sub: at most 255 characters, without control characters');
      const roles = [...new Set((options.role ?? []).flatMap((r) => r.split(',')).map((r) => r.trim()).filter((r) => r !== ''))];
      const unknown = roles.filter((r) => !(TOKEN_ROLES as readonly string[]).includes(r));
      if (unknown.length > 0) usageError(command, `unknown role ${JSON.stringify(unknown[0])}; roles are ${TOKEN_ROLES.join(' and ')}`);
      if (roles.includes('node') && !(sub.length <= NODE_LIMITS.name.max && NODE_LIMITS.name.pattern.test(sub))) {
        usageError(command, `with --role node, --sub is the node name: 1-${NODE_LIMITS.name.max} letters, digits, ".", "-" or "_"`);
      }
      const config = loadConfig(cli.env);
      const resolved = resolveSigningSecret(config, 'create');
      if ('error' in resolved) {
        cli.err(`steady token: ${resolved.error}\n`);
        cli.exitCode = 1;
        return;
      }
      const { signToken } = await import('../api/tokens.js');
      const token = await signToken(resolved.secret, {
        sub,
        roles,
        ttlSec: Math.floor(options.ttl / 1000),
        issuer: config.jwt.issuer,
        audience: config.jwt.audience,
      });
      cli.out(`${token}\n`);
    });
}
