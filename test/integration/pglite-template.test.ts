import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { Migrator } from '../../src/db/migrator.js';
import { openDatabase } from '../../src/db/open.js';
import { installedPgliteVersion, readManifest, seedDataDir, templatePaths, TEMPLATE_DIR, untar } from '../../src/db/pglite-template.js';
import { silentLogger } from '../support/databases.js';

const dirs: string[] = [];
const tempDir = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'steady-template-test-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** One ustar entry: a 512-byte header (checksum included) and the data padded to 512 bytes. */
function tarEntry(name: string, data: string, type = '0'): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100);
  header.write('0000644\0', 100);
  header.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
  header.write(type, 156);
  header.write('ustar\0', 257);
  header.write('        ', 148);
  const sum = header.reduce((a, b) => a + b, 0);
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const body = Buffer.alloc(Math.ceil(data.length / 512) * 512);
  body.write(data);
  return Buffer.concat([header, body]);
}
const tarOf = (...entries: Buffer[]): Buffer => Buffer.concat([...entries, Buffer.alloc(1024)]);

describe('the shipped PGlite template', () => {
  it('was made by the installed PGlite (else: npm run pglite-template)', () => {
    expect(readManifest()?.pglite).toBe(installedPgliteVersion());
    expect(fs.statSync(templatePaths().archive).size).toBeGreaterThan(1_000_000);
  });

  it('becomes a fresh data directory: the cluster is the template, migrations run on it, and a restart keeps the data', async () => {
    const dataDir = tempDir();
    const config = loadConfig({ STEADY_DATA_DIR: dataDir }, dataDir);
    const first = await openDatabase(config, silentLogger);
    try {
      const [row] = await first.session((s) => s.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()'));
      // Not a cluster of its own initdb: initdb draws a new system identifier every time.
      expect(row?.id).toBe(readManifest()?.systemIdentifier);
      expect((await new Migrator(first).up()).length).toBeGreaterThan(0);
      await first.session((s) => s.query(`INSERT INTO users (subject) VALUES ('template-test')`));
    } finally {
      await first.close();
    }
    expect(await seedDataDir(path.join(dataDir, 'pgdata'))).toBe('existing');
    const again = await openDatabase(config, silentLogger);
    try {
      expect(await new Migrator(again).isCurrent()).toBe(true);
      const users = await again.session((s) => s.query<{ subject: string }>('SELECT subject FROM users'));
      expect(users.map((u) => u.subject)).toEqual(['template-test']);
    } finally {
      await again.close();
    }
    // Two PGlite starts and the migrations: generous for a loaded machine (a bound on nothing).
  }, 300_000);

  it('is not used when another PGlite made it, nor when there is none', async () => {
    const stale = tempDir();
    fs.copyFileSync(templatePaths().archive, templatePaths(stale).archive);
    fs.writeFileSync(templatePaths(stale).manifest, JSON.stringify({ ...readManifest(), pglite: '0.0.1' }));
    const pgdata = path.join(tempDir(), 'pgdata');
    expect(await seedDataDir(pgdata, stale)).toBe('stale-template');
    expect(await seedDataDir(pgdata, tempDir())).toBe('no-template');
    expect(fs.existsSync(pgdata)).toBe(false);
    expect(await seedDataDir(pgdata, TEMPLATE_DIR)).toBe('seeded');
    expect(fs.readFileSync(path.join(pgdata, 'PG_VERSION'), 'utf8').trim()).toMatch(/^\d+$/);
  });

  it('leaves no data directory behind when the archive is cut short', async () => {
    const broken = tempDir();
    const whole = fs.readFileSync(templatePaths().archive);
    fs.writeFileSync(templatePaths(broken).archive, whole.subarray(0, whole.length >> 1));
    fs.copyFileSync(templatePaths().manifest, templatePaths(broken).manifest);
    const parent = tempDir();
    await expect(seedDataDir(path.join(parent, 'pgdata'), broken)).rejects.toThrow();
    expect(fs.readdirSync(parent)).toEqual([]);
  });
});

describe('untar', () => {
  it('writes directories and files, skipping the lock file of the instance that was dumped', async () => {
    const dest = tempDir();
    const archive = tarOf(tarEntry('/base/', '', '5'), tarEntry('/base/1/PG_VERSION', '17\n'), tarEntry('/postmaster.pid', '42\n'), tarEntry('/global/x', 'y'.repeat(700)));
    // Fed in small chunks: headers and data cross chunk boundaries.
    const chunks = Array.from({ length: Math.ceil(archive.length / 100) }, (_, i) => archive.subarray(i * 100, (i + 1) * 100));
    await untar(Readable.from(chunks), dest);
    expect(fs.readFileSync(path.join(dest, 'base/1/PG_VERSION'), 'utf8')).toBe('17\n');
    expect(fs.readFileSync(path.join(dest, 'global/x'), 'utf8')).toBe('y'.repeat(700));
    expect(fs.existsSync(path.join(dest, 'postmaster.pid'))).toBe(false);
  });

  it('refuses a path that leaves the directory, and entries that are not files or directories', async () => {
    const parent = tempDir();
    const dest = path.join(parent, 'inside');
    await expect(untar(Readable.from([tarOf(tarEntry('../outside', 'x'))]), dest)).rejects.toThrow(/unsafe path/);
    expect(fs.existsSync(path.join(parent, 'outside'))).toBe(false);
    await expect(untar(Readable.from([tarOf(tarEntry('link', '', '2'))]), dest)).rejects.toThrow(/unsupported/);
    await expect(untar(Readable.from([tarEntry('cut', 'z'.repeat(700)).subarray(0, 600)]), dest)).rejects.toThrow(/truncated/);
  });
});
