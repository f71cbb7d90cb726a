import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGunzip } from 'node:zlib';

/**
 * A data directory exactly as PGlite's initdb leaves it, shipped with the package (assets/pglite/).
 * A fresh `steady dev` unpacks it instead of running initdb: PGlite's initdb runs a second PostgreSQL
 * and the initdb program in this process and keeps copies of their heaps, which took the process to
 * 950 MB resident (a directory that exists opens in under half of that). Migrations are not in it, so
 * it never goes stale when one is added: they run on top, as on any existing directory. Only a new
 * PGlite (another catalog) makes it stale; the manifest names the PGlite it was made with, and any
 * other version runs initdb as before (`npm run pglite-template` makes a new one).
 */
export const TEMPLATE_DIR = fileURLToPath(new URL('../../assets/pglite/', import.meta.url));
const ARCHIVE = 'initdb.tar.gz';
const MANIFEST = 'initdb.json';

export interface TemplateManifest {
  /** The @electric-sql/pglite version whose initdb made the archive. */
  readonly pglite: string;
  /** pg_control_system().system_identifier of the cluster in the archive. */
  readonly systemIdentifier: string;
}

export function templatePaths(dir: string = TEMPLATE_DIR): { archive: string; manifest: string } {
  return { archive: path.join(dir, ARCHIVE), manifest: path.join(dir, MANIFEST) };
}

export function readManifest(dir: string = TEMPLATE_DIR): TemplateManifest | null {
  try {
    return JSON.parse(fs.readFileSync(templatePaths(dir).manifest, 'utf8')) as TemplateManifest;
  } catch {
    return null;
  }
}

/** The installed PGlite's version (its package.json does not export itself: found above its entry point). */
export function installedPgliteVersion(): string {
  for (let dir = path.dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite')); ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@electric-sql/pglite' && pkg.version) return pkg.version;
    }
    if (path.dirname(dir) === dir) throw new Error('@electric-sql/pglite: package.json not found');
  }
}

/** The archive when it was made by the installed PGlite; why not otherwise. */
export function currentTemplate(dir: string = TEMPLATE_DIR): { archive: string } | { missing: 'no-template' | 'stale-template' } {
  const manifest = readManifest(dir);
  const { archive } = templatePaths(dir);
  if (manifest === null || !fs.existsSync(archive)) return { missing: 'no-template' };
  if (manifest.pglite !== installedPgliteVersion()) return { missing: 'stale-template' };
  return { archive };
}

export type SeedOutcome = 'existing' | 'seeded' | 'no-template' | 'stale-template';

/**
 * Gives `pgdata` the template's contents when it holds no cluster yet. Unpacked beside it and renamed
 * into place, so a start killed half-way never leaves a directory that looks like a cluster. The caller
 * holds the data directory's lock.
 */
export async function seedDataDir(pgdata: string, templateDir: string = TEMPLATE_DIR): Promise<SeedOutcome> {
  if (fs.existsSync(path.join(pgdata, 'PG_VERSION'))) return 'existing';
  const template = currentTemplate(templateDir);
  if ('missing' in template) return template.missing;
  const staging = `${pgdata}.unpacking-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging, { recursive: true });
  try {
    await untar(fs.createReadStream(template.archive).pipe(createGunzip()), staging);
    // An empty pgdata (made by hand, or by a start that failed before initdb) is replaced.
    fs.rmSync(pgdata, { recursive: true, force: true });
    fs.renameSync(staging, pgdata);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw err;
  }
  return 'seeded';
}

const BLOCK = 512;

/**
 * Writes a ustar stream's directories and regular files under `dest` (what PGlite's dumps hold);
 * refuses anything else, and any path that would leave `dest`.
 */
export async function untar(stream: AsyncIterable<Buffer>, dest: string): Promise<void> {
  let pending: Buffer = Buffer.alloc(0);
  let file: { fd: number; left: number; padding: number } | null = null;
  let skip = 0;
  let ended = false;
  for await (const chunk of stream) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let at = 0;
    while (!ended) {
      if (skip > 0) {
        const n = Math.min(skip, pending.length - at);
        at += n;
        skip -= n;
        if (skip > 0) break;
      }
      if (file !== null) {
        const n = Math.min(file.left, pending.length - at);
        if (n > 0) fs.writeSync(file.fd, pending, at, n);
        at += n;
        file.left -= n;
        if (file.left > 0) break;
        fs.closeSync(file.fd);
        skip = file.padding;
        file = null;
        continue;
      }
      if (pending.length - at < BLOCK) break;
      const header = pending.subarray(at, at + BLOCK);
      at += BLOCK;
      if (header.every((b) => b === 0)) {
        ended = true;
        break;
      }
      const field = (from: number, length: number): string => header.toString('utf8', from, from + length).replace(/\0.*$/s, '');
      const prefix = field(345, 155);
      const name = (prefix ? `${prefix}/` : '') + field(0, 100);
      const size = Number.parseInt(field(124, 12).trim() || '0', 8);
      const type = field(156, 1) || '0';
      const target = path.resolve(dest, `.${path.posix.sep}${name.replace(/^\/+/, '')}`);
      if (target !== dest && !target.startsWith(dest + path.sep)) throw new Error(`template archive: unsafe path ${JSON.stringify(name)}`);
      if (name.replace(/^\/+/, '') === 'postmaster.pid') {
        // The lock file of the instance the dump was taken from.
        skip = size + ((BLOCK - (size % BLOCK)) % BLOCK);
      } else if (type === '5') {
        fs.mkdirSync(target, { recursive: true });
      } else if (type === '0') {
        fs.mkdirSync(path.dirname(target), { recursive: true });
        file = { fd: fs.openSync(target, 'w', 0o600), left: size, padding: (BLOCK - (size % BLOCK)) % BLOCK };
      } else {
        throw new Error(`template archive: unsupported entry type ${JSON.stringify(type)} for ${name}`);
      }
    }
    pending = pending.subarray(at);
  }
  if (file !== null) {
    fs.closeSync(file.fd);
    throw new Error('template archive: truncated');
  }
}
