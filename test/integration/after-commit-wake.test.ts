import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { AfterCommitWake } from '../../src/db/after-commit-wake.js';
import { reportReplicaStatus } from '../../src/db/queries/replicas.js';
import { describeBackends } from '../support/databases.js';
import { insertDeployment, insertNode } from '../support/fixtures.js';
import { PATIENCE_MS } from '../support/patience.js';

const WAIT = { timeout: PATIENCE_MS, interval: 5 };

describeBackends('notifications after the commit', (t) => {
  /** Listens on both channels; `heardBefore(marker)` sends a marker and returns what arrived before it (delivery is in commit order). */
  const listen = async () => {
    const heard: string[] = [];
    const listener = await t().database.listen(['steady_deployment', 'steady_events'], {
      onNotification: (n) => heard.push(`${n.channel}:${n.payload}`),
    });
    const heardBefore = async (marker: string): Promise<string[]> => {
      await sql`SELECT pg_notify('steady_events', ${marker})`.execute(t().database.db);
      await expect.poll(() => heard.includes(`steady_events:${marker}`), WAIT).toBe(true);
      return heard.splice(0, heard.indexOf(`steady_events:${marker}`) + 1).slice(0, -1);
    };
    return { heardBefore, close: () => listener.close() };
  };

  it("an agent's report wakes the controller and the event readers once, after its commit, never from inside it", async () => {
    const db = t().database.db;
    const node = await insertNode(db, { name: 'wake-node' });
    const deployment = await insertDeployment(db, { target: 1 });
    const { rows: [replica] } = await sql<{ id: string }>`
      INSERT INTO deployment_replicas (deployment_id, node_id, status, revision) VALUES (${deployment}, ${node}, 'pending', 1) RETURNING id`.execute(db);
    const errors: unknown[] = [];
    const wake = new AfterCommitWake(db, (err) => errors.push(err));
    const { heardBefore, close } = await listen();
    try {
      await heardBefore('start');
      const report = (status: 'starting' | 'running') =>
        reportReplicaStatus(db, { replicaId: replica!.id, nodeName: 'wake-node', status, containerId: null, reason: null }, wake);
      expect((await report('starting')).changed).toBe(true);
      await wake.settled();
      expect(await heardBefore('one')).toEqual([`steady_deployment:${deployment}`, 'steady_events:']);

      // Of two reports of the same change, only the one that changed something notifies.
      expect((await Promise.all([report('running'), report('running')])).map((r) => r.changed).sort()).toEqual([false, true]);
      await wake.settled();
      expect(await heardBefore('two')).toEqual([`steady_deployment:${deployment}`, 'steady_events:']);
      expect((await report('running')).changed).toBe(false);
      await wake.settled();
      expect(await heardBefore('three')).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await close();
    }
  });

  it('gathers the deployments asked for before a notification goes into it, and sends `*` when they do not fit', async () => {
    const { heardBefore, close } = await listen();
    const wake = new AfterCommitWake(t().database.db, (err) => {
      throw err;
    });
    try {
      const ids = Array.from({ length: 300 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
      wake.deployments(ids.slice(0, 2));
      wake.deployments(ids.slice(2, 3));
      await wake.settled();
      expect(await heardBefore('small')).toEqual([`steady_deployment:${ids.slice(0, 3).join(',')}`, 'steady_events:']);
      // 300 ids are over 10,000 characters: the controller is told to resync instead.
      wake.deployments(ids);
      await wake.settled();
      expect(await heardBefore('large')).toEqual(['steady_deployment:*', 'steady_events:']);
    } finally {
      await close();
    }
  });
});
