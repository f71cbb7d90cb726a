import type { z } from 'zod';
import type { DeploymentListSchema, DeploymentStatusSchema, NodeListSchema } from '../../api/schemas.js';

/** The API's answers, typed from the same zod schemas that validate them (type-only: nothing of zod ships). */

/** What a rollout adds (DESIGN.md §3); optional until every server has it. */
export interface RolloutInfo {
  readonly state: 'progressing' | 'complete' | 'paused' | 'failed';
  readonly revision: number;
  readonly updated_replicas: number;
  readonly available_replicas: number;
  readonly reason: string | null;
}

interface RolloutFields {
  readonly revision?: number;
  readonly reason?: string | null;
  readonly rollout?: RolloutInfo | null;
}

type StatusBody = z.infer<typeof DeploymentStatusSchema>;
export type Replica = StatusBody['replicas'][number] & { readonly revision?: number; readonly reason?: string | null };
export type DeploymentStatus = Omit<StatusBody, 'replicas'> & RolloutFields & { readonly replicas: readonly Replica[] };
export type DeploymentListPage = z.infer<typeof DeploymentListSchema>;
export type DeploymentListItem = DeploymentListPage['items'][number] & RolloutFields;
export type NodeOverview = z.infer<typeof NodeListSchema>['items'][number];

export interface Revision {
  readonly revision: number;
  readonly container_image: string;
  readonly resources: DeploymentStatus['resources'];
  readonly created_at: string;
  readonly active_replicas: number;
}
