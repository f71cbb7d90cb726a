import type { Context } from '../context.js';
import { AfterCommitWake } from '../db/after-commit-wake.js';
import { type DedicatedConnection, type Listener, type Notification } from '../db/database.js';
import { loadNodes } from '../db/controller/reconcile-store.js';
import {
  countReplicasByStatus,
  deleteExpiredReplicas,
  deploymentsNeedingWork,
  deploymentsOnNode,
  deploymentsWithUnscheduled,
  evictReplicasOfLostNodes,
  markSilentNodesNotReady,
} from '../db/controller/sweeps.js';
import { deleteExpiredEvents } from '../db/queries/events.js';
import { REPLICA_STATUSES } from '../domain/types.js';
import { CapacityWatch } from './capacity-watch.js';
import { LeaderElection } from './leader-election.js';
import { Periodic } from './periodic.js';
import { QUIET_FAILURES, reconcileFailure } from './reconcile-failure.js';
import { createReconciler, type Reconcile } from './reconciler.js';
import { WorkQueue } from './work-queue.js';

export const DEPLOYMENT_CHANNEL = 'steady_deployment';
export const NODE_CHANNEL = 'steady_node';
const RETENTION_BATCH = 500;

/**
 * The controller: leader election decides whether this process acts; while it leads, wake-ups
 * (NOTIFY, periodic resync, timed requeues, retries) feed a keyed work queue whose workers run
 * reconciles, and sweeps watch node heartbeats and delete old terminal rows. Safety never depends on
 * leading: every reconcile locks its deployment, and the database refuses overcommitted nodes.
 */
export class Controller {
  private readonly reconcile: Reconcile;
  private readonly eventsWake: AfterCommitWake;
  private readonly election: LeaderElection | null;
  private readonly electionConnection: DedicatedConnection | null;
  private active: ActiveController | null = null;
  private transition: Promise<void> = Promise.resolve();

  constructor(private readonly ctx: Context) {
    const c = ctx.config.controller;
    this.eventsWake = new AfterCommitWake(ctx.database.db, (err) =>
      ctx.logger.debug({ err: message(err) }, 'could not wake the event readers; they find the events on their poll'),
    );
    this.reconcile = createReconciler(
      ctx,
      { backoffBaseMs: c.backoffBaseMs, backoffMaxMs: c.backoffMaxMs, failureThreshold: c.failureThreshold },
      () => this.eventsWake.events(),
    );
    // Its own connection: a renewal must never wait for one busy with reconciles or API requests.
    this.electionConnection = c.leaderElection ? ctx.database.dedicated('election') : null;
    this.election = this.electionConnection
      ? new LeaderElection({
          db: this.electionConnection.db,
          logger: ctx.logger.child({ component: 'leader-election' }),
          leaseMs: c.leaseMs,
          renewMs: c.renewMs,
          retryMs: c.retryMs,
          onStartedLeading: () => this.setActive(true),
          onStoppedLeading: () => this.setActive(false),
        })
      : null;
  }

  get isLeader(): boolean {
    return this.active !== null;
  }

  get identity(): string | null {
    return this.election?.identity ?? null;
  }

  start(): Promise<void> {
    if (this.election) {
      this.election.start();
      return this.transition;
    }
    return this.setActive(true);
  }

  /** Stop taking work, finish in-flight reconciles, release leadership. */
  async stop(): Promise<void> {
    if (this.election) await this.election.stop();
    await this.setActive(false);
    await this.eventsWake.settled();
    await this.electionConnection?.close();
  }

  /** For tests and benchmarks: resolves when nothing is queued, in flight or timed soon, and the event readers were woken. */
  async idle(): Promise<void> {
    await this.transition;
    await this.active?.queue.onIdle();
    await this.eventsWake.settled();
  }

  /** Ask for a reconcile of one deployment (used by tests; production goes through NOTIFY). */
  enqueue(deploymentId: string, trigger = 'manual'): void {
    this.active?.queue.add(deploymentId, trigger);
  }

  private setActive(on: boolean): Promise<void> {
    this.transition = this.transition.then(async () => {
      if (on && !this.active) {
        this.ctx.metrics.isLeader.set(1);
        this.active = await ActiveController.start(this.ctx, this.reconcile);
      } else if (!on && this.active) {
        const active = this.active;
        this.active = null;
        this.ctx.metrics.isLeader.set(0);
        await active.stop();
      }
    });
    return this.transition;
  }
}

