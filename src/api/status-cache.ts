import type { Kysely } from 'kysely';
import type { Counter } from 'prom-client';
import type { Tables } from '../db/tables.js';
import { loadDeploymentStatuses, loadStatusVersions, statusKeyOf, type DeploymentStatusRecord, type StatusKey, type VersionedStatus } from '../db/queries/deployment-status.js';
import { Coalescer } from '../lib/coalescer.js';
import { LruMap } from '../lib/lru.js';

export interface StatusCacheOptions {
  /** Status objects kept; the least recently read go first. 4,096 by default (a few KB each). */
  readonly capacity?: number;
  /** An entry is read again from scratch after this long, whatever its version says; 1 h by default. */
  readonly maxAgeMs?: number;
  /** Counts the answers by `answer`: kept or built. */
  readonly metric?: Counter<'answer'>;
}

interface Entry extends VersionedStatus {
  readonly loadedAt: number;
}

/**
 * Status reads of one API process. Reads that arrive together share statements (Coalescer), and
 * the status objects read last are kept with the version of the rows they were built from
 * (`loadStatusVersions`): a read of a kept one asks PostgreSQL only for its current version — a
 * few index lookups and no JSON — and builds it again only when that changed. Every answer is as
 * fresh as a read from scratch at the same moment: the version is read when the request is, and
 * equal versions mean equal rows. A deployment not kept, or whose version changed, is read whole.
 */
export class StatusCache {
  readonly #db: Kysely<Tables>;
  readonly #entries: LruMap<string, Entry>;
  readonly #maxAgeMs: number;
  readonly #metric: Counter<'answer'> | undefined;
  readonly #reads: Coalescer<StatusKey, DeploymentStatusRecord>;

  constructor(db: Kysely<Tables>, options: StatusCacheOptions = {}) {
    this.#db = db;
    this.#entries = new LruMap(options.capacity ?? 4_096);
    this.#maxAgeMs = options.maxAgeMs ?? 3_600_000;
    this.#metric = options.metric;
    this.#reads = new Coalescer((keys) => this.#load(keys), statusKeyOf);
  }

  /** The user's live deployment's status object; undefined when unknown, another user's, or deleted. */
  get(key: StatusKey): Promise<DeploymentStatusRecord | undefined> {
    return this.#reads.get(key);
  }

  async #load(keys: readonly StatusKey[]): Promise<Map<string, DeploymentStatusRecord>> {
    const now = Date.now();
    const kept: [StatusKey, Entry][] = [];
    const missing: StatusKey[] = [];
    for (const key of keys) {
      const entry = this.#entries.get(statusKeyOf(key));
      if (entry && now - entry.loadedAt < this.#maxAgeMs) kept.push([key, entry]);
      else missing.push(key);
    }
    const [versions, built] = await Promise.all([
      loadStatusVersions(this.#db, kept.map(([key]) => key)),
      loadDeploymentStatuses(this.#db, missing),
    ]);
    const answers = new Map<string, DeploymentStatusRecord>();
    const changed: StatusKey[] = [];
    for (const [key, entry] of kept) {
      const id = statusKeyOf(key);
      const version = versions.get(id);
      if (version === undefined) this.#entries.delete(id);
      else if (version === entry.version) answers.set(id, entry.record);
      else changed.push(key);
    }
    this.#metric?.inc({ answer: 'kept' }, answers.size);
    const rebuilt = changed.length > 0 ? await loadDeploymentStatuses(this.#db, changed) : new Map<string, VersionedStatus>();
    for (const [id, status] of [...built, ...rebuilt]) {
      this.#entries.set(id, { ...status, loadedAt: now });
      answers.set(id, status.record);
      this.#metric?.inc({ answer: 'built' });
    }
    for (const key of [...missing, ...changed]) if (!answers.has(statusKeyOf(key))) this.#entries.delete(statusKeyOf(key));
    return answers;
  }
}
