import { Option, type Command } from 'commander';
import type { DeploymentState } from '../client/types.js';
import { isActive } from '../domain/types.js';
import { sleep } from '../lib/sleep.js';
import { durationAtLeast, integerIn } from './arguments.js';
import { clientCommand, deploymentNamed, runClientAction, type ClientContext } from './client-command.js';
import type { Cli } from './io.js';
import { age, renderTable } from './output/table.js';

/** `steady rollout status|history|undo|pause|resume NAME`, as kubectl's. */
export function addRolloutCommand(program: Command, cli: Cli): Command {
  const rollout = program.command('rollout').description("follow and steer a deployment's rollouts");

  clientCommand(rollout, 'status <deployment>')
    .description('wait for the rollout to finish: exit code 0 when complete, 1 when it failed or --timeout passed')
    .addOption(new Option('--timeout <duration>', 'give up after this long').argParser(durationAtLeast(1, '5m or 90s')).default(600_000, '10m'))
    .action((nameOrId: string, options: { timeout: number }, command: Command) =>
      runClientAction(cli, command, (ctx) => waitForRollout(ctx, nameOrId, options.timeout)),
    );

  clientCommand(rollout, 'history <deployment>')
    .description("a deployment's revisions, newest first")
    .action((nameOrId: string, _options: unknown, command: Command) =>
      runClientAction(cli, command, async (ctx) => {
        const deployment = await deploymentNamed(ctx, nameOrId);
        const revisions = await ctx.client.revisions(deployment.deployment_id);
        const rows = revisions.map((r) => [
          `${r.revision}${r.revision === deployment.revision ? '*' : ''}`,
          r.container_image,
          `${r.resources.cpu_cores}`,
          `${r.resources.memory_mb}`,
          `${r.active_replicas}`,
          age(r.created_at),
        ]);
        cli.out(`deployment/${deployment.name} (* = desired)\n`);
        cli.out(renderTable(['REVISION', 'IMAGE', 'CPU', 'MEMORY_MB', 'ACTIVE', 'AGE'], rows, ctx.colour));
      }),
    );

  clientCommand(rollout, 'undo <deployment>')
    .description('roll back: a new revision with the template of an earlier one (default: the one before the current)')
    .option('--to-revision <n>', 'the revision whose template to go back to', integerIn(1, 2_147_483_647))
    .action((nameOrId: string, options: { toRevision?: number }, command: Command) =>
      runClientAction(cli, command, async (ctx) => {
        const deployment = await deploymentNamed(ctx, nameOrId);
        const after = await ctx.client.rollback(deployment.deployment_id, options.toRevision);
        cli.out(`deployment/${deployment.name} rolled back${after.revision !== undefined ? ` (revision ${after.revision})` : ''}\n`);
      }),
    );

  for (const [verb, done] of [
    ['pause', 'paused'],
    ['resume', 'resumed'],
  ] as const) {
    clientCommand(rollout, `${verb} <deployment>`)
      .description(verb === 'pause' ? 'make no further rollout step (scaling still works)' : 'let a paused rollout go on')
      .action((nameOrId: string, _options: unknown, command: Command) =>
        runClientAction(cli, command, async (ctx) => {
          const deployment = await deploymentNamed(ctx, nameOrId);
          await (verb === 'pause' ? ctx.client.pause(deployment.deployment_id) : ctx.client.resume(deployment.deployment_id));
          cli.out(`deployment/${deployment.name} ${done}\n`);
        }),
      );
  }
  return rollout;
}

type Progress = { readonly done: true; readonly failed: boolean; readonly line: string } | { readonly done: false; readonly line: string };

/**
 * Where a rollout stands, in kubectl's words. As kubectl's, it trusts the counts only once the
 * controller has acted on the latest change (observed_generation), and a complete rollout is done
 * only while its replicas are all there and available: after a scale, `complete` still describes the
 * template, not the new count.
 */