/** Everything that runs only while this process leads. */
class ActiveController {
  private listener: Listener | null = null;
  private listenRetry: NodeJS.Timeout | null = null;
  private listenFailures = 0;
  private stopping = false;
  private unscheduledKnown = true;
  private readonly capacity = new CapacityWatch();
  private readonly loops: Periodic[];
  private readonly resync: Periodic;
  private readonly binder: Periodic;

  private constructor(
    private readonly ctx: Context,
    readonly queue: WorkQueue,
  ) {
    const c = ctx.config.controller;
    const log = ctx.logger;
    const onError = (what: string) => (err: unknown) => log.warn({ err: message(err) }, `${what} failed; will retry`);
    this.resync = new Periodic(c.resyncMs, () => this.resyncNow(), onError('resync'));
    // Capacity freed elsewhere (a replica stopped, a node arrived): bind waiting replicas soon, at most
    // once a second. Every notification triggers it while something waits: the triggers of a second
    // coalesce into one pass, which reads every node.
    this.binder = new Periodic(1_000, () => this.bindUnscheduled(), onError('binding unscheduled replicas'), 1_000);
    const nodeMonitorMs = Math.max(500, Math.min(5_000, Math.floor(c.nodeGraceMs / 4)));
    this.loops = [
      this.resync,
      this.binder,
      new Periodic(nodeMonitorMs, () => this.monitorNodes(), onError('node monitor')),
      new Periodic(60_000, () => this.deleteExpired(), onError('retention')),
    ];
  }

