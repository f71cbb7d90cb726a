import { sql, type Kysely, type Transaction } from 'kysely';
import { ConflictError, ValidationError } from '../../domain/errors.js';
import { DEFAULT_STRATEGY, mergeStrategy, strategyIssues, strategyJson, type StrategyJson } from '../../domain/strategy.js';
import type { Resources, Strategy } from '../../domain/types.js';
import { commandOrNull, envOrNull } from '../../domain/validation.js';
import type { Tables } from '../tables.js';
import { withLockedDeployment, type CommandResult, type LockedDeployment } from './deployment-commands.js';
import { insertHistory } from './history.js';
import { adoptRevision, insertRevision, rollBack, type Template } from './revisions.js';

/**
 * The user's rollout commands: a PATCH of the spec, rollback, pause, resume. Each is one transaction
 * under the deployment's row lock (as every command), so concurrent ones serialise: each PATCH that
 * changes the template is a revision of its own, none is lost.
 */

export interface DeploymentChange {
  /** The template fields that change; resources named change, the others keep. */
  readonly template?: Partial<Omit<Template, 'resources'>> & { readonly resources?: Partial<Resources> };
  readonly targetReplicas?: number;
  readonly strategy?: Partial<StrategyJson>;
}

type Tx = Transaction<Tables>;

async function templateOf(tx: Tx, deploymentId: string, revision: number): Promise<{ template: Template; templateRevision: number }> {
  const row = await tx
    .selectFrom('deployment_revisions')
    .select(['container_image', 'cpu_cores', 'memory_mb', 'gpu_units', 'storage_gb', 'command', 'env', 'template_revision'])
    .where('deployment_id', '=', deploymentId)
    .where('revision', '=', revision)
    .executeTakeFirstOrThrow();
  return {
    templateRevision: row.template_revision,
    template: {
      containerImage: row.container_image,
      resources: { cpuCores: row.cpu_cores, memoryMb: row.memory_mb, gpuUnits: row.gpu_units, storageGb: row.storage_gb },
      command: row.command,
      env: row.env,
    },
  };
}

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
const canonical = (v: unknown): unknown =>
  v !== null && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
    : v;

/** What changed, for the history row (env names only: values are never written anywhere but the template). */
export function describeTemplateChange(from: Template, to: Template): string[] {
  const out: string[] = [];
  if (from.containerImage !== to.containerImage) out.push(`image ${from.containerImage} → ${to.containerImage}`);
  const r0 = from.resources;
  const r1 = to.resources;
  if (r0.cpuCores !== r1.cpuCores) out.push(`cpu ${r0.cpuCores} → ${r1.cpuCores}`);
  if (r0.memoryMb !== r1.memoryMb) out.push(`memory ${r0.memoryMb} MB → ${r1.memoryMb} MB`);
  if (r0.gpuUnits !== r1.gpuUnits) out.push(`gpu ${r0.gpuUnits} → ${r1.gpuUnits}`);
  if (r0.storageGb !== r1.storageGb) out.push(`storage ${r0.storageGb} GB → ${r1.storageGb} GB`);
  // Rows written before empty ones were stored as null may hold [] or {}: the same as null.
  if (!sameJson(commandOrNull(from.command), commandOrNull(to.command))) out.push('command changed');
  if (!sameJson(envOrNull(from.env), envOrNull(to.env))) {
    const names = new Set([...Object.keys(from.env ?? {}), ...Object.keys(to.env ?? {})]);
    const changed = [...names].filter((n) => from.env?.[n] !== to.env?.[n]).sort();
    out.push(`env ${changed.join(', ')} changed`);
  }
  return out;
}

/**
 * PATCH: a change of the template makes a new revision and starts a rollout; a change of the target
 * or of the strategy alone does not. Returns whether anything changed.
 */
