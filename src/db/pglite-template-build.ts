/**
 * `npm run pglite-template`: makes assets/pglite/ (src/db/pglite-template.ts) with the installed
 * PGlite's initdb. Run it after upgrading @electric-sql/pglite; migrations need nothing.
 */
import fs from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { installedPgliteVersion, TEMPLATE_DIR, templatePaths, type TemplateManifest } from './pglite-template.js';

const pglite = new PGlite();
await pglite.waitReady;
const [row] = (await pglite.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows;
const archive = Buffer.from(await (await pglite.dumpDataDir('gzip')).arrayBuffer());
await pglite.close();
const manifest: TemplateManifest = { pglite: installedPgliteVersion(), systemIdentifier: row!.id };
fs.mkdirSync(TEMPLATE_DIR, { recursive: true });
fs.writeFileSync(templatePaths().archive, archive);
fs.writeFileSync(templatePaths().manifest, `${JSON.stringify(manifest, null, 2)}\n`);
process.stdout.write(`${templatePaths().archive}: ${archive.length} bytes, PGlite ${manifest.pglite}\n`);