  static async start(ctx: Context, reconcile: Reconcile): Promise<ActiveController> {
    const log = ctx.logger;
    let self: ActiveController | null = null;
    const queue = new WorkQueue({
      concurrency: ctx.config.controller.concurrency,
      maxBatch: ctx.config.controller.batchSize,
      handleBatch: async (items) => {
        ctx.metrics.queueDepth.set(queue.size);
        const outcomes = await reconcile(items);
        if (self && [...outcomes.values()].some((o) => o.ok && o.result?.unscheduled)) self.unscheduledKnown = true;
        return outcomes;
      },
      onError: (key, err, retryInMs, failures) => {
        const fields = { deployment_id: key, err: message(err), retry_in_ms: retryInMs, failures };
        if (reconcileFailure(err) !== 'fault' && failures < QUIET_FAILURES) log.debug(fields, 'reconcile conflicted; retrying');
        else log.warn(fields, 'reconcile failed; retrying with back-off');
      },
    });
    self = new ActiveController(ctx, queue);
    await self.listen(ctx.config.controller.retryMs);
    for (const loop of self.loops) loop.start(loop !== self.binder);
    return self;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.listenRetry) clearTimeout(this.listenRetry);
    await Promise.all(this.loops.map((l) => l.stop()));
    await this.listener?.close();
    await this.queue.shutdown();
  }

  /**
   * LISTEN for the rest of the leadership. A first LISTEN that fails (the database briefly away, no
   * connection slot free) is tried again on the retry period, doubling up to the resync period: the
   * resync keeps everything converging meanwhile, NOTIFY only makes reaction fast again. Once in
   * place, the listener re-LISTENs after a reconnect on its own.
   */
  private async listen(retryMs: number): Promise<void> {
    if (this.stopping) return;
    try {
      const listener = await this.ctx.database.listen([DEPLOYMENT_CHANNEL, NODE_CHANNEL], {
        onNotification: (n) => this.onNotification(n),
        onReconnect: () => {
          this.ctx.logger.info('notification listener reconnected; resyncing');
          this.resync.trigger();
        },
        onError: (err) => this.ctx.logger.warn({ err: message(err) }, 'notification listener lost its connection'),
      });
      if (this.stopping) {
        await listener.close();
        return;
      }
      this.listener = listener;
      if (this.listenFailures > 0) {
        this.ctx.logger.info({ failures: this.listenFailures }, 'LISTEN in place after failing; resyncing');
        // Notifications sent meanwhile were missed.
        this.resync.trigger();
      }
    } catch (err) {
      this.listenFailures++;
      const c = this.ctx.config.controller;
      this.ctx.logger.warn({ err: message(err), retry_in_ms: retryMs }, 'could not LISTEN; relying on the periodic resync until it works');
      const next = Math.min(retryMs * 2, Math.max(c.retryMs, c.resyncMs));
      this.listenRetry = setTimeout(() => {
        this.listenRetry = null;
        void this.listen(next);
      }, retryMs);
    }
  }

  private onNotification(n: Notification): void {
    if (n.channel === NODE_CHANNEL) {
      void this.onNodeChanged(n.payload);
      return;
    }
    if (n.payload === '*') {
      this.resync.trigger();
      return;
    }
    for (const id of n.payload.split(',')) if (id) this.queue.add(id, 'notify');
    this.ctx.metrics.queueDepth.set(this.queue.size);
    if (this.unscheduledKnown) this.binder.trigger();
  }

  private async onNodeChanged(nodeId: string): Promise<void> {
    try {
      for (const id of await deploymentsOnNode(this.ctx.database.db, nodeId)) this.queue.add(id, 'node');
      this.unscheduledKnown = true;
      this.binder.trigger();
    } catch (err) {
      this.ctx.logger.warn({ err: message(err), node_id: nodeId }, 'could not look up a changed node; the resync will');
    }
  }

  private async resyncNow(): Promise<void> {
    const ids = await deploymentsNeedingWork(this.ctx.database.db);
    for (const id of ids) this.queue.add(id, 'resync');
    this.ctx.metrics.queueDepth.set(this.queue.size);
    const counts = await countReplicasByStatus(this.ctx.database.db);
    for (const status of REPLICA_STATUSES) {
      this.ctx.metrics.replicasByStatus.set({ status }, counts.find((c) => c.status === status)?.count ?? 0);
    }
    if (ids.length > 0) this.ctx.logger.debug({ deployments: ids.length }, 'resync enqueued deployments');
  }

  private async bindUnscheduled(): Promise<void> {
    if (!this.unscheduledKnown) return;
    this.ctx.metrics.binderPasses.inc();
    if (!this.capacity.grew(await loadNodes(this.ctx.database.db))) return;
    const ids = await deploymentsWithUnscheduled(this.ctx.database.db);
    this.unscheduledKnown = ids.length > 0;
    for (const id of ids) this.queue.add(id, 'capacity');
  }

  private async monitorNodes(): Promise<void> {
    const { nodeGraceMs, nodeEvictionMs } = this.ctx.config.controller;
    const db = this.ctx.database.db;
    for (const node of await markSilentNodesNotReady(db, nodeGraceMs)) {
      this.ctx.logger.warn({ node_id: node.id, node: node.name, grace_ms: nodeGraceMs }, 'node missed its heartbeats; now not_ready');
    }
    const evicted = await evictReplicasOfLostNodes(db, nodeGraceMs, nodeEvictionMs);
    if (evicted.length > 0) {
      const byNode = new Map<string, number>();
      for (const e of evicted) byNode.set(e.node_name, (byNode.get(e.node_name) ?? 0) + 1);
      for (const [node, replicas] of byNode) this.ctx.logger.warn({ node, replicas }, 'node lost; its replicas failed with NodeLost');
      // The UPDATE's NOTIFY wakes the deployments too; enqueueing here saves the round trip.
      for (const e of evicted) this.queue.add(e.deployment_id, 'node-lost');
    }
  }

  private async deleteExpired(): Promise<void> {
    let total = 0;
    for (let deleted = RETENTION_BATCH; deleted === RETENTION_BATCH; total += deleted) {
      deleted = await deleteExpiredReplicas(this.ctx.database.db, this.ctx.config.controller.retentionMs, RETENTION_BATCH);
    }
    if (total > 0) this.ctx.logger.info({ replicas: total }, 'deleted terminal replica rows past retention');
    let events = 0;
    for (let deleted = RETENTION_BATCH; deleted === RETENTION_BATCH; events += deleted) {
      deleted = await deleteExpiredEvents(this.ctx.database.db, this.ctx.config.events.retentionMs, RETENTION_BATCH);
    }
    if (events > 0) this.ctx.logger.info({ events }, 'deleted events past retention');
  }
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
