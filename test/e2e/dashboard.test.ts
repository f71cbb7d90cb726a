import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../../src/api/tokens.js';
import { chromiumMissing, openBrowser, type BrowserSession } from '../support/browser.js';
import { TEST_JWT_SECRET } from '../support/context.js';
import { createTestDatabase, type TestDatabase } from '../support/databases.js';
import { startSteady, type SteadyProcess } from '../support/processes.js';
import { startTcpProxy } from '../support/tcp-proxy.js';

/**
 * The dashboard in a real headless Chromium against `steady dev` (on the test PostgreSQL, which
 * starts far faster than a fresh embedded database on a busy machine; simulated nodes), signed in
 * through the link that `steady dev` prints.
 */

if (chromiumMissing) console.warn(chromiumMissing);

const WAIT = { timeout: 30_000, interval: 200 };
// A busy machine runs Chromium, steady and PostgreSQL on the same cores.
const SLOW = 120_000;

describe.skipIf(chromiumMissing !== null)('the dashboard in Chromium', () => {
  let steady: SteadyProcess;
  let origin: string;
  let link: string;
  let demoToken: string;
  let bobToken: string;
  let adminToken: string;
  let browser: BrowserSession | null = null;
  let testDb: TestDatabase;

  const api = async <T>(token: string, method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${origin}${route}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  const deploy = async (token: string, name: string, replicas = 2) => {
    const res = await api<{ deployment_id: string }>(token, 'POST', '/api/deployment/deploy', {
      name,
      container_image: 'nginx:1.27',
      target_replicas: replicas,
      resources: { cpu_cores: 0.5, memory_mb: 512, storage_gb: 1 },
    });
    expect(res.status).toBe(201);
    return res.body.deployment_id;
  };
  const statusOf = async (id: string) =>
    (await api<{ target_replicas: number; status: string; container_image: string; revision: number }>(demoToken, 'GET', `/api/deployment/status/${id}`)).body;

  /** Opens the printed link in a fresh browser and waits for the signed-in page. */
  const signIn = async (options: Parameters<typeof openBrowser>[0] = {}) => {
    browser = await openBrowser(options);
    await browser.page.goto(link);
    await browser.page.getByRole('heading', { name: 'Deployments' }).waitFor();
    return browser;
  };

  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'steady-dashboard-'));
    testDb = await createTestDatabase('postgres');
    steady = startSteady(['dev', '--nodes', '3', '--start-delay', '100'], {
      DATABASE_URL: testDb.url!,
      JWT_SECRET: TEST_JWT_SECRET,
      STEADY_DATA_DIR: dir,
      XDG_CONFIG_HOME: dir,
      PORT: '0',
      STEADY_RESYNC_PERIOD: '2s',
    });
    [, link] = (await steady.waitFor(/dashboard\s+(http:\/\/\S+#token=\S+)/, 120_000)) as [string, string];
    origin = new URL(link).origin;
    demoToken = decodeURIComponent(link.split('#token=')[1]!);
    bobToken = await signToken(TEST_JWT_SECRET, { sub: 'bob', ttlSec: 3600 });
    adminToken = await signToken(TEST_JWT_SECRET, { sub: 'root', roles: ['admin'], ttlSec: 3600 });
  }, 180_000);

  afterAll(async () => {
    steady?.kill('SIGTERM');
    await steady?.exited();
    await testDb?.destroy();
  });

  afterEach(async () => {
    const session = browser;
    browser = null;
    if (!session) return;
    await session.close();
    // Nothing the page loads comes from anywhere but steady itself.
    expect(session.requests.filter((url) => new URL(url).origin !== origin)).toEqual([]);
  });

  it('signs in through the printed link, takes the token out of the address bar, and lists only the user\'s deployments', async () => {
    await deploy(demoToken, 'web');
    await deploy(demoToken, 'worker');
    await deploy(bobToken, 'bobs-secret');
    const { page, errors } = await signIn();
    await expect.poll(() => page.locator('tr[data-deployment]').count(), WAIT).toBeGreaterThanOrEqual(2);
    expect(page.url()).not.toContain('token');
    expect(await page.evaluate<string | null>("sessionStorage.getItem('steady.token')")).toBe(demoToken);
    const names = await page.locator('tr[data-deployment]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-deployment')));
    expect(names).toContain('web');
    expect(names).toContain('worker');
    expect(names).not.toContain('bobs-secret');
    await expect.poll(() => page.locator('tr[data-deployment="web"] .running').textContent(), WAIT).toBe('2/2');
    expect(await page.locator('tr[data-deployment="web"] .image').textContent()).toBe('nginx:1.27');

    await page.getByLabel('Filter by name').fill('work');
    await expect.poll(() => page.locator('tr[data-deployment]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-deployment'))), WAIT).toEqual(['worker']);
    expect(errors).toEqual([]);
  }, SLOW);

  it('shows a deployment created through the API without a reload, and polls nothing', async () => {
    const { page, errors, requests } = await signIn();
    await page.evaluate('window.notReloaded = true');
    await deploy(demoToken, 'arrives-live', 2);
    await expect.poll(() => page.locator('tr[data-deployment="arrives-live"]').count(), WAIT).toBe(1);
    await expect.poll(() => page.locator('tr[data-deployment="arrives-live"] .running').textContent(), WAIT).toBe('2/2');
    expect(await page.evaluate('window.notReloaded')).toBe(true);

    // Once nothing changes, nothing is asked for: the list is read again only when an event says so.
    const listReads = () => requests.filter((url) => url.includes('/api/deployment/list')).length;
    let settled = -1;
    await expect.poll(async () => {
      const before = listReads();
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      return (settled = listReads()) === before;
    }, { timeout: 60_000, interval: 0 }).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    expect(listReads()).toBe(settled);
    expect(errors).toEqual([]);
  }, SLOW);

  it('shows a banner while the event stream is down, then resumes after the last event it saw', async () => {
    // The browser reaches steady through a proxy that the test can cut, as a network or a restart would.
    const proxy = await startTcpProxy(Number(new URL(origin).port));
    try {
      const proxied = `http://127.0.0.1:${proxy.port}`;
      const session = (browser = await openBrowser());
      const { page, errors } = session;
      const streams: (string | undefined)[] = [];
      page.on('request', (r) => {
        if (r.url().includes('/api/events')) streams.push(r.headers()['last-event-id']);
      });
      await page.goto(`${proxied}/#token=${demoToken}`);
      await deploy(demoToken, 'before-drop', 1);
      await expect.poll(() => page.locator('tr[data-deployment="before-drop"] .running').textContent(), WAIT).toBe('1/1');
      const banner = page.getByRole('status').filter({ hasText: 'Live updates are disconnected' });
      expect(await banner.count()).toBe(0);

      proxy.cut();
      await banner.waitFor();
      await deploy(demoToken, 'during-drop', 1);
      proxy.restore();
      await banner.waitFor({ state: 'hidden', timeout: 60_000 });
      await expect.poll(() => page.locator('tr[data-deployment="during-drop"]').count(), WAIT).toBe(1);
      // The first connection starts live; every later one resumes after the last event seen.
      expect(streams[0]).toBeUndefined();
      expect(streams.length).toBeGreaterThan(1);
      expect(streams.at(-1)).toMatch(/^\S+$/);
      // The browser reports the requests that the cut connection failed, and nothing else.
      for (const e of errors) expect(e).toMatch(/net::ERR_/);
      expect(session.requests.filter((url) => new URL(url).origin !== proxied)).toEqual([]);
      await session.close();
      browser = null;
    } finally {
      await proxy.close();
    }
  }, SLOW);

  it('scales from the page with the keyboard alone, and the server holds the new target', async () => {
    const id = await deploy(demoToken, 'scaled', 1);
    const { page, errors } = await signIn();
    await page.locator('tr[data-deployment="scaled"] a').click();
    await page.getByRole('heading', { name: 'scaled' }).waitFor();
    expect(page.url()).toContain(`#/deployments/${id}`);
    const replicas = page.getByLabel('Replicas');
    await replicas.focus();
    await page.keyboard.press('Control+A');
    await page.keyboard.type('4');
    await page.keyboard.press('Enter');
    await expect.poll(async () => (await statusOf(id)).target_replicas, WAIT).toBe(4);
    await expect.poll(() => page.locator('.facts .running').textContent(), WAIT).toBe('4 running of 4');
    await expect.poll(() => page.locator('table.replicas tbody tr').count(), WAIT).toBe(4);
    // Every replica shows the name of the node it runs on.
    const nodes = await page.locator('table.replicas tbody tr td:nth-child(2)').allTextContents();
    for (const node of nodes) expect(node).toMatch(/^dev-node-\d$/);
    expect(errors).toEqual([]);
  }, SLOW);

  it('sets an image from the page, shows the rollout progress live, and rolls back from the page', async () => {
    // Two seconds to become available: each step of the rollout waits, so its progress can be seen.
    const created = await api<{ deployment_id: string }>(demoToken, 'POST', '/api/deployment/deploy', {
      name: 'rolled',
      container_image: 'nginx:1.27',
      target_replicas: 3,
      resources: { cpu_cores: 0.5, memory_mb: 512, storage_gb: 1 },
      strategy: { max_surge: 1, max_unavailable: 0, min_ready_seconds: 2 },
    });
    expect(created.status).toBe(201);
    const id = created.body.deployment_id;
    const rolloutOf = async () => (await api<{ revision: number; rollout: { state: string } }>(demoToken, 'GET', `/api/deployment/status/${id}`)).body;
    await expect.poll(async () => (await rolloutOf()).rollout.state, { ...WAIT, timeout: SLOW }).toBe('complete');

    const { page, errors } = await signIn();
    await expect.poll(() => page.locator('tr[data-deployment="rolled"] .rollout').textContent(), WAIT).toBe('3/3 of 3');
    await page.locator('tr[data-deployment="rolled"] a').click();
    await page.getByRole('heading', { name: 'rolled' }).waitFor();
    await page.getByLabel('Image').fill('nginx:1.28');
    await page.getByRole('button', { name: 'Set image' }).click();

    // The Rollout line as it changes, read until the new revision completes.
    const seen: string[] = [];
    const rollout = page.locator('.facts .rollout');
    await expect.poll(async () => {
      const text = (await rollout.textContent()) ?? '';
      if (seen.at(-1) !== text) seen.push(text);
      return text;
    }, { timeout: SLOW, interval: 100 }).toMatch(/^complete revision 2: 3\/3 of 3/);
    expect(seen.some((t) => /^progressing revision 2: [0-3]\/[0-2] of 3/.test(t))).toBe(true);
    expect(await page.locator('.facts .image').textContent()).toBe('nginx:1.28');
    const running = async () =>
      page.locator('table.replicas tbody tr').evaluateAll((rows) =>
        rows.map((r) => [r.querySelector('.badge')?.textContent, r.querySelector('.revision')?.textContent]).filter(([s]) => s === 'running').map(([, rev]) => rev),
      );
    await expect.poll(running, WAIT).toEqual(['2', '2', '2']);

    // Roll back to revision 1 from its row: a new revision (3) with its template.
    await page.locator('table.revisions tr[data-revision="1"]').getByRole('button', { name: 'Roll back to 1' }).click();
    await page.getByRole('dialog', { name: 'Roll back to 1' }).getByRole('button', { name: 'Roll back' }).click();
    await expect.poll(async () => (await statusOf(id)).revision, WAIT).toBe(3);
    expect((await statusOf(id)).container_image).toBe('nginx:1.27');
    await expect.poll(() => page.locator('.facts .image').textContent(), WAIT).toBe('nginx:1.27');
    await expect.poll(() => rollout.textContent(), { ...WAIT, timeout: SLOW }).toMatch(/^complete revision 3: 3\/3 of 3/);
    await expect.poll(running, WAIT).toEqual(['3', '3', '3']);
    await expect.poll(() => page.locator('table.revisions tbody tr').count(), WAIT).toBe(3);
    expect(await page.locator('table.revisions tr[data-revision="3"]').textContent()).toContain('current');
    expect(errors).toEqual([]);
  }, SLOW * 2);

  it('asks before stopping and deleting: Escape changes nothing, confirming does', async () => {
    const id = await deploy(demoToken, 'doomed', 1);
    const { page, errors } = await signIn();
    await page.goto(`${origin}/#/deployments/${id}`);
    await page.getByRole('heading', { name: 'doomed' }).waitFor();
    await page.getByRole('button', { name: 'Stop' }).click();
    const dialog = page.getByRole('dialog', { name: 'Stop' });
    await dialog.waitFor();
    // The safe choice has the focus.
    expect(await page.evaluate<string | null>('document.activeElement?.textContent')).toBe('Cancel');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    expect((await statusOf(id)).status).not.toBe('stopped');

    await page.getByRole('button', { name: 'Stop' }).click();
    await dialog.getByRole('button', { name: 'Stop' }).click();
    await expect.poll(async () => (await statusOf(id)).status, WAIT).toBe('stopped');
    await page.getByRole('button', { name: 'Start' }).waitFor();

    await page.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog', { name: 'Delete' }).getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('heading', { name: 'Deployments' }).waitFor();
    expect((await api(demoToken, 'GET', `/api/deployment/status/${id}`)).status).toBe(404);
    await expect.poll(() => page.locator('tr[data-deployment="doomed"]').count(), WAIT).toBe(0);
    expect(errors).toEqual([]);
  }, SLOW);

  it('shows nodes to an admin who pasted a token, with allocation bars, and cordons one', async () => {
    const { page, errors } = (browser = await openBrowser());
    await page.goto(origin);
    await page.getByLabel('Token').fill(adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Nodes' }).click();
    await expect.poll(() => page.locator('li[data-node]').count(), WAIT).toBe(3);
    const bar = page.locator('li[data-node="dev-node-1"] [role="meter"][aria-label="CPU"]');
    expect(await bar.getAttribute('aria-valuemax')).toBe('4');
    await page.locator('li[data-node="dev-node-1"]').getByRole('button', { name: 'Cordon' }).click();
    const nodeStatus = async () => {
      const nodes = await api<{ items: { name: string; status: string }[] }>(adminToken, 'GET', '/api/nodes');
      return nodes.body.items.find((n) => n.name === 'dev-node-1')?.status;
    };
    await expect.poll(nodeStatus, WAIT).toBe('cordoned');
    await page.locator('li[data-node="dev-node-1"]').getByRole('button', { name: 'Uncordon' }).click();
    await expect.poll(nodeStatus, WAIT).toBe('ready');
    expect(errors).toEqual([]);
  }, SLOW);

  it('follows node events: a node cordoned from elsewhere changes on the page without a reload', async () => {
    const { page, errors } = (browser = await openBrowser());
    await page.goto(`${origin}/#token=${adminToken}`);
    await page.getByRole('link', { name: 'Nodes' }).click();
    const badge = page.locator('li[data-node="dev-node-2"] .node-head .badge');
    await expect.poll(() => badge.textContent(), WAIT).toBe('ready');
    await page.evaluate('window.notReloaded = true');
    const nodes = await api<{ items: { node_id: string; name: string }[] }>(adminToken, 'GET', '/api/nodes');
    const node = nodes.body.items.find((n) => n.name === 'dev-node-2')!;
    expect((await api(adminToken, 'PATCH', `/api/nodes/${node.node_id}`, { status: 'cordoned' })).status).toBe(200);
    await expect.poll(() => badge.textContent(), WAIT).toBe('cordoned');
    expect((await api(adminToken, 'PATCH', `/api/nodes/${node.node_id}`, { status: 'ready' })).status).toBe(200);
    await expect.poll(() => badge.textContent(), WAIT).toBe('ready');
    expect(await page.evaluate('window.notReloaded')).toBe(true);
    expect(errors).toEqual([]);
  }, SLOW);

  it('removes a node that holds nothing, after asking; a node with replicas offers no Remove', async () => {
    const nodeToken = await signToken(TEST_JWT_SECRET, { sub: 'spare', roles: ['node'], ttlSec: 3600 });
    const registered = await api<{ node_id: string }>(nodeToken, 'POST', '/api/nodes', { name: 'spare', cpu_cores: 1, memory_mb: 1024, gpu_units: 0, storage_gb: 10 });
    expect(registered.status).toBe(201);
    // Cordoned at once, so that nothing is placed on it meanwhile.
    expect((await api(adminToken, 'PATCH', `/api/nodes/${registered.body.node_id}`, { status: 'cordoned' })).status).toBe(200);
    const { page, errors } = (browser = await openBrowser());
    await page.goto(`${origin}/#token=${adminToken}`);
    await page.getByRole('link', { name: 'Nodes' }).click();
    const spare = page.locator('li[data-node="spare"]');
    await spare.waitFor();
    // A node that runs something (every deployment of the tests before is on the dev nodes) has no Remove.
    const busy = (await api<{ items: { name: string; replica_counts: Record<string, number> }[] }>(adminToken, 'GET', '/api/nodes')).body.items.find(
      (n) => (n.replica_counts.running ?? 0) > 0,
    );
    expect(busy).toBeDefined();
    expect(await page.locator(`li[data-node="${busy!.name}"]`).getByRole('button', { name: 'Remove' }).count()).toBe(0);
    await spare.getByRole('button', { name: 'Remove' }).click();
    await page.keyboard.press('Escape');
    expect((await api<{ items: { name: string }[] }>(adminToken, 'GET', '/api/nodes')).body.items.some((n) => n.name === 'spare')).toBe(true);
    await spare.getByRole('button', { name: 'Remove' }).click();
    await page.getByRole('dialog', { name: 'Remove' }).getByRole('button', { name: 'Remove' }).click();
    await expect.poll(() => spare.count(), WAIT).toBe(0);
    expect((await api<{ items: { name: string }[] }>(adminToken, 'GET', '/api/nodes')).body.items.some((n) => n.name === 'spare')).toBe(false);
    expect(errors).toEqual([]);
  }, SLOW);

  it('sends a refused token back to sign-in', async () => {
    const { page, errors } = (browser = await openBrowser());
    const expired = await signToken(TEST_JWT_SECRET, { sub: 'demo', ttlSec: -3600 });
    await page.goto(`${origin}/#token=${expired}`);
    await page.getByRole('heading', { name: 'Sign in to steady' }).waitFor();
    await page.getByText('steady refused the token').waitFor();
    expect(await page.evaluate<string | null>("sessionStorage.getItem('steady.token')")).toBeNull();
    // The only errors are the browser's own reports of the refused requests.
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) expect(e).toMatch(/status of 401/);
  }, SLOW);

  it('fits a phone screen and follows the system\'s dark setting', async () => {
    const { page, errors } = await signIn({ width: 390, height: 844, colorScheme: 'dark' });
    await expect.poll(() => page.locator('tr[data-deployment]').count(), WAIT).toBeGreaterThan(0);
    expect(await page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
    const background = await page.evaluate<string>('getComputedStyle(document.body).backgroundColor');
    const [r, g, b] = background.match(/\d+/g)!.map(Number);
    expect(r! + g! + b!).toBeLessThan(150);
    expect(errors).toEqual([]);
  }, SLOW);
});
