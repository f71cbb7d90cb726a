import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseAgentArgs } from '../../src/cli/agent.js';

/**
 * The deployment files are configuration nobody runs in CI; this keeps the fields that must agree,
 * agreeing: ports, probe paths, environment names, the image, and the commands.
 */
const root = fileURLToPath(new URL('../../', import.meta.url));
const k8sDir = path.join(root, 'deploy/kubernetes');
const IMAGE = 'steady:latest';
/** `steady`'s subcommands (DESIGN.md section 4). */
const SUBCOMMANDS = ['dev', 'serve', 'migrate', 'agent', 'token'];

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The variables loadConfig reads, taken from its source, so a renamed variable fails here. */
function configVariables(): Set<string> {
  const source = fs.readFileSync(path.join(root, 'src/config.ts'), 'utf8');
  return new Set([...source.matchAll(/read\.\w+\('([A-Z][A-Z0-9_]*)'/g)].map((m) => m[1]!));
}

function loadK8s(): { file: string; doc: Obj }[] {
  return fs
    .readdirSync(k8sDir)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .flatMap((file) =>
      parseAllDocuments(fs.readFileSync(path.join(k8sDir, file), 'utf8')).map((d) => {
        expect(d.errors, file).toEqual([]);
        return { file, doc: d.toJS() as Obj };
      }),
    );
}

const k8s = loadK8s();
const ofKind = (kind: string) => k8s.filter((o) => o.doc.kind === kind).map((o) => o.doc);
const deployments = ofKind('Deployment');
const workloads = [...deployments, ...ofKind('Job')];
const containersOf = (w: Obj): Obj[] => w.spec.template.spec.containers;
const envOf = (c: Obj): Map<string, Obj> => new Map((c.env ?? []).map((e: Obj) => [e.name, e]));
const matches = (selector: Obj, labels: Obj) => Object.entries(selector).every(([k, v]) => labels?.[k] === v);
const compose = parseYaml(fs.readFileSync(path.join(root, 'deploy/compose.yaml'), 'utf8'), { merge: true }) as Obj;
const dockerfile = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');

/** Checks a steady command line is one the CLI accepts. */
function expectSteadyCommand(args: string[], where: string): void {
  const [command, ...rest] = args;
  expect(SUBCOMMANDS, where).toContain(command);
  if (command === 'serve') {
    expect(rest.slice(0, 1), where).toEqual(['--role']);
    expect(['api', 'controller', 'all'], where).toContain(rest[1]);
  }
  if (command === 'migrate') expect(['up', 'down', 'status', 'sql'], where).toContain(rest[0]);
  if (command === 'agent') expect(parseAgentArgs(rest), where).toMatchObject({ ok: true });
}

function resolvePort(container: Obj, port: string | number): number | undefined {
  if (typeof port === 'number') return container.ports?.some((p: Obj) => p.containerPort === port) ? port : undefined;
  return container.ports?.find((p: Obj) => p.name === port)?.containerPort;
}

describe('Kubernetes manifests', () => {
  it('parse, and hold the expected objects', () => {
    const kinds = k8s.map((o) => `${o.doc.kind}/${o.doc.metadata.name}`).sort();
    expect(kinds).toEqual([
      'Deployment/steady-api',
      'Deployment/steady-controller',
      'Job/steady-migrate',
      'Namespace/steady',
      'PodDisruptionBudget/steady-api',
      'PodDisruptionBudget/steady-controller',
      'Service/steady-api',
    ]);
    for (const { doc } of k8s.filter((o) => o.doc.kind !== 'Namespace')) expect(doc.metadata.namespace, doc.metadata.name).toBe('steady');
  });

  it('run one image everywhere, with real steady commands', () => {
    const api = deployments.find((d) => d.metadata.name === 'steady-api')!;
    const controller = deployments.find((d) => d.metadata.name === 'steady-controller')!;
    expect(containersOf(api)[0]!.args).toEqual(['serve', '--role', 'api']);
    expect(containersOf(controller)[0]!.args).toEqual(['serve', '--role', 'controller']);
    expect(containersOf(ofKind('Job')[0]!)[0]!.args).toEqual(['migrate', 'up']);
    expect(api.spec.replicas).toBe(2);
    expect(controller.spec.replicas).toBe(2);
    for (const w of workloads) {
      for (const c of containersOf(w)) {
        expect(c.image, w.metadata.name).toBe(IMAGE);
        expect(c.command, 'the image ENTRYPOINT is steady; only args are given').toBeUndefined();
        expectSteadyCommand(c.args, w.metadata.name);
      }
    }
  });

  it('agree on the port: containerPort, PORT, HOST, probes, Service targetPort and the Dockerfile', () => {
    const exposed = Number(/^EXPOSE (\d+)$/m.exec(dockerfile)?.[1]);
    for (const d of deployments) {
      const [c] = containersOf(d);
      const env = envOf(c!);
      const port = resolvePort(c!, 'http');
      expect(port, d.metadata.name).toBe(exposed);
      expect(Number(env.get('PORT')?.value), d.metadata.name).toBe(port);
      // Bound to 127.0.0.1 (the default), the kubelet's probes could not reach it.
      expect(env.get('HOST')?.value, d.metadata.name).toBe('0.0.0.0');
      expect(c!.livenessProbe.httpGet.path).toBe('/healthz');
      expect(c!.readinessProbe.httpGet.path).toBe('/readyz');
      expect(resolvePort(c!, c!.livenessProbe.httpGet.port)).toBe(port);
      expect(resolvePort(c!, c!.readinessProbe.httpGet.port)).toBe(port);
      expect(matches(d.spec.selector.matchLabels, d.spec.template.metadata.labels), d.metadata.name).toBe(true);
    }
    const service = ofKind('Service')[0]!;
    const [servicePort] = service.spec.ports;
    expect(servicePort.port).toBe(80);
    const backends = deployments.filter((d) => matches(service.spec.selector, d.spec.template.metadata.labels));
    expect(backends.map((d) => d.metadata.name)).toEqual(['steady-api']);
    expect(resolvePort(containersOf(backends[0]!)[0]!, servicePort.targetPort)).toBe(exposed);
  });

  it('take only environment variables steady reads, secrets from steady-secrets under the same names', () => {
    const known = configVariables();
    expect(known.has('DATABASE_URL') && known.has('JWT_SECRET') && known.has('PORT')).toBe(true);
    for (const w of workloads) {
      for (const c of containersOf(w)) {
        for (const [name, e] of envOf(c)) {
          expect(known, `${w.metadata.name}: ${name}`).toContain(name);
          if (e.valueFrom) expect(e.valueFrom.secretKeyRef, name).toEqual({ name: 'steady-secrets', key: name });
        }
        expect(envOf(c).has('DATABASE_URL'), w.metadata.name).toBe(true);
      }
    }
    expect(envOf(containersOf(deployments.find((d) => d.metadata.name === 'steady-api')!)[0]!).has('JWT_SECRET')).toBe(true);
  });

  it('have a disruption budget per Deployment that leaves one pod, resources, and a locked-down security context', () => {
    const budgets = ofKind('PodDisruptionBudget');
    for (const d of deployments) {
      const mine = budgets.filter((b) => matches(b.spec.selector.matchLabels, d.spec.template.metadata.labels));
      expect(mine, d.metadata.name).toHaveLength(1);
      expect(mine[0]!.spec.minAvailable).toBeGreaterThanOrEqual(1);
      expect(mine[0]!.spec.minAvailable).toBeLessThan(d.spec.replicas);
    }
    const dockerUser = /^USER (\d+)(?::\d+)?$/m.exec(dockerfile)?.[1];
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      expect(pod.securityContext.runAsNonRoot, w.metadata.name).toBe(true);
      expect(String(pod.securityContext.runAsUser)).toBe(dockerUser);
      for (const c of pod.containers) {
        expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
        expect(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, w.metadata.name).toBeTruthy();
      }
    }
  });

  it('are all listed in the kustomization, whose image override names the same image', () => {
    const kustomization = parseYaml(fs.readFileSync(path.join(k8sDir, 'kustomization.yaml'), 'utf8')) as Obj;
    expect([...kustomization.resources].sort()).toEqual([...new Set(k8s.map((o) => o.file))].sort());
    expect(kustomization.namespace).toBe('steady');
    expect(kustomization.images).toEqual([{ name: 'steady', newName: 'steady', newTag: 'latest' }]);
  });
});

