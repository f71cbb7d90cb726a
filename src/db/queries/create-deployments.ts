import type { Kysely } from 'kysely';
import type { Outcome } from '../../lib/batcher.js';
import { isTransientDbError } from '../database.js';
import type { Tables } from '../tables.js';
import { createDeployment, insertDeployment, nameTaken, type DeploymentSpec } from './deployment-commands.js';

export interface CreateRequest {
  readonly userId: string;
  readonly spec: DeploymentSpec;
}

/**
 * Many users' creates in one transaction and one commit, each written exactly as a create on its own
 * (insertDeployment). On durable PostgreSQL the commit is the cost: it waits for the WAL flush, and
 * the NOTIFY that wakes the controller makes commits queue one after the other; a batch pays it once.
 * A name already taken (by a live deployment, or by an earlier create of the same batch, as if they
 * had run one after the other) is answered 409 alone. Any other failure rolls the batch back and each
 * create runs again in a transaction of its own, so that one create never fails another: every
 * request stays all-or-nothing on its own.
 */
export async function createDeployments(db: Kysely<Tables>, requests: readonly CreateRequest[]): Promise<Outcome<string>[]> {
  if (requests.length === 1) return [await settle(createDeployment(db, requests[0]!.userId, requests[0]!.spec))];
  try {
    return await db.transaction().execute(async (tx) => {
      const outcomes: Outcome<string>[] = new Array(requests.length);
      // In (user, name) order, the first of equal names first: two batches (of this process or another)
      // that share names then take their index entries in one order, and never deadlock.
      const order = requests.map((_, i) => i).sort((a, b) => compare(requests[a]!, requests[b]!) || a - b);
      for (const i of order) {
        const { userId, spec } = requests[i]!;
        const id = await insertDeployment(tx, userId, spec);
        outcomes[i] = id === null ? { ok: false, error: nameTaken(spec) } : { ok: true, value: id };
      }
      return outcomes;
    });
  } catch (err) {
    // The database is away: every create of the batch gets that answer (503), none is tried again.
    if (isTransientDbError(err) && !isRetryable(err)) return requests.map(() => ({ ok: false, error: err }));
    return Promise.all(requests.map((r) => settle(createDeployment(db, r.userId, r.spec))));
  }
}

const compare = (a: CreateRequest, b: CreateRequest): number =>
  a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.spec.name < b.spec.name ? -1 : a.spec.name > b.spec.name ? 1 : 0;

/** A deadlock or serialization failure: the batch lost a race, each create alone will not. */
const isRetryable = (err: unknown): boolean => ['40P01', '40001'].includes(String((err as { code?: unknown } | null)?.code));

async function settle<R>(promise: Promise<R>): Promise<Outcome<R>> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}
