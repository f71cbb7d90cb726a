import type { Logger } from '../logger.js';
import { AgentApiError, type AgentClient, type Assignment, type ReportedStatus, type StatusReport } from './client.js';
import { planNodeActions, type NodeAction } from './node-plan.js';
import type { ContainerResources, ContainerRuntime, ContainerStatus } from './runtime.js';

export interface NodeAgentOptions {
  /** The node's name; with a `node` token it must equal the token's `sub`. */
  readonly name: string;
  readonly capacity: ContainerResources;
  readonly labels?: Readonly<Record<string, string>>;
  readonly client: AgentClient;
  readonly runtime: ContainerRuntime;
  readonly logger: Logger;
  /** Between heartbeats. Default 5 s: eight chances inside the controller's 40 s grace period. */
  readonly heartbeatMs?: number;
  /**
   * Retry delays while the API is away: base doubling to max, with jitter. The default cap (10 s)
   * stays well inside the grace period, so a node is back within seconds of the API.
   */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /** Uniform in [0, 1), for the jitter; injectable for tests. */
  readonly random?: () => number;
}

/** Delay before retry number `failures` (1-based): exponential, capped, then "equal jitter" (half fixed, half random). */
export function retryDelayMs(failures: number, baseMs: number, maxMs: number, random: () => number): number {
  const capped = Math.min(baseMs * 2 ** Math.max(0, failures - 1), maxMs);
  return Math.round(capped / 2 + (capped / 2) * random());
}

/**
 * One node, like a kubelet: registers, then heartbeats forever and makes the runtime match the
 * answer. Every pass is decided from that answer and the runtime's containers (planNodeActions),
 * so a lost report or an agent restart is repaired on the next pass. Containers keep running while
 * the API is away; nothing is stopped that the API did not ask to stop or stopped listing.
 */
export class NodeAgent {
  readonly name: string;
  readonly #options: NodeAgentOptions;
  readonly #log: Logger;
  readonly #heartbeatMs: number;
  readonly #random: () => number;
  /** What the API last answered to, per replica; lost on restart, and rebuilt from the runtime then. */
  readonly #reported = new Map<string, ReportedStatus>();
  /** Operations in flight, per replica: a replica is never worked on twice at once. */
  readonly #busy = new Map<string, Promise<void>>();
  #nodeId: string | null = null;
  #loop: Promise<void> | null = null;
  #stopping = false;
  readonly #wake = new AbortController();
  /** Set when the runtime reports a change: the next heartbeat comes at once instead of after the interval. */
  #changed = false;
  #poke: () => void = () => {};
  #unwatch: (() => void) | null = null;
  #passes = 0;
  #onRegistered: (registered: boolean) => void = () => {};
  /** Resolves true once registered, or false if stopped before. */
  readonly registered: Promise<boolean>;

