import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SteadyClient } from '../../src/client/client.js';
import type { DeploymentState } from '../../src/client/types.js';
import { runInProcess, writeFileIn, type CliRun, type InProcessOptions } from '../support/cli.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';
import { describeBackends } from '../support/databases.js';
import { PATIENCE_MS, until } from '../support/patience.js';
import { startTcpProxy } from '../support/tcp-proxy.js';

/** The rollout verbs, `get -w` and `events -w` against a real server (API, controller, simulated nodes). */
describeBackends('steady rollout verbs and watches against a real server', (db) => {
  let cluster: TestCluster;
  let env: Record<string, string>;
  let client: SteadyClient;
  let dir: string;
  beforeAll(async () => {
    // Fast crash-loop backoff: a bad image fails its rollout within seconds.
    cluster = await startTestCluster(db(), { nodes: 2, env: { STEADY_BACKOFF_BASE: '100ms', STEADY_BACKOFF_MAX: '300ms' } });
    const token = await cluster.token('rollout-user');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'steady-cli-rollouts-'));
    env = { STEADY_URL: cluster.url, STEADY_TOKEN: token, XDG_CONFIG_HOME: dir };
    client = new SteadyClient({ baseUrl: cluster.url, token });
  });
  afterAll(() => cluster?.stop());

  const steady = (argv: readonly string[], options: InProcessOptions = {}) => runInProcess(argv, { env, ...options });
  const file = (name: string, text: string): string => writeFileIn(dir, name, text);
  const manifest = (name: string, image: string, replicas = 2) =>
    [
      `name: ${name}`,
      `container_image: ${image}`,
      `target_replicas: ${replicas}`,
      'resources: {cpu_cores: 0.5, memory_mb: 512, storage_gb: 1}',
      'command: [nginx, -g, daemon off;]',
      'env: {MODE: production, WORKERS: "4"}',
      'strategy: {max_surge: 1, max_unavailable: 0}',
      '',
    ].join('\n');
  const status = async (name: string): Promise<DeploymentState> => (await client.findDeployment(name))!;
  const revisionsRunning = async (name: string) => {
    const d = await status(name);
    return d.replicas.filter((r) => r.status === 'running').map((r) => r.revision).sort();
  };
  /** Runs a `-w` verb until `done(stdout)` holds, then interrupts it as Ctrl-C would. */
  const watch = async (argv: readonly string[], done: (stdout: string) => boolean, act: () => Promise<void>, options: InProcessOptions = {}): Promise<CliRun> => {
    const stop = new AbortController();
    let seen = '';
    const run = steady(argv, { ...options, signal: stop.signal, onOutput: (out) => void (seen = out) });
    await until(`${argv.join(' ')} to print its first lines`, () => seen.includes('\n'));
    await act();
    try {
      await until(`${argv.join(' ')} to print what was expected`, () => done(seen)).catch((err: Error) => {
        throw new Error(`${err.message}; it printed:\n${seen}`);
      });
    } finally {
      stop.abort();
    }
    return run;
  };

  it('apply of a document with strategy, command and env twice is unchanged; a new image is configured and rolls out', async () => {
    const first = file('web.yaml', manifest('web', 'nginx:1.27'));
    expect(await steady(['apply', '-f', first])).toEqual({ code: 0, stdout: 'deployment/web created\n', stderr: '' });
    expect(await steady(['apply', '-f', first])).toEqual({ code: 0, stdout: 'deployment/web unchanged\n', stderr: '' });
    const done = await steady(['rollout', 'status', 'web', '--timeout', '120s']);
    expect(done).toMatchObject({ code: 0, stderr: '' });
    expect(done.stdout).toMatch(/deployment "web" successfully rolled out \(revision 1\)\n$/);

    expect(await steady(['apply', '-f', file('web-2.yaml', manifest('web', 'nginx:1.28'))])).toEqual({ code: 0, stdout: 'deployment/web configured\n', stderr: '' });
    expect((await status('web')).revision).toBe(2);
    const rolled = await steady(['rollout', 'status', 'web', '--timeout', '120s']);
    expect(rolled.code).toBe(0);
    expect(rolled.stdout).toMatch(/deployment "web" successfully rolled out \(revision 2\)\n$/);
    expect(await revisionsRunning('web')).toEqual([2, 2]);
    // The template came along: command and env of the document, on the new revision.
    const [current] = await client.revisions((await status('web')).deployment_id);
    expect(current).toMatchObject({ revision: 2, container_image: 'nginx:1.28', command: ['nginx', '-g', 'daemon off;'], env: { MODE: 'production', WORKERS: '4' } });
    // Scaling alone is configured too, and makes no revision.
    expect((await steady(['apply', '-f', file('web-3.yaml', manifest('web', 'nginx:1.28', 3))])).stdout).toBe('deployment/web configured\n');
    expect((await status('web')).revision).toBe(2);

    expect((await steady(['rollout', 'status', 'web', '--timeout', '120s'])).code).toBe(0);
    await until('three replicas running', async () => (await revisionsRunning('web')).length === 3);
    const described = await steady(['describe', 'deployment', 'web']);
    expect(described.stdout).toMatch(/Revision:\s+2\n/);
    expect(described.stdout).toMatch(/Replicas:\s+3 desired \| 3 updated \| 3 running \| 3 available\n/);
    expect(described.stdout).toMatch(/Rollout:\s+revision 2 complete\n/);
    expect(described.stdout).toMatch(/Revisions:\n\s+REVISION\s+IMAGE\s+RESOURCES\s+ACTIVE\s+AGE\n\s+2\*\s+nginx:1\.28\s[^\n]*\n\s+1\s+nginx:1\.27\s+0\.5 CPU, 512 MB\s+0\s/);
    expect(described.stdout).toMatch(/Replicas:\n\s+ID\s+STATUS\s+NODE\s+REVISION\s+REASON\s+STARTED\n(\s+\w{8}\s+\w+\s+\S+\s+2\s[^\n]*\n){3}/);
  }, PATIENCE_MS * 2);

  it('rollout history, undo and undo --to-revision make new revisions with old templates', async () => {
    const history = await steady(['rollout', 'history', 'web']);
    expect(history.code).toBe(0);
    expect(history.stdout).toMatch(/^deployment\/web \(\* = desired\)\nREVISION\s+IMAGE\s+CPU\s+MEMORY_MB\s+ACTIVE\s+AGE\n2\*\s+nginx:1\.28\s+0\.5\s+512\s+3\s+\S+\n1\s+nginx:1\.27\s+0\.5\s+512\s+0\s+\S+\n$/);

    expect(await steady(['rollout', 'undo', 'web'])).toEqual({ code: 0, stdout: 'deployment/web rolled back (revision 3)\n', stderr: '' });
    expect((await status('web')).container_image).toBe('nginx:1.27');
    expect((await steady(['rollout', 'status', 'web', '--timeout', '120s'])).code).toBe(0);
    expect(await revisionsRunning('web')).toEqual([3, 3, 3]);

    expect(await steady(['rollout', 'undo', 'web', '--to-revision', '2'])).toEqual({ code: 0, stdout: 'deployment/web rolled back (revision 4)\n', stderr: '' });
    expect((await status('web')).container_image).toBe('nginx:1.28');
    // Unknown revision (422) and the current template (409): refused with the API's words, exit code 1.
    const unknown = await steady(['rollout', 'undo', 'web', '--to-revision', '99']);
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toMatch(/^error: .*\(422 /);
    const same = await steady(['rollout', 'undo', 'web', '--to-revision', '4']);
    expect(same).toMatchObject({ code: 1, stdout: '' });
    expect(same.stderr).toMatch(/^error: .*\(409 /);
    expect((await steady(['rollout', 'status', 'web', '--timeout', '120s'])).code).toBe(0);
  }, PATIENCE_MS * 2);

  it('set image of an image that never starts: rollout status exits 1 with the reason and the automatic rollback', async () => {
    await steady(['apply', '-f', file('bad.yaml', manifest('bad', 'nginx:1.27'))]);
    expect((await steady(['rollout', 'status', 'bad', '--timeout', '120s'])).code).toBe(0);
    expect(await steady(['set', 'image', 'bad', 'nginx:fail'])).toEqual({ code: 0, stdout: 'deployment/bad image updated\n', stderr: '' });
    const failed = await steady(['rollout', 'status', 'bad', '--timeout', '120s']);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/deployment "bad" rollout failed: CrashLoopBackOff: \d+ replicas of revision 2 failed and none became available; rolled back to revision 1 \(template of revision 1\) as revision 3\n$/);
    // The old replicas served throughout (max_unavailable 0), and the rollback completes on them.
    expect((await steady(['rollout', 'status', 'bad', '--timeout', '120s'])).code).toBe(0);
    expect(await revisionsRunning('bad')).toEqual([1, 1]);
    // Setting the image it already runs changes nothing.
    expect(await steady(['set', 'image', 'bad', 'nginx:1.27'])).toEqual({ code: 0, stdout: 'deployment/bad unchanged\n', stderr: '' });
    expect((await status('bad')).revision).toBe(3);
  }, PATIENCE_MS * 2);

  it('pause holds a rollout (rollout status waits and says so), resume lets it finish', async () => {
    await steady(['apply', '-f', file('held.yaml', manifest('held', 'nginx:1.27'))]);
    expect((await steady(['rollout', 'status', 'held', '--timeout', '120s'])).code).toBe(0);
    expect(await steady(['rollout', 'pause', 'held'])).toEqual({ code: 0, stdout: 'deployment/held paused\n', stderr: '' });
    await steady(['set', 'image', 'held', 'nginx:1.28']);
    const waiting = await steady(['rollout', 'status', 'held', '--timeout', '2s']);
    expect(waiting.code).toBe(1);
    expect(waiting.stdout).toBe('Waiting for deployment "held": the rollout to revision 2 is paused (steady rollout resume held)\n');
    expect(waiting.stderr).toBe('error: timed out waiting for deployment "held" to roll out\n');
    expect(await revisionsRunning('held')).toEqual([1, 1]);
    expect((await steady(['describe', 'deployment', 'held'])).stdout).toMatch(/Rollout:\s+revision 2 paused\n/);
    expect(await steady(['rollout', 'resume', 'held'])).toEqual({ code: 0, stdout: 'deployment/held resumed\n', stderr: '' });
    const resumed = await steady(['rollout', 'status', 'held', '--timeout', '120s']);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(/successfully rolled out \(revision 2\)\n$/);
  }, PATIENCE_MS * 2);

  it('rollout status after a scale waits for the new replicas, not only for the template', async () => {
    await steady(['apply', '-f', file('grown.yaml', manifest('grown', 'nginx:1.27', 1))]);
    expect((await steady(['rollout', 'status', 'grown', '--timeout', '120s'])).code).toBe(0);
    // Two nodes of 4 cores cannot hold 40 replicas of half a core: the template is rolled out, the count never is.
    expect(await steady(['scale', 'grown', '--replicas', '40'])).toEqual({ code: 0, stdout: 'deployment/grown scaled\n', stderr: '' });
    // Once the controller has acted on the scale, the count alone holds the rollout status back.
    await until('the scale to be observed', async () => {
      const d = await status('grown');
      return d.observed_generation === d.generation;
    });
    const short = await steady(['rollout', 'status', 'grown', '--timeout', '2s']);
    expect(short.code).toBe(1);
    expect(short.stdout).toMatch(/^(Waiting for deployment "grown" rollout to finish: \d+ of 40 updated replicas are available\.\.\. \(Unschedulable: [^\n]+\)\n)+$/);
    expect(short.stderr).toBe('error: timed out waiting for deployment "grown" to roll out\n');
    expect(await steady(['scale', 'grown', '--replicas', '2'])).toEqual({ code: 0, stdout: 'deployment/grown scaled\n', stderr: '' });
    const done = await steady(['rollout', 'status', 'grown', '--timeout', '120s']);
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/deployment "grown" successfully rolled out \(revision 1\)\n$/);
    const d = await status('grown');
    expect(d.replicas.filter((r) => r.status === 'running')).toHaveLength(2);
    expect(d.observed_generation).toBe(d.generation);
  }, PATIENCE_MS * 2);

  it('get deployments -w prints a row for every change while a deployment scales and rolls', async () => {
    await steady(['apply', '-f', file('watched.yaml', manifest('watched', 'nginx:1.27', 1))]);
    expect((await steady(['rollout', 'status', 'watched', '--timeout', '120s'])).code).toBe(0);
    const run = await watch(
      ['get', 'deployments', '-w'],
      (out) => /\nwatched\s+running\s+healthy\s+3\/3\s+3\s+3\s/.test(out),
      async () => {
        expect((await steady(['scale', 'watched', '--replicas', '3'])).code).toBe(0);
      },
    );
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const lines = run.stdout.split('\n');
    expect(lines[0]).toMatch(/^NAME\s+STATUS\s+HEALTH\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE$/);
    // The list, then changes: the new target first, running replicas counted up to it.
    const rows = lines.filter((l) => l.startsWith('watched '));
    expect(rows[0]).toMatch(/^watched\s+running\s+healthy\s+1\/1\s+1\s+1\s+\d+s$/);
    expect(rows.slice(1).some((l) => /\s1\/3\s/.test(l))).toBe(true);
    expect(rows.at(-1)).toMatch(/\s3\/3\s+3\s+3\s/);

    // -o wide follows the rollout: revision and state per change.
    const wide = await watch(
      ['get', 'deployments', '-w', '-o', 'wide'],
      (out) => /\nwatched\s+running\s+healthy\s+3\/3\s+3\s+3\s+\S+\s+nginx:1\.28\s+2\s+complete\s/.test(out),
      async () => {
        expect((await steady(['set', 'image', 'watched', 'nginx:1.28'])).code).toBe(0);
      },
    );
    expect(wide.stdout).toMatch(/\nwatched\s+\S+\s+\S+\s+\d\/3\s+\d\s+\d\s+\S*\s*nginx:1\.28\s+2\s+progressing\s/);

    // Named: only that deployment's rows, though another one changes first.
    await steady(['apply', '-f', file('bystander.yaml', manifest('bystander', 'nginx:1.27', 1))]);
    const named = await watch(
      ['get', 'deployment', 'watched', '-w'],
      (out) => /\nwatched\s+\S+\s+\S+\s+2\/2\s/.test(out),
      async () => {
        expect((await steady(['scale', 'bystander', '--replicas', '2'])).code).toBe(0);
        expect((await steady(['rollout', 'status', 'bystander', '--timeout', '120s'])).code).toBe(0);
        expect((await steady(['scale', 'watched', '--replicas', '2'])).code).toBe(0);
      },
    );
    expect(named.stdout).toMatch(/^NAME\s+STATUS[^\n]*\nwatched\s/);
    expect(named.stdout).not.toContain('bystander');
    // The nodes are shared with the tests after this one: give the room back.
    expect((await steady(['delete', 'bystander'])).code).toBe(0);
  }, PATIENCE_MS * 2);

  it('events -w follows live, and after a lost connection resumes with Last-Event-ID: nothing missed', async () => {
    await steady(['apply', '-f', file('followed.yaml', manifest('followed', 'nginx:1.27', 1))]);
    expect((await steady(['rollout', 'status', 'followed', '--timeout', '120s'])).code).toBe(0);
    const id = (await status('followed')).deployment_id;
    const proxy = await startTcpProxy(Number(new URL(cluster.url).port));
    try {
      const proxied = { ...env, STEADY_URL: `http://127.0.0.1:${proxy.port}` };
      const run = await watch(
        ['events', '-w', '--deployment', 'followed'],
        (out) => /deployment\/followed\s+running\s+4\/4 running, healthy, rollout complete \(revision 1: 4 updated, 4 available\)/.test(out),
        async () => {
          // Live first: a change while connected.
          await client.scale(id, 2);
          // Until the controller has recorded the deployment running: the event awaited below.
          await until('the live event', async () => {
            const s = await status('followed');
            return s.status === 'running' && s.replicas.filter((r) => r.status === 'running').length === 2;
          });
          // Then the connection is lost; what happens meanwhile must come after it is back.
          proxy.cut();
          await client.scale(id, 4);
          await until('four replicas running', async () => (await status('followed')).replicas.filter((r) => r.status === 'running').length === 4);
          proxy.restore();
        },
        { env: proxied },
      );
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^TIME\s+OBJECT\s+EVENT\s+DETAIL\n/);
      expect(run.stdout).toMatch(/deployment\/followed\s+running\s+2\/2 running, healthy/);
      // Written while the stream was cut: the target change, the new replicas, each running one.
      expect(run.stdout).toMatch(/deployment\/followed\s+replicas:4\s+replicas:2 → replicas:4: User-initiated scaling/);
      expect(run.stdout).toMatch(/deployment\/followed\s+\w+\s+\d\/4 running/);
      expect(run.stdout.match(/replica\/followed\/\w{8}\s+running\s+on \S+, revision 1\n/g)?.length).toBeGreaterThanOrEqual(3);
      // Nothing twice: each line of a replica's status change appears once.
      const replicaLines = run.stdout.split('\n').filter((l) => l.includes('replica/followed/'));
      expect(new Set(replicaLines.map((l) => l.slice(9))).size).toBe(replicaLines.length);
    } finally {
      await proxy.close();
    }
  }, PATIENCE_MS * 2);
});
