import { DEFAULT_STRATEGY } from '../../src/domain/strategy.js';
import type { Deployment, Replica, Resources } from '../../src/domain/types.js';

/** The revision fields of a deployment that has never been updated: revision 1, its rollout complete, observed. */
export const firstRevision = {
  revision: 1,
  templateRevision: 1,
  strategy: DEFAULT_STRATEGY,
  paused: false,
  rollout: { state: 'complete', reason: null, progressAt: null, bestAvailable: 0, leastOld: null, failures: 0 },
  stableRevision: 1,
  stableTemplateRevision: 1,
  generation: 1,
  observedGeneration: 1,
} as const satisfies Partial<Deployment>;

/** The revision fields of a replica of revision 1, holding `resources`. */
export const ofFirstRevision = (resources: Resources) =>
  ({ revision: 1, templateRevision: 1, resources, startedAt: null }) as const satisfies Partial<Replica>;
