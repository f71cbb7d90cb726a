/**
 * How long a test waits for a condition before it gives up. Tests never bound how long something
 * takes (a loaded CI machine runs everything several times slower; timings belong to bench/): they
 * wait for the condition, and this limit only turns a condition that never comes into a failure.
 */
export const PATIENCE_MS = 120_000;

/** What a test that waits for several conditions in turn may take in all. */
export const LONG_TEST_MS = 900_000;

/** Polls `check` until it holds; throws with `what` once PATIENCE_MS (or `limitMs`) has passed. */
export async function until(what: string, check: () => boolean | Promise<boolean>, limitMs = PATIENCE_MS, intervalMs = 20): Promise<void> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
