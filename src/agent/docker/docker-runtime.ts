import type { Logger } from '../../logger.js';
import type { ContainerRuntime, ContainerSpec, ContainerStatus } from '../runtime.js';
import { containerName, createContainerBody, LABELS, readState, type ContainerSettings } from './container-config.js';
import { EngineError, type DockerEngine, type EngineContainer } from './engine.js';
import { ExitWatch } from './exit-watch.js';

export interface DockerRuntimeOptions extends ContainerSettings {
  readonly engine: DockerEngine;
  readonly logger: Logger;
}

/**
 * Real containers through the Docker Engine API (DESIGN.md section 7). Nothing that must survive an
 * agent restart lives here: each container carries its replica id and node as labels, and `list()`
 * reads them back from the engine, so a restarted agent adopts what runs. One container per replica
 * is guaranteed by the engine itself: the container's name is derived from the replica id.
 */
export class DockerRuntime implements ContainerRuntime {
  readonly #engine: DockerEngine;
  readonly #settings: ContainerSettings;
  readonly #log: Logger;
  /** Names being started by this process: a `created` container among them is not an orphan. */
  readonly #starting = new Set<string>();
  /** Containers this process is stopping: their exits are expected, not news. */
  readonly #stopping = new Set<string>();
  /** Pulls that failed, by container name: there is no container to show the failure, so it is kept here until stop(). */
  readonly #pullFailures = new Map<string, ContainerStatus>();
  /** Pulls in flight, by image: replicas of one deployment share one pull. */
  readonly #pulls = new Map<string, Promise<string | null>>();
  /** Exited containers never change again: their inspected status, by container id. */
  readonly #exited = new Map<string, ContainerStatus>();
  readonly #listeners = new Set<() => void>();
  #watch: ExitWatch | null = null;

  constructor(options: DockerRuntimeOptions) {
    if (!(options.stopTimeoutSec >= 0)) throw new RangeError(`stopTimeoutSec must be >= 0, got ${options.stopTimeoutSec}`);
    this.#engine = options.engine;
    this.#settings = { node: options.node, networkMode: options.networkMode, stopTimeoutSec: options.stopTimeoutSec };
    this.#log = options.logger.child({ runtime: 'docker' });
  }

  async start(spec: ContainerSpec): Promise<ContainerStatus> {
    const name = containerName(spec.replicaId);
    this.#starting.add(name);
    this.#pullFailures.delete(name);
    try {
      const pullError = await this.#ensureImage(spec.image);
      if (pullError !== null) {
        const failed: ContainerStatus = { containerId: name, replicaId: spec.replicaId, state: 'failed', reason: `ErrImagePull: ${pullError}` };
        this.#pullFailures.set(name, failed);
        return failed;
      }
      const id = await this.#create(name, spec);
      try {
        await this.#engine.startContainer(id);
      } catch (err) {
        if (!(err instanceof EngineError)) throw err;
        // The container stays, `created` with the engine's message, so list() keeps showing the failure.
        return { containerId: id, replicaId: spec.replicaId, state: 'failed', reason: `ContainerCannotRun: ${err.message}` };
      }
      // It may already have exited: report what the engine says now.
      return (await this.#status(id, spec.replicaId)) ?? { containerId: id, replicaId: spec.replicaId, state: 'failed', reason: 'ContainerCannotRun: removed while starting' };
    } finally {
      this.#starting.delete(name);
    }
  }

  async stop(containerId: string): Promise<void> {
    this.#pullFailures.delete(containerId);
    this.#stopping.add(containerId);
    try {
      await this.#engine.stopContainer(containerId, this.#settings.stopTimeoutSec);
      await this.#engine.removeContainer(containerId);
    } finally {
      this.#stopping.delete(containerId);
      this.#exited.delete(containerId);
    }
  }

  async list(): Promise<readonly ContainerStatus[]> {
    const containers = await this.#engine.listContainers([`${LABELS.node}=${this.#settings.node}`]);
    const statuses: ContainerStatus[] = [...this.#pullFailures.values()];
    const seen = new Set<string>();
    for (const c of containers) {
      const replicaId = c.Labels[LABELS.replicaId];
      if (!replicaId || c.State === 'removing') continue;
      seen.add(c.Id);
      const status = await this.#listed(c, replicaId);
      if (status) statuses.push(status);
    }
    for (const id of this.#exited.keys()) if (!seen.has(id)) this.#exited.delete(id);
    return statuses;
  }

  watch(onChange: () => void): () => void {
    this.#listeners.add(onChange);
    this.#watch ??= new ExitWatch({
      engine: this.#engine,
      labels: [`${LABELS.node}=${this.#settings.node}`],
      logger: this.#log,
      onExit: (containerId) => {
        if (containerId !== null && this.#stopping.has(containerId)) return;
        for (const listener of this.#listeners) listener();
      },
    });
    return () => this.#listeners.delete(onChange);
  }

  /** Stops following the engine's events; containers keep running. */
  async close(): Promise<void> {
    await this.#watch?.close();
    this.#watch = null;
  }

  async #listed(c: EngineContainer, replicaId: string): Promise<ContainerStatus | null> {
    if (c.State === 'running' || c.State === 'paused' || c.State === 'restarting') {
      return { containerId: c.Id, replicaId, state: 'running', reason: null };
    }
    const known = this.#exited.get(c.Id);
    if (known) return known;
    const status = await this.#status(c.Id, replicaId);
    if (status?.state === 'starting' && !this.#starting.has(containerName(replicaId))) {
      // Created but never started: its agent died between the two calls. It ran nothing; remove it,
      // and the replica is started afresh.
      this.#log.info({ replica_id: replicaId, container_id: c.Id }, 'removing a container that was created but never started');
      await this.#engine.removeContainer(c.Id);
      return null;
    }
    if (status?.state === 'failed') this.#exited.set(c.Id, status);
    return status;
  }

  async #status(id: string, replicaId: string): Promise<ContainerStatus | null> {
    const details = await this.#engine.inspectContainer(id);
    if (!details) return null;
    return { containerId: details.Id, replicaId, ...readState(details.State) };
  }

  /** null when the image is there (or was pulled), else the engine's message. */
  async #ensureImage(image: string): Promise<string | null> {
    if (await this.#engine.hasImage(image)) return null;
    let pull = this.#pulls.get(image);
    if (!pull) {
      this.#log.info({ image }, 'pulling image');
      pull = this.#engine.pullImage(image).finally(() => this.#pulls.delete(image));
      this.#pulls.set(image, pull);
    }
    const error = await pull;
    if (error !== null) this.#log.warn({ image, error }, 'image pull failed');
    return error;
  }

  /** Creates the replica's container; one left from an earlier attempt under the same name is replaced. */
  async #create(name: string, spec: ContainerSpec): Promise<string> {
    const body = createContainerBody(spec, this.#settings);
    try {
      return await this.#engine.createContainer(name, body);
    } catch (err) {
      if (!(err instanceof EngineError && err.status === 409)) throw err;
    }
    // The name is taken. list() found no container for this replica, or the agent would not start it:
    // the holder is a leftover (another node name, or not yet visible); the replica's container is ours to replace.
    const holder = await this.#engine.inspectContainer(name);
    if (holder && holder.Config.Labels?.[LABELS.replicaId] !== spec.replicaId) {
      throw new Error(`container name ${name} is taken by a container steady did not create`);
    }
    this.#log.warn({ replica_id: spec.replicaId, container_id: holder?.Id }, 'replacing a leftover container of this replica');
    if (holder) await this.#engine.removeContainer(holder.Id);
    return this.#engine.createContainer(name, body);
  }
}