export function rolloutProgress(d: DeploymentState): Progress {
  const name = `deployment "${d.name}"`;
  const rollout = d.rollout;
  if (d.status === 'failed') return { done: true, failed: true, line: `${name} failed: ${d.reason ?? 'no reason given'}` };
  if (d.status === 'stopped') return { done: true, failed: true, line: `${name} is stopped` };
  if (!rollout) {
    // A server without rollouts: done when every target replica runs.
    const running = d.replicas.filter((r) => r.status === 'running').length;
    return d.status === 'running' ? { done: true, failed: false, line: `${name} successfully rolled out` } : { done: false, line: `Waiting for ${name}: ${running} of ${d.target_replicas} replicas running...` };
  }
  if (rollout.state === 'failed') {
    return { done: true, failed: true, line: `${name} rollout to revision ${rollout.revision} failed: ${rollout.reason ?? d.reason ?? 'no reason given'}` };
  }
  if (rollout.state === 'paused') {
    return { done: false, line: `Waiting for ${name}: the rollout to revision ${rollout.revision} is paused (steady rollout resume ${d.name})` };
  }
  // A server from before observed_generation sends neither field: its counts are taken as they are.
  if (d.observed_generation !== undefined && d.observed_generation < d.generation) {
    return { done: false, line: `Waiting for ${name} spec update to be observed...` };
  }
  const waiting = `Waiting for ${name} rollout to finish`;
  // Why it is stuck, when something says so: the rollout (RolloutBlocked), else the deployment
  // (Unschedulable, a back-off), else the latest failure of a new replica (ErrImagePull, a crash).
  const why = rollout.reason ?? d.reason ?? lastFailure(d, rollout.revision);
  const blocked = why ? ` (${why})` : '';
  if (rollout.updated_replicas < d.target_replicas) {
    return { done: false, line: `${waiting}: ${rollout.updated_replicas} out of ${d.target_replicas} new replicas have been updated...${blocked}` };
  }
  const old = d.replicas.filter((r) => isActive(r.status)).length - rollout.updated_replicas;
  if (old > 0) return { done: false, line: `${waiting}: ${old} old replicas are pending termination...${blocked}` };
  if (rollout.available_replicas < d.target_replicas) {
    return { done: false, line: `${waiting}: ${rollout.available_replicas} of ${rollout.updated_replicas} updated replicas are available...${blocked}` };
  }
  if (rollout.state === 'complete') return { done: true, failed: false, line: `${name} successfully rolled out (revision ${rollout.revision})` };
  // All there and available: only the controller's word that it completed is missing (no line).
  return { done: false, line: '' };
}

/** The reason of the newest failed replica of `revision`, as `last failure: …`, or null. */
function lastFailure(d: DeploymentState, revision: number): string | null {
  const failed = d.replicas
    .filter((r) => r.revision === revision && r.status === 'failed' && r.reason)
    .sort((a, b) => Date.parse(b.stopped_at ?? '') - Date.parse(a.stopped_at ?? ''));
  return failed[0] ? `last failure: ${failed[0].reason}` : null;
}

const changeKey = (c: DeploymentState['recent_status_changes'][number]): string => `${c.changed_at} ${c.old_status} ${c.new_status}`;

/**
 * A rollout that failed since `seen` was read (a history row new to it). With auto-rollback the
 * controller rolls back in the same step, so the rollout's state is `progressing` again (towards the
 * old template) by the time anyone looks: the history says what happened.
 */
export function failureSince(seen: ReadonlySet<string>, d: DeploymentState): string | null {
  const changes = [...d.recent_status_changes].reverse().filter((c) => !seen.has(changeKey(c)));
  const failed = changes.find((c) => c.new_status === 'rollout:failed');
  if (!failed) return null;
  const rolledBack = changes.find((c) => c.old_status.startsWith('revision:') && c.reason?.startsWith('Rolled back'));
  const what = failed.reason?.replace(/^Rollout failed: /, '') ?? 'no reason given';
  return `deployment "${d.name}" rollout failed: ${what}${rolledBack ? `; ${rolledBack.reason!.replace(/^Rolled/, 'rolled')} as revision ${rolledBack.new_status.replace('revision:', '')}` : ''}`;
}

/**
 * Follows the deployment until its rollout completes (0) or fails (1), or the timeout passes (1):
 * woken by its events, with a poll every 2 s as the fallback, printing each new progress line. A
 * failure that the controller answered with an automatic rollback is a failure too (exit code 1),
 * as the user's change did not roll out.
 */
async function waitForRollout(ctx: ClientContext, nameOrId: string, timeoutMs: number): Promise<number> {
  const first = await deploymentNamed(ctx, nameOrId);
  const seen = new Set(first.recent_status_changes.map(changeKey));
  const stop = new AbortController();
  const abortAll = (): void => stop.abort();
  ctx.cli.signal?.addEventListener('abort', abortAll, { once: true });
  const timer = setTimeout(abortAll, timeoutMs);
  const waiter: { wake: () => void } = { wake: () => undefined };
  const follow = (async () => {
    try {
      for await (const _ of ctx.client.events({ deploymentId: first.deployment_id, signal: stop.signal })) waiter.wake();
    } catch {
      // No event stream (an older server, or refused): the poll still finds the end.
    }
  })();
  try {
    let last = '';
    let current = first;
    for (;;) {
      const failure = failureSince(seen, current);
      if (failure !== null) {
        ctx.cli.out(`${failure}\n`);
        return 1;
      }
      const progress = rolloutProgress(current);
      if (progress.line !== last && progress.line !== '') {
        ctx.cli.out(`${progress.line}\n`);
        last = progress.line;
      }
      if (progress.done) return progress.failed ? 1 : 0;
      await Promise.race([sleep(2_000, stop.signal), new Promise<void>((resolve) => (waiter.wake = resolve))]);
      if (stop.signal.aborted) {
        ctx.cli.err(`error: timed out waiting for deployment "${first.name}" to roll out\n`);
        return 1;
      }
      current = await ctx.client.status(first.deployment_id);
    }
  } finally {
    clearTimeout(timer);
    ctx.cli.signal?.removeEventListener('abort', abortAll);
    stop.abort();
    await follow;
  }
}
