/**
 * Runs a task every `intervalMs`, never overlapping itself; `stop()` waits for a run in progress.
 * Errors are handed to `onError` and the schedule goes on. With `minGapMs`, a trigger never starts a
 * run sooner than that after the previous one started: triggers in between coalesce into one run.
 */
export class Periodic {
  private timer: NodeJS.Timeout | null = null;
  private timerDue = 0;
  private lastStart = Number.NEGATIVE_INFINITY;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly intervalMs: number,
    private readonly task: () => Promise<void>,
    private readonly onError: (err: unknown) => void,
    private readonly minGapMs = 0,
  ) {}

  start(runNow = true): void {
    this.schedule(runNow ? 0 : this.intervalMs);
  }

  /** Runs the task soon: now, or once `minGapMs` has passed since the last run started; then keeps the schedule. */
  trigger(): void {
    if (this.stopped) return;
    const now = performance.now();
    const delayMs = Math.max(0, this.lastStart + this.minGapMs - now);
    if (this.timer) {
      if (this.timerDue <= now + delayMs) return;
      clearTimeout(this.timer);
    }
    this.schedule(delayMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timerDue = performance.now() + delayMs;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.running
        .then(() => {
          if (this.stopped) return undefined;
          this.lastStart = performance.now();
          return this.task();
        })
        .catch(this.onError)
        .finally(() => {
          if (this.timer === null) this.schedule(this.intervalMs);
        });
    }, delayMs);
  }
}
