import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database, Session } from './database.js';


/** Tables whose only row is written by the migration that creates them (0005's retention mark). */
const BOOKKEEPING_TABLES: ReadonlySet<string> = new Set(['steady_events_retention']);
export interface Migration {
  readonly version: string;
  readonly name: string;
  readonly up: string;
  readonly down: string;
}

export interface MigrationState {
  readonly version: string;
  readonly name: string;
  readonly appliedAt: Date | null;
}

export interface MigrationStep {
  readonly version: string;
  readonly name: string;
  readonly direction: 'up' | 'down';
  readonly durationMs: number;
}

export class MigrationError extends Error {
  constructor(
    readonly version: string,
    readonly direction: 'up' | 'down',
    override readonly cause: unknown,
  ) {
    super(`migration ${version} (${direction}) failed: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'MigrationError';
  }
}

/** `migrations/` of the package, whether running from src/ (tsx) or dist/. */
export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;
const TABLE = 'steady_migrations';
// Serialises migrators of several processes against one server (pg_advisory_lock is per session).
const LOCK_KEY = 7_461_822_355;

export function loadMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Migration[] {
  return fs
    .readdirSync(dir)
    .filter((file) => FILE_PATTERN.test(file))
    .sort()
    .map((file) => parseMigration(file, fs.readFileSync(path.join(dir, file), 'utf8')));
}

export function parseMigration(file: string, text: string): Migration {
  const [, version, name] = FILE_PATTERN.exec(file) ?? [];
  const upAt = text.search(/^-- migrate:up\s*$/m);
  const downAt = text.search(/^-- migrate:down\s*$/m);
  if (!version || !name || upAt < 0 || downAt < upAt) {
    throw new Error(`${file}: expected a "-- migrate:up" section followed by a "-- migrate:down" section`);
  }
  const up = text.slice(upAt, downAt).replace(/^-- migrate:up\s*$/m, '').trim();
  const down = text.slice(downAt).replace(/^-- migrate:down\s*$/m, '').trim();
  return { version, name, up, down };
}

/**
 * Decide, then act (Kysely's Migrator is the model): read what is applied, work out the steps, run each
 * in its own transaction together with its bookkeeping row, so a failed step leaves nothing half-done.
 */
export class Migrator {
  constructor(
    private readonly database: Database,
    private readonly migrations: readonly Migration[] = loadMigrations(),
  ) {}

  /** Read-only: a database never migrated is reported as such, and left as it is. */
  async status(): Promise<MigrationState[]> {
    return this.database.session(async (session) => this.readState(session, false));
  }

  /** True when every known migration is applied and nothing unknown is. */
  async isCurrent(): Promise<boolean> {
    const rows = await this.database.session((s) => readApplied(s, false));
    const applied = new Set(rows.map((r) => r.version));
    return applied.size === this.migrations.length && this.migrations.every((m) => applied.has(m.version));
  }

  async up(): Promise<MigrationStep[]> {
    return this.locked(async (session) => {
      const steps: MigrationStep[] = [];
      for (const migration of pending(await this.readState(session), this.migrations)) {
        steps.push(await this.apply(session, migration, 'up'));
      }
      return steps;
    });
  }

  async down(count = 1): Promise<MigrationStep[]> {
    return this.locked(async (session) => {
      const applied = (await this.readState(session)).filter((m) => m.appliedAt !== null).reverse();
      const steps: MigrationStep[] = [];
      for (const state of applied.slice(0, count)) {
        const migration = this.migrations.find((m) => m.version === state.version);
        if (!migration) throw new MigrationError(state.version, 'down', new Error('no such migration file'));
        steps.push(await this.apply(session, migration, 'down'));
      }
      return steps;
    });
  }

  /**
   * Tables that rolling back the last `count` migrations would drop while they hold rows, with how
   * many (counted up to a million). Read-only: the caller decides whether to go on. A migration's own
   * bookkeeping (the row its `up` inserts) is no one's data and is not counted.
   */
  async tablesDroppedWithRows(count = 1): Promise<{ table: string; rows: number }[]> {
    return this.database.session(async (session) => {
      const applied = (await this.readState(session, false)).filter((m) => m.appliedAt !== null).reverse().slice(0, count);
      const tables = applied.flatMap((state) => droppedTables(this.migrations.find((m) => m.version === state.version)?.down ?? ''));
      const found: { table: string; rows: number }[] = [];
      for (const table of [...new Set(tables)].filter((t) => !BOOKKEEPING_TABLES.has(t))) {
        const [exists] = await session.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [table]);
        if (!exists?.present) continue;
        const [counted] = await session.query<{ n: number }>(`SELECT count(*)::int AS n FROM (SELECT 1 FROM ${table} LIMIT 1000000) t`);
        if (counted && counted.n > 0) found.push({ table, rows: counted.n });
      }
      return found;
    });
  }

  /** The SQL `up` would run now, without running it. Read-only, like status(). */
  async pendingSql(): Promise<string> {
    const state = await this.status();
    return pending(state, this.migrations)
      .map((m) => `-- ${m.version}_${m.name}\n${script(m, 'up')}\n`)
      .join('\n');
  }

  private async apply(session: Session, migration: Migration, direction: 'up' | 'down'): Promise<MigrationStep> {
    const started = performance.now();
    try {
      await session.exec(script(migration, direction));
    } catch (err) {
      await session.exec('ROLLBACK').catch(() => undefined);
      throw new MigrationError(migration.version, direction, err);
    }
    return { version: migration.version, name: migration.name, direction, durationMs: performance.now() - started };
  }

  private async readState(session: Session, tableKnownToExist = true): Promise<MigrationState[]> {
    const rows = await readApplied(session, tableKnownToExist);
    const applied = new Map(rows.map((r) => [r.version, r.applied_at]));
    return this.migrations.map((m) => ({ version: m.version, name: m.name, appliedAt: applied.get(m.version) ?? null }));
  }

  private locked<T>(fn: (session: Session) => Promise<T>): Promise<T> {
    return this.database.session(async (session) => {
      await session.query(`SELECT pg_advisory_lock(${LOCK_KEY})`);
      try {
        await session.exec(
          `CREATE TABLE IF NOT EXISTS ${TABLE} (version TEXT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
        );
        return await fn(session);
      } finally {
        await session.query(`SELECT pg_advisory_unlock(${LOCK_KEY})`);
      }
    });
  }
}

