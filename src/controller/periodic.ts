/**
 * Runs a task every `intervalMs`, never overlapping itself; `stop()` waits for a run in progress.
 * Errors are handed to `onError` and the schedule goes on.
 */
export class Periodic {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly intervalMs: number,
    private readonly task: () => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  start(runNow = true): void {
    this.schedule(runNow ? 0 : this.intervalMs);
  }

  /** Runs the task now (after a run in progress), then keeps the schedule. */
  trigger(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.running
        .then(() => (this.stopped ? undefined : this.task()))
        .catch(this.onError)
        .finally(() => {
          if (this.timer === null) this.schedule(this.intervalMs);
        });
    }, delayMs);
  }
}
