/**
 * Resolves with the name of the first SIGTERM or SIGINT (or 'abort' when the signal aborts). The
 * handlers are removed after the first one, so a second Ctrl-C kills the process the default way.
 */
export function waitForShutdown(abort?: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    const onSigterm = (): void => finish('SIGTERM');
    const onSigint = (): void => finish('SIGINT');
    const onAbort = (): void => finish('abort');
    function finish(why: string): void {
      process.off('SIGTERM', onSigterm);
      process.off('SIGINT', onSigint);
      abort?.removeEventListener('abort', onAbort);
      resolve(why);
    }
    process.once('SIGTERM', onSigterm);
    process.once('SIGINT', onSigint);
    if (abort?.aborted) finish('abort');
    else abort?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs the shutdown steps in order, but never for longer than `budgetMs`: then the process exits 1. */
export async function shutdownWithin(budgetMs: number, steps: () => Promise<void>): Promise<void> {
  const timer = setTimeout(() => {
    process.stderr.write(`steady: shutdown took longer than ${budgetMs} ms; exiting\n`);
    process.exit(1);
  }, budgetMs);
  timer.unref();
  try {
    await steps();
  } finally {
    clearTimeout(timer);
  }
}