function pending(state: readonly MigrationState[], migrations: readonly Migration[]): Migration[] {
  const applied = new Set(state.filter((s) => s.appliedAt !== null).map((s) => s.version));
  return migrations.filter((m) => !applied.has(m.version));
}

/** The tables a script drops (`DROP TABLE [IF EXISTS] a, b`), comments aside. */
export function droppedTables(sqlText: string): string[] {
  const code = sqlText.replace(/--[^\n]*/g, '');
  return [...code.matchAll(/\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?([\w.",\s]+?)\s*(?:CASCADE|RESTRICT)?\s*;/gi)].flatMap((m) =>
    m[1]!.split(',').map((name) => name.trim().replace(/"/g, '')).filter(Boolean),
  );
}

function script(migration: Migration, direction: 'up' | 'down'): string {
  const record =
    direction === 'up'
      ? `INSERT INTO ${TABLE} (version, name) VALUES ('${migration.version}', '${migration.name}');`
      : `DELETE FROM ${TABLE} WHERE version = '${migration.version}';`;
  return `BEGIN;\n${direction === 'up' ? migration.up : migration.down}\n${record}\nCOMMIT;`;
}

async function readApplied(session: Session, tableKnownToExist: boolean): Promise<{ version: string; applied_at: Date }[]> {
  if (!tableKnownToExist) {
    const [exists] = await session.query<{ present: boolean }>(`SELECT to_regclass('${TABLE}') IS NOT NULL AS present`);
    if (!exists?.present) return [];
  }
  return session.query(`SELECT version, applied_at FROM ${TABLE} ORDER BY version`);
}
