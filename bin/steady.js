#!/usr/bin/env node
// A checkout runs its TypeScript sources (no stale build can surprise anyone); the container image
// ships only the compiled dist/. STEADY_FROM_DIST=1 runs dist/ from a checkout (after `npm run build`).
import { existsSync } from 'node:fs';
import v8 from 'node:v8';

// `steady dev` (API, controller and PGlite in one process, on a developer's machine): a heap kept
// small rather than fast, from the first module loaded on (src/db/pglite.ts says why and how much).
if (process.argv[2] === 'dev') v8.setFlagsFromString('--optimize-for-size');
// `steady serve` (a daemon that allocates all day): the heap may grow to twice what the last full
// collection kept, as Go's GOGC=100 lets Kubernetes' controllers grow, where V8 lets it reach four
// times when collections are cheap. At a million replicas the controller kept about 50 MB and
// reserved over 350 MB of heap for garbage. An operator's own NODE_OPTIONS setting wins.
if (process.argv[2] === 'serve' && !/heap-growing-percent/.test(`${process.env.NODE_OPTIONS ?? ''} ${process.execArgv.join(' ')}`)) {
  v8.setFlagsFromString('--heap-growing-percent=100');
}

const source = new URL('../src/main.ts', import.meta.url);
const compiled = new URL('../dist/main.js', import.meta.url);
if (process.env.STEADY_FROM_DIST === '1' || !existsSync(source)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
}
