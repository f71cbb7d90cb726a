import type { DeploymentListItem, Rollout } from '../../client/types.js';

/** The API's answers, as the typed client names them (inferred from the server's zod schemas). */
export type { DeploymentState, NodeOverview, Revision } from '../../client/types.js';

/** A list row; `rollout` where the server reports it. */
export type DeploymentRow = DeploymentListItem & { readonly rollout?: Rollout | null };