export async function changeDeployment(db: Kysely<Tables>, userId: string, id: string, change: DeploymentChange): Promise<CommandResult> {
  return withLockedDeployment(db, userId, id, async (tx, current) => {
    let changed = false;
    const history: { oldStatus: string; newStatus: string; reason: string }[] = [];
    const base: Strategy = mergeStrategy(DEFAULT_STRATEGY, current.strategy);
    const strategy = mergeStrategy(base, change.strategy);
    const issues = strategyIssues(strategy);
    if (issues.length > 0) throw new ValidationError('invalid strategy', issues);
    if (!sameJson(strategyJson(strategy), strategyJson(base))) {
      await tx.updateTable('deployments').set({ strategy: JSON.stringify(strategyJson(strategy)) }).where('id', '=', id).execute();
      changed = true;
    }
    if (change.targetReplicas !== undefined && change.targetReplicas !== current.target_replicas) {
      await tx
        .updateTable('deployments')
        .set({ target_replicas: change.targetReplicas, generation: sql`generation + 1`, updated_at: sql`now()` })
        .where('id', '=', id)
        .execute();
      history.push({ oldStatus: `replicas:${current.target_replicas}`, newStatus: `replicas:${change.targetReplicas}`, reason: 'User-initiated scaling' });
      changed = true;
    }
    if (change.template !== undefined) {
      const { template: from } = await templateOf(tx, id, current.revision);
      const to: Template = { ...from, ...change.template, resources: { ...from.resources, ...change.template.resources } };
      const what = describeTemplateChange(from, to);
      if (what.length > 0) {
        const revision = current.revision + 1;
        await insertRevision(tx, id, revision, to, userId);
        await adoptRevision(tx, id, revision);
        history.push({ oldStatus: `revision:${current.revision}`, newStatus: `revision:${revision}`, reason: `Rollout started: ${what.join('; ')}` });
        changed = true;
      }
    }
    await insertHistory(tx, history.map((h) => ({ deploymentId: id, changedBy: userId, ...h })));
    return { changed };
  });
}

/**
 * Kubernetes' undo: a new revision with the template of `revision` (default: the newest one before the
 * current). 422 when there is no such revision; 409 when its template is the current one already.
 */
export async function rollbackDeployment(db: Kysely<Tables>, userId: string, id: string, revision: number | undefined): Promise<number> {
  return withLockedDeployment(db, userId, id, async (tx, current) => {
    const source = await tx
      .selectFrom('deployment_revisions')
      .select(['revision', 'template_revision'])
      .where('deployment_id', '=', id)
      .$call((q) => (revision === undefined ? q.where('revision', '<', current.revision).orderBy('revision', 'desc').limit(1) : q.where('revision', '=', revision)))
      .executeTakeFirst();
    if (!source) {
      const message = revision === undefined ? 'no revision before the current one' : `revision ${revision} does not exist`;
      throw new ValidationError(message, [{ path: 'revision', message }]);
    }
    const { templateRevision } = await templateOf(tx, id, current.revision);
    if (source.template_revision === templateRevision) {
      throw new ConflictError(`revision ${source.revision} has the current template already`);
    }
    const created = await rollBack(tx, id, source.revision, userId);
    await insertHistory(tx, [
      {
        deploymentId: id,
        oldStatus: `revision:${current.revision}`,
        newStatus: `revision:${created}`,
        changedBy: userId,
        reason: `Rolled back to revision ${source.revision} (template of revision ${source.template_revision})`,
      },
    ]);
    return created;
  });
}

/** A paused rollout makes no step and runs no deadline; scaling still works. Idempotent. */
export async function setPaused(db: Kysely<Tables>, userId: string, id: string, paused: boolean): Promise<CommandResult> {
  return withLockedDeployment(db, userId, id, async (tx, current: LockedDeployment) => {
    if (current.paused === paused) return { changed: false };
    // Resuming restarts the progress deadline: a paused rollout was not failing to progress.
    await tx
      .updateTable('deployments')
      .set({ paused, generation: sql`generation + 1`, ...(paused ? {} : { rollout_progress_at: sql`now()` }) })
      .where('id', '=', id)
      .execute();
    const state = `rollout:${current.rollout_state}`;
    await insertHistory(tx, [
      paused
        ? { deploymentId: id, oldStatus: state, newStatus: 'rollout:paused', changedBy: userId, reason: 'Rollout paused' }
        : { deploymentId: id, oldStatus: 'rollout:paused', newStatus: state, changedBy: userId, reason: 'Rollout resumed' },
    ]);
    return { changed: true };
  });
}