describe('compose.yaml', () => {
  const steadyServices = Object.entries(compose.services as Record<string, Obj>).filter(([, s]) => s.image === IMAGE);

  it('runs PostgreSQL 16 with a health check, and every other service on the steady image', () => {
    const pg = compose.services.postgres;
    expect(pg.image).toMatch(/^postgres:16(\.|-|$)/);
    expect(pg.healthcheck.test.join(' ')).toContain('pg_isready');
    expect(steadyServices.map(([name]) => name).sort()).toEqual(['agents', 'api', 'controller', 'migrate']);
  });

  it('gives each service a real steady command, in the right order', () => {
    const s = compose.services;
    expect(s.migrate.command).toEqual(['migrate', 'up']);
    expect(s.api.command).toEqual(['serve', '--role', 'api']);
    expect(s.controller.command).toEqual(['serve', '--role', 'controller']);
    expect(s.agents.command.slice(0, 2)).toEqual(['agent', '--simulate']);
    for (const [name, service] of steadyServices) expectSteadyCommand(service.command, name);
    expect(s.migrate.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect(s.api.depends_on).toEqual({ migrate: { condition: 'service_completed_successfully' } });
    expect(s.controller.depends_on).toEqual({ migrate: { condition: 'service_completed_successfully' } });
    expect(s.migrate.restart).toBe('no');
    // Without an HTTP server, the image's /healthz check would mark these unhealthy.
    expect(s.migrate.healthcheck).toEqual({ disable: true });
    expect(s.agents.healthcheck).toEqual({ disable: true });
  });

  it('points the agents at the api service on the port it listens on, and publishes that port', () => {
    const parsed = parseAgentArgs(compose.services.agents.command.slice(1));
    if (!parsed.ok) throw new Error(parsed.message);
    if (!('args' in parsed)) throw new Error('expected simulated nodes');
    const url = new URL(parsed.args.apiUrl);
    expect(Object.keys(compose.services)).toContain(url.hostname);
    const apiPort = Number(compose.services.api.environment.PORT ?? /^ENV[\s\S]*?\bPORT=(\d+)/m.exec(dockerfile)?.[1]);
    expect(Number(url.port)).toBe(apiPort);
    expect(compose.services.api.ports.map((p: string) => Number(p.split(':').at(-1)))).toContain(apiPort);
    expect(parsed.args.nodes).toBe(3);
  });

  it('sets only environment variables steady reads; JWT secrets long enough for loadConfig', () => {
    const known = configVariables();
    for (const [name, service] of steadyServices) {
      for (const [key, value] of Object.entries(service.environment as Record<string, string>)) {
        expect(known, `${name}: ${key}`).toContain(key);
        if (key === 'JWT_SECRET') expect(/:-([^}]*)\}/.exec(value)?.[1]?.length ?? 0).toBeGreaterThanOrEqual(32);
      }
    }
    expect(compose.services.api.environment.DATABASE_URL).toMatch(/@postgres:5432\//);
  });
});

