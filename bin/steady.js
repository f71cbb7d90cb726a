#!/usr/bin/env node
// A checkout runs its TypeScript sources (no stale build can surprise anyone); the container image
// ships only the compiled dist/. STEADY_FROM_DIST=1 runs dist/ from a checkout (after `npm run build`).
import { existsSync } from 'node:fs';

const source = new URL('../src/main.ts', import.meta.url);
const compiled = new URL('../dist/main.js', import.meta.url);
if (process.env.STEADY_FROM_DIST === '1' || !existsSync(source)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
}
