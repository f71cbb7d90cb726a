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
      const outcomes: Outcome<string>[] = [];
      for (const { userId, spec } of requests) {
        const id = await insertDeployment(tx, userId, spec);
        outcomes.push(id === null ? { ok: false, error: nameTaken(spec) } : { ok: true, value: id });
      }
      return outcomes;
    });
  } catch (err) {
    // The database is away: every create of the batch gets that answer (503), none is tried again.
    if (isTransientDbError(err)) return requests.map(() => ({ ok: false, error: err }));
    return Promise.all(requests.map((r) => settle(createDeployment(db, r.userId, r.spec))));
  }
}

async function settle<R>(promise: Promise<R>): Promise<Outcome<R>> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}
