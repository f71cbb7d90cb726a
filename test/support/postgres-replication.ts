import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { findPostgresBin, freePort } from './postgres-server.js';

const run = promisify(execFile);

/** One server of a replicated pair. */
export interface ReplicaServer {
  readonly port: number;
  readonly url: string;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
}

/**
 * A primary and a synchronous standby from the system's PostgreSQL binaries, as an HA setup
 * (Patroni, a cloud's managed service) runs them: streaming replication, `synchronous_commit = on`
 * and the standby named in `synchronous_standby_names`, so a commit is acknowledged only once the
 * standby has it. As root, both run as the `postgres` user (PostgreSQL refuses root).
 */
export interface ReplicatedPair {
  readonly primary: ReplicaServer;
  readonly standby: ReplicaServer;
  /** `pg_ctl promote`, waiting until the standby accepts writes. */
  promote(): Promise<void>;
  destroy(): Promise<void>;
}

const STANDBY_NAME = 'steady_standby';

export async function startReplicatedPair(): Promise<ReplicatedPair> {
  const bin = findPostgresBin();
  const asRoot = process.getuid?.() === 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'steady-pg-ha-'));
  if (asRoot) {
    fs.chmodSync(dir, 0o755);
    execFileSync('chown', ['postgres:postgres', dir]);
  }
  const as = (cmd: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args]] : [path.join(bin, cmd), args];
  const primaryData = path.join(dir, 'primary');
  const standbyData = path.join(dir, 'standby');
  const [primaryPort, standbyPort] = [await freePort(), await freePort()];

  await run(...as('initdb', ['-D', primaryData, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync']));
  // Both servers get the same settings: after a promotion the standby is the primary. No fsync (the
  // machine does not crash in these tests; the servers do), but synchronous replication for real.
  const settings = (port: number) =>
    [
      `-p ${port}`,
      `-k ${dir}`,
      '-c listen_addresses=127.0.0.1',
      '-c max_connections=300',
      '-c fsync=off',
      '-c full_page_writes=off',
      '-c wal_level=replica',
      '-c max_wal_senders=5',
      '-c hot_standby=on',
      '-c synchronous_commit=on',
      '-c shared_buffers=64MB',
    ].join(' ');
  const server = (data: string, port: number): ReplicaServer & { start(): Promise<void> } => ({
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async start() {
      await run(...as('pg_ctl', ['-D', data, '-o', settings(port), '-l', path.join(dir, `${path.basename(data)}.log`), '-w', '-t', '60', 'start']));
    },
    async stop(mode = 'fast') {
      await run(...as('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']));
    },
  });
  // In the configuration file, not on the command line: a promoted standby changes it (ALTER SYSTEM).
  fs.appendFileSync(path.join(primaryData, 'postgresql.conf'), `synchronous_standby_names = '${STANDBY_NAME}'\n`);
  const primary = server(primaryData, primaryPort);
  const standby = server(standbyData, standbyPort);
  await primary.start();
  await run(...as('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres', '-D', standbyData, '-X', 'stream', '-c', 'fast', '--no-sync']));
  // A standby: the signal file, and where its primary is, under the name the primary waits for.
  const conninfo = `host=127.0.0.1 port=${primaryPort} user=postgres application_name=${STANDBY_NAME}`;
  fs.writeFileSync(path.join(standbyData, 'standby.signal'), '');
  fs.appendFileSync(path.join(standbyData, 'postgresql.auto.conf'), `primary_conninfo = '${conninfo}'\n`);
  if (asRoot) execFileSync('chown', ['-R', 'postgres:postgres', standbyData]);
  await standby.start();
  await waitForSyncStandby(primary.url);

  return {
    primary,
    standby,
    async promote() {
      await run(...as('pg_ctl', ['-D', standbyData, '-w', '-t', '60', 'promote']));
      // Alone now, it would wait for a synchronous standby forever: an HA manager (Patroni outside
      // strict mode) stops requiring one until a new standby joins.
      const client = new pg.Client({ connectionString: standby.url });
      await client.connect();
      try {
        await client.query(`ALTER SYSTEM SET synchronous_standby_names = ''`);
        await client.query('SELECT pg_reload_conf()');
      } finally {
        await client.end();
      }
    },
    async destroy() {
      await Promise.all([primary.stop('immediate').catch(() => undefined), standby.stop('immediate').catch(() => undefined)]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForSyncStandby(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (let i = 0; i < 600; i++) {
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = $1 AND sync_state = 'sync' AND state = 'streaming'`,
        [STANDBY_NAME],
      );
      if (rows[0]!.n === 1) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('the standby never became synchronous');
  } finally {
    await client.end();
  }
}
