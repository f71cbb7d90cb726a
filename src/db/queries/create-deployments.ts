import type { Kysely } from 'kysely';
import { ConflictError } from '../../domain/errors.js';
import type { Outcome } from '../../lib/batcher.js';
import { isTransientDbError } from '../database.js';
import type { Tables } from '../tables.js';
import type { DeploymentSpec } from './deployment-commands.js';
import type { DeploymentStatusRecord } from './deployment-status.js';
import { insertDeployments, type CreateRequest } from './insert-deployments.js';

export type { CreateRequest } from './insert-deployments.js';

/**
 * Many users' creates in one transaction and one commit, in a fixed number of statements whatever
 * their number (insertDeployments). On durable PostgreSQL the commit is the cost: it waits for the WAL
 * flush, and the NOTIFY that wakes the controller makes commits queue one after the other; a batch
 * pays it once. A name already taken (by a live deployment, or by an earlier create of the same batch,
 * as if they had run one after the other) is answered 409 alone. Any other failure rolls the batch
 * back and each create runs again in a transaction of its own, so that one create never fails
 * another: every request stays all-or-nothing on its own. Each create is answered with its status
 * object as written.
 */
export async function createDeployments(db: Kysely<Tables>, requests: readonly CreateRequest[]): Promise<Outcome<DeploymentStatusRecord>[]> {
  if (requests.length === 1) return [await settle(createDeployment(db, requests[0]!))];
  const outcomes: Outcome<DeploymentStatusRecord>[] = new Array(requests.length);
  // The first create of a (user, name) in request order is the one that may win; the later ones lose to it.
  const first = new Map<string, number>();
  requests.forEach((r, i) => {
    if (first.has(keyOf(r))) outcomes[i] = { ok: false, error: nameTaken(r.spec) };
    else first.set(keyOf(r), i);
  });
  // In (user, name) order: two batches (of this process or another) that share names then take their
  // index entries in one order, and never deadlock.
  const order = [...first.values()].sort((a, b) => compare(requests[a]!, requests[b]!));
  try {
    const created = await db.transaction().execute((tx) => insertDeployments(tx, order.map((i) => requests[i]!)));
    order.forEach((i, j) => {
      const record = created[j];
      outcomes[i] = record ? { ok: true, value: record } : { ok: false, error: nameTaken(requests[i]!.spec) };
    });
    return outcomes;
  } catch (err) {
    // The database is away: every create of the batch gets that answer (503), none is tried again.
    if (isTransientDbError(err) && !isRetryable(err)) return requests.map(() => ({ ok: false, error: err }));
    return alone(db, requests);
  }
}

/** One create in a transaction of its own: the deployment's status, or a ConflictError when the name is taken. */
export async function createDeployment(db: Kysely<Tables>, request: CreateRequest): Promise<DeploymentStatusRecord> {
  let record: DeploymentStatusRecord | null | undefined;
  try {
    [record] = await db.transaction().execute((tx) => insertDeployments(tx, [request]));
  } catch (err) {
    if ((err as { code?: unknown }).code === UNIQUE_VIOLATION) throw nameTaken(request.spec);
    throw err;
  }
  if (!record) throw nameTaken(request.spec);
  return record;
}

export const nameTaken = (spec: DeploymentSpec): ConflictError => new ConflictError(`a deployment named ${JSON.stringify(spec.name)} already exists`);

/**
 * Each create in a transaction of its own: those of one (user, name) one after the other in request
 * order (a later one is 409 only if an earlier one took the name), the others concurrently.
 */
async function alone(db: Kysely<Tables>, requests: readonly CreateRequest[]): Promise<Outcome<DeploymentStatusRecord>[]> {
  const outcomes: Outcome<DeploymentStatusRecord>[] = new Array(requests.length);
  const byName = new Map<string, number[]>();
  requests.forEach((r, i) => byName.set(keyOf(r), [...(byName.get(keyOf(r)) ?? []), i]));
  await Promise.all(
    [...byName.values()].map(async (indexes) => {
      for (const i of indexes) outcomes[i] = await settle(createDeployment(db, requests[i]!));
    }),
  );
  return outcomes;
}

const UNIQUE_VIOLATION = '23505';

const keyOf = (r: CreateRequest): string => `${r.userId.toLowerCase()}\u0000${r.spec.name}`;

const compare = (a: CreateRequest, b: CreateRequest): number => {
  const [x, y] = [keyOf(a), keyOf(b)];
  return x < y ? -1 : x > y ? 1 : 0;
};

/** A deadlock or serialization failure: the batch lost a race, each create alone will not. */
const isRetryable = (err: unknown): boolean => ['40P01', '40001'].includes(String((err as { code?: unknown } | null)?.code));

async function settle<R>(promise: Promise<R>): Promise<Outcome<R>> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}
