import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { SteadyClient } from '../../src/client/client.js';
import { writeContextFile } from '../../src/cli/context-file.js';
import { runInProcess, writeFileIn, type InProcessOptions } from '../support/cli.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';
import { describeBackends } from '../support/databases.js';
import { freePort } from '../support/postgres-server.js';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'steady-cli-'));

const nodeNamedIn = async (client: SteadyClient, name: string) => (await client.nodes()).find((n) => n.name === name)!;

describeBackends('steady client verbs against a real server', (db) => {
  let cluster: TestCluster;
  let env: Record<string, string>;
  let adminEnv: Record<string, string>;
  let client: SteadyClient;
  let dir: string;
  beforeAll(async () => {
    cluster = await startTestCluster(db(), { nodes: 2 });
    const token = await cluster.token('cli-user');
    dir = tmp();
    env = { STEADY_URL: cluster.url, STEADY_TOKEN: token, XDG_CONFIG_HOME: dir };
    adminEnv = { ...env, STEADY_TOKEN: await cluster.token('cli-admin', ['admin']) };
    client = new SteadyClient({ baseUrl: cluster.url, token });
  });
  afterAll(() => cluster?.stop());

  const steady = (argv: readonly string[], options: InProcessOptions = {}) => runInProcess(argv, { env, ...options });
  const file = (name: string, text: string): string => writeFileIn(dir, name, text);
  const spec = (name: string, replicas = 2, extra = '') =>
    `name: ${name}\ncontainer_image: nginx:1.27\ntarget_replicas: ${replicas}\nresources:\n  cpu_cores: 0.5\n  memory_mb: 512\n  storage_gb: 1\n${extra}`;

  it('apply -f creates, then changes nothing, then configures only what differs; names or ids work everywhere', async () => {
    const manifest = file('two.yaml', `${spec('api')}---\n${spec('worker', 1)}`);
    expect(await steady(['apply', '-f', manifest])).toEqual({ code: 0, stdout: 'deployment/api created\ndeployment/worker created\n', stderr: '' });
    expect(await steady(['apply', '-f', manifest])).toEqual({ code: 0, stdout: 'deployment/api unchanged\ndeployment/worker unchanged\n', stderr: '' });
    const api = (await client.findDeployment('api'))!;
    const before = await client.status(api.deployment_id);
    expect((await steady(['apply', '-f', file('two-b.yaml', `${spec('api', 3)}---\n${spec('worker', 1)}`)])).stdout).toBe('deployment/api configured\ndeployment/worker unchanged\n');
    expect((await client.status(api.deployment_id)).target_replicas).toBe(3);
    expect((await client.status(api.deployment_id)).updated_at).not.toBe(before.updated_at);

    // JSON on standard input, one object or an array of them.
    const json = JSON.stringify([{ name: 'api', container_image: 'nginx:1.27', target_replicas: 3, resources: { cpu_cores: 0.5, memory_mb: 512, gpu_units: 0, storage_gb: 1 } }]);
    expect(await steady(['apply', '-f', '-'], { stdin: json })).toEqual({ code: 0, stdout: 'deployment/api unchanged\n', stderr: '' });
    // An empty command or env is none, to the API and to apply alike.
    expect(await steady(['apply', '-f', file('empty.yaml', spec('api', 3, 'command: []\nenv: {}\n'))])).toEqual({ code: 0, stdout: 'deployment/api unchanged\n', stderr: '' });

    expect((await steady(['scale', 'worker', '--replicas', '2'])).stdout).toBe('deployment/worker scaled\n');
    const worker = (await client.findDeployment('worker'))!;
    expect(worker.target_replicas).toBe(2);
    expect(await steady(['scale', worker.deployment_id, '--replicas', '1'])).toEqual({ code: 0, stdout: 'deployment/worker scaled\n', stderr: '' });
    expect((await client.status(worker.deployment_id)).target_replicas).toBe(1);
  }, 60_000);

  it("apply reports an invalid document with the API's details, naming the file and the document, and applies nothing of it", async () => {
    const manifest = file('mixed.yaml', `${spec('good')}---\n${spec('bad', 0)}`);
    const run = await steady(['apply', '-f', manifest]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('deployment/good created\n');
    expect(run.stderr).toContain(`error: ${manifest} (document 2): `);
    expect(run.stderr).toMatch(/target_replicas: .+/);
    expect(await client.findDeployment('bad')).toBeNull();

    // An invalid change to an existing deployment leaves it as it was.
    const good = (await client.findDeployment('good'))!;
    const change = await steady(['apply', '-f', file('good-bad.yaml', spec('good', 500))]);
    expect(change.code).toBe(1);
    expect(change.stderr).toContain('target_replicas');
    expect((await client.status(good.deployment_id)).target_replicas).toBe(2);

    const broken = await steady(['apply', '-f', file('broken.yaml', 'name: [unclosed\n')]);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain('not valid YAML');
    expect(await steady(['apply', '-f', path.join(dir, 'absent.yaml')])).toMatchObject({ code: 1, stderr: expect.stringContaining('cannot read') });
  }, 60_000);

  it('get deployments prints an aligned table, a wide one, and the exact API objects as JSON and YAML', async () => {
    await steady(['apply', '-f', file('listed.yaml', spec('listed', 1))]);
    await expect.poll(async () => (await client.findDeployment('listed'))?.status, { timeout: 30_000, interval: 200 }).toBe('running');
    const table = await steady(['get', 'deployments']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+STATUS\s+HEALTH\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE$/);
    const row = lines.find((l) => l.startsWith('listed '))!;
    expect(row).toMatch(/^listed\s+running\s+healthy\s+1\/1\s+1\s+1\s+\d+s$/);
    // Aligned: every column starts where its header does.
    for (const header of ['STATUS', 'HEALTH', 'READY']) expect(row.indexOf(header === 'STATUS' ? 'running' : header === 'HEALTH' ? 'healthy' : '1/1')).toBe(lines[0]!.indexOf(header));
    expect(table.stdout).not.toContain('\u001b['); // no colour off a terminal
    expect((await steady(['get', 'deployments'], { isTTY: true })).stdout).toContain('\u001b[32mrunning\u001b[0m');
    expect((await steady(['get', 'deployments'], { isTTY: true, env: { ...env, NO_COLOR: '1' } })).stdout).not.toContain('\u001b[');
    expect((await steady(['get', 'deploy', '-o', 'wide'])).stdout).toMatch(/\nlisted\s+running\s+healthy\s+1\/1\s+1\s+1\s+\S+\s+nginx:1\.27\s+1\s+complete\s/);

    const items = await client.allDeployments();
    expect(JSON.parse((await steady(['get', 'deployments', '-o', 'json'])).stdout)).toEqual({ items });
    expect(parseYaml((await steady(['get', 'deployments', '-o', 'yaml'])).stdout)).toEqual({ items });
    expect(await steady(['get', 'deployments', '-o', 'xml'])).toMatchObject({ code: 2, stderr: expect.stringContaining("argument 'xml' is invalid") });

    // By name or id: the rows asked for; as json or yaml one object alone, several as {items}.
    const listed = (await client.findDeployment('listed'))!;
    const one = await steady(['get', 'deployment', 'listed']);
    expect(one.code).toBe(0);
    expect(one.stdout.trimEnd().split('\n')).toEqual([expect.stringMatching(/^NAME\s+STATUS/), expect.stringMatching(/^listed\s+running\s+healthy\s+1\/1\s+1\s+1\s+\d+s$/)]);
    const { updated_at: _u, replicas: _r, ...stable } = listed;
    expect(JSON.parse((await steady(['get', 'deployment', listed.deployment_id, '-o', 'json'])).stdout)).toMatchObject(stable);
    const twice = parseYaml((await steady(['get', 'deploy', 'listed', listed.deployment_id, '-o', 'yaml'])).stdout) as { items: { name: string }[] };
    expect(twice.items).toEqual([expect.objectContaining({ name: 'listed', replicas: expect.any(Array) })]);
    // A name not found: the others are printed, the missing one named on stderr, exit code 1.
    const partly = await steady(['get', 'deployments', 'listed', 'absent']);
    expect(partly).toMatchObject({ code: 1, stderr: 'error: deployment "absent" not found\n', stdout: expect.stringMatching(/\nlisted\s+running/) });
    expect(await steady(['get', 'deployment', 'absent', '-o', 'json'])).toEqual({ code: 1, stdout: '', stderr: 'error: deployment "absent" not found\n' });
  }, 60_000);

  it('describe shows status, replicas on named nodes, why a replica is pending, and recent events', async () => {
    await steady(['apply', '-f', file('described.yaml', spec('described', 2))]);
    await expect.poll(async () => (await client.findDeployment('described'))?.status, { timeout: 30_000, interval: 200 }).toBe('running');
    const run = await steady(['describe', 'deployment', 'described']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Name:\s+described\nID:\s+[0-9a-f-]{36}\nStatus:\s+running\n/);
    expect(run.stdout).toMatch(/Image:\s+nginx:1\.27/);
    expect(run.stdout).toMatch(/Command:\s+<the image's>\nEnvironment:\s+<none>\n/);
    expect(run.stdout).toMatch(/Replicas:\n\s+ID\s+STATUS\s+NODE[\s\S]*running\s+node-\w+-[12]/);
    expect(run.stdout).toMatch(/Events:\n\s+AGE\s+CHANGE\s+REASON\n[\s\S]*pending → /);

    // Memory no node has: the replica stays pending, and describe says why.
    await steady(['apply', '-f', file('huge.yaml', spec('huge', 1).replace('memory_mb: 512', 'memory_mb: 65536'))]);
    await expect.poll(async () => (await steady(['describe', 'deployment', 'huge'])).stdout, { timeout: 30_000, interval: 300 }).toMatch(
      /pending\s+<unscheduled>\s+\S*\s*(Unschedulable: 0\/2 nodes|waiting to be scheduled)/,
    );
  }, 60_000);

  it('rollout status waits: 0 once every replica runs, 1 when --timeout passes first', async () => {
    await steady(['apply', '-f', file('waited.yaml', spec('waited', 2))]);
    const done = await steady(['rollout', 'status', 'waited', '--timeout', '60s']);
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(/deployment "waited" successfully rolled out/);
    await steady(['apply', '-f', file('never.yaml', spec('never', 1).replace('memory_mb: 512', 'memory_mb: 65536'))]);
    const stuck = await steady(['rollout', 'status', 'never', '--timeout', '1s']);
    expect(stuck.code).toBe(1);
    expect(stuck.stderr).toContain('timed out waiting for deployment "never"');
  }, 90_000);

  it('stop, start and delete by name; not found is exit code 1', async () => {
    await steady(['apply', '-f', file('switch.yaml', spec('switch', 1))]);
    expect(await steady(['stop', 'switch'])).toEqual({ code: 0, stdout: 'deployment/switch stopped\n', stderr: '' });
    expect((await client.findDeployment('switch'))?.status).toBe('stopped');
    expect((await steady(['start', 'switch'])).stdout).toBe('deployment/switch started\n');
    expect((await client.findDeployment('switch'))?.status).not.toBe('stopped');
    expect((await steady(['delete', 'switch'])).stdout).toBe('deployment/switch deleted\n');
    expect(await client.findDeployment('switch')).toBeNull();
    expect(await steady(['delete', 'switch'])).toEqual({ code: 1, stdout: '', stderr: 'error: deployment "switch" not found\n' });
  }, 60_000);

  it('cordon, uncordon and drain nodes by name (admin); a user is refused with the API message', async () => {
    const admin = new SteadyClient({ baseUrl: cluster.url, token: adminEnv.STEADY_TOKEN! });
    const [first] = (await admin.nodes()).sort((a, b) => a.name.localeCompare(b.name));
    const name = first!.name;
    expect(await runInProcess(['cordon', name], { env: adminEnv })).toEqual({ code: 0, stdout: `node/${name} cordoned\n`, stderr: '' });
    expect((await admin.nodes()).find((n) => n.name === name)?.status).toBe('cordoned');
    expect((await runInProcess(['uncordon', name], { env: adminEnv })).stdout).toBe(`node/${name} uncordoned\n`);
    expect((await admin.nodes()).find((n) => n.name === name)?.status).toBe('ready');
    const drained = await runInProcess(['drain', name, '--timeout', '60s'], { env: adminEnv });
    expect(drained).toEqual({ code: 0, stdout: `node/${name} draining\nnode/${name} drained\n`, stderr: '' });
    const after = (await admin.nodes()).find((n) => n.name === name)!;
    expect(after.replica_counts.running + after.replica_counts.pending + after.replica_counts.starting + after.replica_counts.stopping).toBe(0);
    await runInProcess(['uncordon', name], { env: adminEnv });
    const refused = await steady(['cordon', name]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: .+\(403 forbidden\)\n$/);
    expect((await runInProcess(['get', 'nodes', '-o', 'json'], { env: adminEnv })).stdout).toContain(`"name": "${name}"`);
    const node = JSON.parse((await runInProcess(['get', 'node', name, '-o', 'json'], { env: adminEnv })).stdout) as { node_id: string; name: string };
    expect(node).toMatchObject({ name, node_id: first!.node_id });
    const rows = (await runInProcess(['get', 'nodes', first!.node_id, 'absent'], { env: adminEnv }));
    expect(rows).toMatchObject({ code: 1, stderr: 'error: node "absent" not found\n' });
    expect(rows.stdout.trimEnd().split('\n')).toEqual([expect.stringMatching(/^NAME\s+STATUS/), expect.stringMatching(new RegExp(`^${name}\\s+ready\\s`))]);
    const described = await runInProcess(['describe', 'node', name], { env: adminEnv });
    expect(described.code).toBe(0);
    expect(described.stdout).toMatch(new RegExp(`^Name:\\s+${name}\nID:\\s+${first!.node_id}\nStatus:\\s+ready\n`));
    expect(described.stdout).toMatch(/Allocated resources:\n\s+RESOURCE\s+ALLOCATED\s+CAPACITY\s+USED\n\s+cpu\s+[\d.]+\s+\d+\s+\d+%\n\s+memory_mb\s/);
    expect(await runInProcess(['describe', 'node', 'absent'], { env: adminEnv })).toEqual({ code: 1, stdout: '', stderr: 'error: node "absent" not found\n' });

    // delete node: only one that holds nothing (the API's 409 otherwise); a kind it does not know is usage.
    const spare = new SteadyClient({ baseUrl: cluster.url, token: await cluster.token('spare', ['node']) });
    await spare.registerNode({ name: 'spare', cpu_cores: 1, memory_mb: 1024, gpu_units: 0, storage_gb: 10 });
    await admin.setNodeStatus((await nodeNamedIn(admin, 'spare')).node_id, 'cordoned');
    await steady(['apply', '-f', file('pinned.yaml', spec('pinned', 1))]);
    expect((await steady(['rollout', 'status', 'pinned', '--timeout', '60s'])).code).toBe(0);
    const busy = (await admin.nodes()).find((n) => n.replica_counts.running > 0)!;
    expect(await runInProcess(['delete', 'node', busy.name], { env: adminEnv })).toMatchObject({ code: 1, stderr: expect.stringMatching(/drain it first \(409 conflict\)/) });
    expect(await runInProcess(['delete', 'node', 'spare'], { env: adminEnv })).toEqual({ code: 0, stdout: 'node/spare deleted\n', stderr: '' });
    expect((await admin.nodes()).some((n) => n.name === 'spare')).toBe(false);
    expect(await runInProcess(['delete', 'node', 'spare'], { env: adminEnv })).toEqual({ code: 1, stdout: '', stderr: 'error: node "spare" not found\n' });
    expect(await runInProcess(['delete', 'pod', 'spare'], { env: adminEnv })).toMatchObject({ code: 2, stderr: expect.stringContaining('unknown kind "pod"') });
  }, 90_000);

  it('events lists the recent status changes in time order', async () => {
    await steady(['apply', '-f', file('evented.yaml', spec('evented', 1))]);
    await expect.poll(async () => (await client.findDeployment('evented'))?.status, { timeout: 30_000, interval: 200 }).toBe('running');
    const run = await steady(['events', '--deployment', 'evented']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^TIME\s+OBJECT\s+EVENT\s+DETAIL\n/);
    expect(run.stdout).toMatch(/deployment\/evented\s+running\s+(pending|scheduled) → running/);
  }, 60_000);
});

describe('steady client verbs: server, token and exit codes', () => {
  it('takes --server/--token over STEADY_URL/STEADY_TOKEN over the context file', async () => {
    const dir = tmp();
    const closed = `http://127.0.0.1:${await freePort()}`;
    const other = `http://127.0.0.1:${await freePort()}`;
    writeContextFile({ XDG_CONFIG_HOME: dir }, { url: closed, token: 'from-file' });
    expect(fs.statSync(path.join(dir, 'steady', 'config.json')).mode & 0o777).toBe(0o600);
    const fromFile = await runInProcess(['get', 'deployments'], { env: { XDG_CONFIG_HOME: dir } });
    expect(fromFile.code).toBe(1);
    expect(fromFile.stderr).toContain(`cannot reach steady at ${closed}`);
    const fromEnv = await runInProcess(['get', 'deployments'], { env: { XDG_CONFIG_HOME: dir, STEADY_URL: other } });
    expect(fromEnv.stderr).toContain(`cannot reach steady at ${other}`);
    const fromFlag = await runInProcess(['get', 'deployments', '--server', 'http://127.0.0.1:9'], { env: { XDG_CONFIG_HOME: dir, STEADY_URL: other } });
    expect(fromFlag.stderr).toContain('cannot reach steady at http://127.0.0.1:9');
    // HOME/.config when XDG_CONFIG_HOME is not set.
    const home = tmp();
    writeContextFile({ HOME: home }, { url: closed, token: 't' });
    expect(fs.existsSync(path.join(home, '.config', 'steady', 'config.json'))).toBe(true);
  });

  it('exit code 1 with a hint when no server is known, or the context file is damaged; 2 for usage errors', async () => {
    const dir = tmp();
    const none = await runInProcess(['get', 'deployments'], { env: { XDG_CONFIG_HOME: dir } });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no server given');
    expect(none.stderr).toContain(path.join(dir, 'steady', 'config.json'));
    fs.mkdirSync(path.join(dir, 'steady'));
    fs.writeFileSync(path.join(dir, 'steady', 'config.json'), '{"url": 1}');
    expect(await runInProcess(['get', 'deployments'], { env: { XDG_CONFIG_HOME: dir } })).toMatchObject({ code: 1, stderr: expect.stringContaining('config.json: expected') });
    const env = { STEADY_URL: 'http://127.0.0.1:9', STEADY_TOKEN: 't' };
    for (const argv of [['scale', 'web'], ['scale', 'web', '--replicas', 'many'], ['get', 'pods'], ['rollout', 'status'], ['frobnicate'], ['apply'], ['rollout', 'undo', 'web', '--to-revision', '0']]) {
      const run = await runInProcess(argv, { env });
      expect(run.code, argv.join(' ')).toBe(2);
      expect(run.stderr, argv.join(' ')).toMatch(/^error: /);
    }
    expect(await runInProcess(['rollout', 'status', '--help'], { env })).toMatchObject({ code: 0, stdout: expect.stringContaining('Usage: steady rollout status') });
  });
});
