import { readFileSync } from 'node:fs';

/**
 * steady's version, from the package.json beside src/ and dist/ (a checkout and the container image
 * both have it there): what `steady --version` prints and the start-up log line says.
 */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
