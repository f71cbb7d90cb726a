import type { TestProject } from 'vitest/node';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { openPostgres } from '../../src/db/postgres.js';
import { Migrator } from '../../src/db/migrator.js';
import { openPglite } from '../../src/db/pglite.js';
import { dockerUnavailableReason, importBusyboxImage, startDockerEngine, type DockerEngineProcess } from './docker-engine.js';
import { currentTemplate } from '../../src/db/pglite-template.js';
import { startPostgresServer, type PostgresServer } from './postgres-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgTemplate: string;
    pgliteTemplate: string;
    /** The private Docker engine's `unix://` address, or '' when the Docker tests cannot run here. */
    dockerHost: string;
    /** Why the Docker tests are skipped ('' when they run). */
    dockerSkipReason: string;
    pgliteBareTemplate: string;
  }
}

/**
 * Starts one PostgreSQL server for the whole run (or uses DATABASE_URL), and migrates a template
 * database once; every test file clones it (CREATE DATABASE … TEMPLATE), which takes milliseconds.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let server: PostgresServer | null = null;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    server = await startPostgresServer();
    adminUrl = server.url;
  }
  const template = `steady_template_${process.pid}`;
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${template}`);
  await adminQuery(adminUrl, `CREATE DATABASE ${template}`);
  const database = openPostgres({ url: withDatabase(adminUrl, template), poolMax: 2, logger: pino({ level: 'silent' }) });
  await new Migrator(database).up();
  await database.close();
  // No connections to the template from now on (autovacuum included), so cloning never waits for one.
  await adminQuery(adminUrl, `ALTER DATABASE ${template} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`);

  // PGlite's initdb costs seconds (and 900 MB): the shipped template is initdb's output; a data
  // directory dumped once, bare and migrated, loads in under a second.
  const shipped = currentTemplate();
  const pglite = await openPglite(null, 'archive' in shipped ? { loadDataDir: new Blob([fs.readFileSync(shipped.archive)]) } : {});
  const pgliteBareTemplate = path.join(os.tmpdir(), `steady-pglite-bare-${process.pid}.tar`);
  fs.writeFileSync(pgliteBareTemplate, Buffer.from(await (await pglite.dump()).arrayBuffer()));
  await new Migrator(pglite).up();
  const pgliteTemplate = path.join(os.tmpdir(), `steady-pglite-template-${process.pid}.tar`);
  fs.writeFileSync(pgliteTemplate, Buffer.from(await (await pglite.dump()).arrayBuffer()));
  await pglite.close();

  // A private Docker engine for the runtime tests, with the busybox test image in it.
  let docker: DockerEngineProcess | null = null;
  const dockerSkipReason = dockerUnavailableReason();
  if (dockerSkipReason === null) {
    docker = await startDockerEngine();
    await importBusyboxImage(docker);
  } else if (process.env.STEADY_REQUIRE_DOCKER === '1') {
    throw new Error(`STEADY_REQUIRE_DOCKER=1 but the Docker tests cannot run: ${dockerSkipReason}`);
  } else {
    process.stderr.write(`\nDocker tests will be skipped: ${dockerSkipReason}\n\n`);
  }
  project.provide('dockerHost', docker?.host ?? '');
  project.provide('dockerSkipReason', dockerSkipReason ?? '');

  project.provide('pgAdminUrl', adminUrl);
  project.provide('pgliteTemplate', pgliteTemplate);
  project.provide('pgliteBareTemplate', pgliteBareTemplate);
  project.provide('pgTemplate', template);
  return async () => {
    fs.rmSync(pgliteTemplate, { force: true });
    await docker?.destroy();
    fs.rmSync(pgliteBareTemplate, { force: true });
    if (server) {
      await server.destroy();
    } else {
      await adminQuery(adminUrl, `ALTER DATABASE ${template} WITH IS_TEMPLATE false`).catch(() => undefined);
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${template} WITH (FORCE)`).catch(() => undefined);
    }
  };
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export async function adminQuery(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