describe('Dockerfile', () => {
  it('builds on a Node LTS slim image in stages and runs bin/steady.js serve as a non-root user', () => {
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]!);
    expect(froms.length).toBeGreaterThanOrEqual(2);
    expect(/^ARG NODE_IMAGE=node:(22|24)-bookworm-slim$/m.test(dockerfile)).toBe(true);
    expect(dockerfile).toMatch(/RUN npm ci --omit=dev/);
    expect(dockerfile).toMatch(/RUN npm run build/);
    expect(dockerfile).toContain('ENTRYPOINT ["node", "/app/bin/steady.js"]');
    expect(dockerfile).toContain('CMD ["serve"]');
    expect(Number(/^USER (\d+)/m.exec(dockerfile)?.[1])).toBeGreaterThan(0);
    expect(dockerfile).toMatch(/HEALTHCHECK[\s\S]*\/healthz/);
    expect(dockerfile).toMatch(/HOST=0\.0\.0\.0/);
  });

  it('copies only paths that exist and that .dockerignore lets through', () => {
    const ignored = fs
      .readFileSync(path.join(root, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    expect(sources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'src', 'bin', 'migrations']));
    for (const source of sources) {
      expect(fs.existsSync(path.join(root, source)), source).toBe(true);
      expect(ignored, source).not.toContain(source);
    }
    expect(fs.existsSync(path.join(root, 'bin/steady.js'))).toBe(true);
  });
});
