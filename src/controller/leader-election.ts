import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Kysely } from 'kysely';
import { acquireLease, releaseLease, renewLease, type Lease } from '../db/controller/lease.js';
import type { Tables } from '../db/tables.js';
import type { Logger } from '../logger.js';

export interface LeaderElectionOptions {
  readonly db: Kysely<Tables>;
  readonly logger: Logger;
  readonly name?: string;
  readonly leaseMs: number;
  readonly renewMs: number;
  readonly retryMs: number;
  readonly onStartedLeading: () => void;
  /** Called when leadership is lost or released; the caller must stop acting as leader. */
  readonly onStoppedLeading: () => Promise<void> | void;
}

/**
 * A lease row with a term (River's river_leader is the model): insert-if-absent-or-expired to elect,
 * renew only while the row still names us with our term and has not expired. A leader that cannot
 * renew steps down a second before its lease could expire, measured on its own monotonic clock from
 * the start of the last successful renewal — so it stops acting before anyone else may start.
 */
export class LeaderElection {
  readonly identity = `${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  private lease: Lease | null = null;
  private deadline = 0;
  private timer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private stopped = false;
  /** The last renewal failed (an error, not a lost lease): try again on the retry period. */
  private renewalFailed = false;
  private tick: Promise<void> = Promise.resolve();

  constructor(private readonly options: LeaderElectionOptions) {}

  get isLeader(): boolean {
    return this.lease !== null;
  }

  start(): void {
    this.schedule(0);
  }

  /** Stops campaigning and releases the lease if held. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.watchdog) clearTimeout(this.watchdog);
    await this.tick;
    const lease = this.lease;
    if (lease) {
      await this.stepDown('released');
      await releaseLease(this.options.db, this.name, this.identity, lease).catch((err: unknown) =>
        this.options.logger.warn({ err: errorMessage(err) }, 'could not release the controller lease; it will expire'),
      );
    }
  }

  private get name(): string {
    return this.options.name ?? 'controller';
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      // Like client-go: after a failed renewal, retry on the retry period, not a whole renew period
      // later (which, with the defaults, is past the step-down deadline: one error would lose the lease).
      this.tick = this.run().finally(() => this.schedule(this.lease && !this.renewalFailed ? this.options.renewMs : this.options.retryMs));
    }, delayMs);
  }

  private async run(): Promise<void> {
    const { db, leaseMs, logger } = this.options;
    const attemptStarted = performance.now();
    this.renewalFailed = false;
    try {
      if (this.lease) {
        if (await renewLease(db, this.name, this.identity, this.lease, leaseMs)) {
          this.extendDeadline(attemptStarted + leaseMs - 1_000);
        } else {
          await this.stepDown('lease lost to another controller');
        }
        return;
      }
      const lease = await acquireLease(db, this.name, this.identity, leaseMs);
      if (lease && !this.stopped) {
        this.lease = lease;
        this.extendDeadline(attemptStarted + leaseMs - 1_000);
        logger.info({ identity: this.identity, term: lease.term }, 'became the leader');
        this.options.onStartedLeading();
      }
    } catch (err) {
      this.renewalFailed = this.lease !== null;
      if (this.lease && performance.now() >= this.deadline) {
        await this.stepDown(`could not renew the lease: ${errorMessage(err)}`);
      } else {
        logger.warn({ err: errorMessage(err), leading: this.lease !== null }, 'leader election attempt failed');
      }
    }
  }

  /** A renewal that hangs (database away) must not keep us leading past the lease: a watchdog steps down. */
  private extendDeadline(deadline: number): void {
    this.deadline = deadline;
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (performance.now() >= this.deadline) void this.stepDown('lease deadline passed without a renewal');
    }, Math.max(0, deadline - performance.now()));
    this.watchdog.unref();
  }

  private async stepDown(reason: string): Promise<void> {
    if (!this.lease) return;
    if (this.watchdog) clearTimeout(this.watchdog);
    const term = this.lease.term;
    this.lease = null;
    this.options.logger.warn({ identity: this.identity, term, reason }, 'stopped leading');
    await this.options.onStoppedLeading();
  }
}

const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