  constructor(options: NodeAgentOptions) {
    const heartbeatMs = options.heartbeatMs ?? 5_000;
    if (!(heartbeatMs > 0)) throw new RangeError(`heartbeatMs must be > 0, got ${heartbeatMs}`);
    this.name = options.name;
    this.#options = options;
    this.#heartbeatMs = heartbeatMs;
    this.#random = options.random ?? Math.random;
    this.#log = options.logger.child({ node: options.name });
    this.registered = new Promise((resolve) => (this.#onRegistered = resolve));
  }

  get nodeId(): string | null {
    return this.#nodeId;
  }

  /** Completed heartbeat passes; tests wait on it. */
  get passes(): number {
    return this.#passes;
  }

  start(): void {
    if (this.#loop || this.#stopping) return;
    this.#unwatch = this.#options.runtime.watch?.(() => {
      this.#changed = true;
      this.#poke();
    }) ?? null;
    this.#loop = this.#run();
  }

  /** Stops heartbeating; resolves once the call in flight and every started operation have finished. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#unwatch?.();
    this.#wake.abort();
    await this.#loop;
    while (this.#busy.size > 0) await Promise.allSettled([...this.#busy.values()]);
    this.#onRegistered(false);
  }

  async #run(): Promise<void> {
    const baseMs = this.#options.retryBaseMs ?? 500;
    const maxMs = this.#options.retryMaxMs ?? 10_000;
    let failures = 0;
    while (!this.#stopping) {
      const began = Date.now();
      try {
        await this.#pass();
        if (failures > 0) this.#log.info({ failures }, 'API reachable again');
        failures = 0;
        await this.#sleep(this.#heartbeatMs - (Date.now() - began), true);
      } catch (err) {
        failures++;
        const delayMs = retryDelayMs(failures, baseMs, maxMs, this.#random);
        this.#logFailure(err, failures, delayMs);
        await this.#sleep(delayMs);
      }
    }
  }

  async #pass(): Promise<void> {
    const { client, runtime } = this.#options;
    if (this.#nodeId === null) {
      const node = await client.registerNode({ name: this.name, capacity: this.#options.capacity, labels: this.#options.labels });
      this.#nodeId = node.nodeId;
      this.#log.info({ node_id: node.nodeId, status: node.status }, 'node registered');
      this.#onRegistered(true);
    }
    const assignments = await client.heartbeat(this.#nodeId);
    if (assignments === null) {
      // Its row was deleted (or the database replaced): register on the next pass; containers stay.
      this.#log.warn({ node_id: this.#nodeId }, 'the API no longer knows this node; registering again');
      this.#nodeId = null;
      return;
    }
    const containers = await runtime.list();
    if (this.#stopping) return;
    const plan = planNodeActions({ assignments, containers, reported: this.#reported, busy: new Set(this.#busy.keys()) });
    for (const id of plan.forget) this.#reported.delete(id);
    for (const action of plan.actions) this.#dispatch(action);
    this.#passes++;
  }

  #dispatch(action: NodeAction): void {
    const id = action.kind === 'start' ? action.assignment.replicaId : action.replicaId;
    const work = this.#perform(action).catch((err: unknown) => {
      this.#log.error({ err, replica_id: id, action: action.kind }, 'replica operation failed unexpectedly');
    });
    const tracked = work.finally(() => this.#busy.delete(id));
    this.#busy.set(id, tracked);
  }

  async #perform(action: NodeAction): Promise<void> {
    switch (action.kind) {
      case 'start':
        return this.#startReplica(action.assignment);
      case 'report':
        await this.#report(action.replicaId, { status: action.status, containerId: action.containerId, reason: action.reason });
        return;
      case 'stop':
      case 'remove': {
        for (const containerId of action.containerIds) await this.#options.runtime.stop(containerId);
        if (action.kind === 'remove') {
          this.#log.info({ replica_id: action.replicaId, containers: action.containerIds }, 'removed containers of a replica no longer assigned here');
        } else if (action.report && (await this.#report(action.replicaId, { status: 'stopped' })) === 'accepted') {
          this.#log.info({ replica_id: action.replicaId }, 'replica stopped');
        }
        return;
      }
    }
  }

  async #startReplica(assignment: Assignment): Promise<void> {
    const id = assignment.replicaId;
    const began = Date.now();
    const first = await this.#report(id, { status: 'starting' });
    if (first === 'error' || first === 'not_found') return;
    if (first === 'conflict') {
      // The replica is already past `starting` while no container exists here: it ran before this
      // agent (and its containers) restarted. Start it again, as a kubelet restarts a pod's
      // containers; if the replica had in fact ended, `running` is refused and the next pass removes it.
      this.#log.info({ replica_id: id }, 'replica has no container on this node; starting it again');
    }
    let status: ContainerStatus;
    try {
      status = await this.#options.runtime.start({
        replicaId: id,
        deploymentId: assignment.deploymentId,
        image: assignment.image,
        resources: assignment.resources,
        revision: assignment.revision,
        command: assignment.command,
        env: assignment.env,
      });
    } catch (err) {
      const reason = `RuntimeError: ${err instanceof Error ? err.message : String(err)}`;
      this.#log.warn({ replica_id: id, reason }, 'replica failed to start');
      await this.#report(id, { status: 'failed', reason });
      return;
    }
    const fields = { replica_id: id, deployment_id: assignment.deploymentId, container_id: status.containerId, duration_ms: Date.now() - began };
    if (status.state === 'running') {
      if ((await this.#report(id, { status: 'running', containerId: status.containerId })) === 'accepted') this.#log.info(fields, 'replica running');
    } else if (status.state === 'failed') {
      this.#log.warn({ ...fields, reason: status.reason }, 'replica failed to start');
      await this.#report(id, { status: 'failed', containerId: status.containerId, reason: status.reason ?? 'ContainerFailed: did not start' });
    }
    // `starting`: a runtime that starts in the background; a later pass sees the outcome in list().
  }

  /** Reports a status; remembers it unless the call failed (then the next pass derives it again). */
  async #report(replicaId: string, report: StatusReport): Promise<'accepted' | 'conflict' | 'not_found' | 'error'> {
    try {
      const answer = await this.#options.client.reportStatus(replicaId, report);
      this.#reported.set(replicaId, report.status);
      if (answer.outcome !== 'accepted') {
        // The controller moved on (409) or took the replica off this node (404): nothing to retry.
        this.#log.info({ replica_id: replicaId, status: report.status, outcome: answer.outcome, message: answer.message }, 'status report refused; dropped');
      }
      return answer.outcome;
    } catch (err) {
      const level = err instanceof AgentApiError && !err.retryable ? 'error' : 'warn';
      this.#log[level]({ replica_id: replicaId, status: report.status, err: describe(err) }, 'status report failed; retrying on the next heartbeat');
      return 'error';
    }
  }

  #logFailure(err: unknown, failures: number, delayMs: number): void {
    const fields = { failures, retry_in_ms: delayMs, err: describe(err) };
    if (!(err instanceof AgentApiError)) {
      this.#log.error(fields, 'node agent pass failed');
    } else if (!err.retryable) {
      this.#log.error(fields, 'the API refused the node agent (check the token and its roles)');
    } else if (failures === 1) {
      this.#log.warn(fields, 'API unavailable; retrying with backoff, containers keep running');
    } else {
      this.#log.debug(fields, 'API still unavailable');
    }
  }

  /** Waits `ms`, or less when stopping, or (`wakeOnChange`) when the runtime reports a change. */
  async #sleep(ms: number, wakeOnChange = false): Promise<void> {
    if (wakeOnChange && this.#changed) {
      this.#changed = false;
      return;
    }
    if (this.#stopping || ms <= 0) return;
    const signal = this.#wake.signal;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      if (wakeOnChange) this.#poke = done;
      function done(): void {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
    });
    this.#poke = () => {};
    this.#changed = false;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
