/**
 * Screenshots of every dashboard view for the README (docs/screenshots/), taken in the same headless
 * Chromium as the browser tests, against a `steady dev` with a few demo deployments.
 *   npx tsx scripts/dashboard-screenshots.ts [DIR]
 * Uses DATABASE_URL when set, else the embedded database in a temporary directory.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { signToken } from '../src/api/tokens.js';
import { openBrowser } from '../test/support/browser.js';
import { startSteady } from '../test/support/processes.js';

const outDir = path.resolve(process.argv[2] ?? 'docs/screenshots');
const secret = 'screenshots-secret-0123456789abcdef-0123456789';
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'steady-screenshots-'));
const steady = startSteady(['dev', '--nodes', '3', '--start-delay', '1500'], {
  JWT_SECRET: secret,
  STEADY_DATA_DIR: dataDir,
  XDG_CONFIG_HOME: dataDir,
  PORT: '0',
  LOG_LEVEL: 'warn',
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

try {
  const [, link] = (await steady.waitFor(/dashboard\s+(http:\/\/\S+#token=\S+)/, 180_000)) as [string, string];
  const origin = new URL(link).origin;
  const token = decodeURIComponent(link.split('#token=')[1]!);
  const admin = await signToken(secret, { sub: 'demo', roles: ['admin'], ttlSec: 3600 });
  const call = async <T>(method: string, route: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${origin}${route}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  const deploy = (name: string, image: string, replicas: number, cpu: number, memory: number) =>
    call<{ deployment_id: string }>('POST', '/api/deployment/deploy', {
      name,
      container_image: image,
      target_replicas: replicas,
      resources: { cpu_cores: cpu, memory_mb: memory, storage_gb: 5 },
    });

  await deploy('batch-import', 'registry.local/batch/import:3.2', 1, 8, 4096);
  await deploy('worker', 'registry.local/acme/worker:0.9.4', 4, 0.5, 1024);
  await deploy('api', 'registry.local/acme/api:2.4.1', 2, 1, 2048);
  const web = await deploy('web', 'nginx:1.27', 3, 0.5, 512);
  await sleep(5_000);
  // A rollout to a new image, so that the page has revisions and history to show.
  await call('PATCH', `/api/deployment/${web.deployment_id}`, { container_image: 'nginx:1.28' }).catch((err: Error) => console.warn(err.message));
  await call('POST', `/api/deployment/scale/${web.deployment_id}`, { target_replicas: 4 });
  await sleep(8_000);

  fs.mkdirSync(outDir, { recursive: true });
  const shoot = async (file: string, url: string, options: Parameters<typeof openBrowser>[0] = {}, tokenToUse: string | null = token) => {
    const session = await openBrowser(options);
    try {
      await session.page.goto(tokenToUse === null ? origin : `${origin}/#token=${tokenToUse}`);
      await session.page.waitForLoadState('networkidle').catch(() => undefined);
      if (url !== '') await session.page.goto(`${origin}/${url}`);
      await sleep(1_500);
      await session.page.screenshot({ path: path.join(outDir, file) });
      if (session.errors.length > 0) console.warn(`${file}: ${session.errors.join('\n')}`);
      console.log(path.relative(process.cwd(), path.join(outDir, file)));
    } finally {
      await session.close();
    }
  };
  await shoot('deployments.png', '#/');
  await shoot('deployment.png', `#/deployments/${web.deployment_id}`, { height: 1100 });
  await shoot('nodes.png', '#/nodes', {}, admin);
  await shoot('sign-in.png', '', {}, null);
  await shoot('deployments-phone-dark.png', '#/', { width: 390, height: 844, colorScheme: 'dark' });
} finally {
  steady.kill('SIGTERM');
  await steady.exited();
  fs.rmSync(dataDir, { recursive: true, force: true });
}
