import { z } from '@hono/zod-openapi';
import { NODE_STATUSES, REPLICA_STATUSES } from '../domain/types.js';
import { DEPLOYMENT_LIMITS as D, NODE_LIMITS as N, REPLICA_REPORT_LIMITS as R } from '../domain/validation.js';

/**
 * The request and response schemas: the same objects validate requests and generate /openapi.json.
 * Request objects are strict (unknown fields are a 422), ranges are the seed's.
 */

const intIn = (r: { min: number; max: number }) => z.number().int().min(r.min).max(r.max);
const timestamp = z.string().openapi({ format: 'date-time', example: '2025-01-01T12:00:00.000Z' });
const nullableTimestamp = timestamp.nullable();
const uuid = z.string().openapi({ format: 'uuid' });

export const idParam = (what: string) =>
  z.strictObject({
    id: z.uuid().openapi({ param: { name: 'id', in: 'path' }, description: `The ${what}'s id`, format: 'uuid' }),
  });

// ---------- deployments

export const DeploymentName = z
  .string()
  .min(D.name.min)
  .max(D.name.max)
  .regex(D.name.pattern, 'letters, digits, "-" and "_" only')
  .openapi({ example: 'web' });

const ResourcesIn = z
  .strictObject({
    cpu_cores: z.number().min(D.cpuCores.min).max(D.cpuCores.max).openapi({ example: 2 }),
    memory_mb: intIn(D.memoryMb).openapi({ example: 4096 }),
    gpu_units: intIn(D.gpuUnits).default(0).openapi({ example: 0 }),
    storage_gb: intIn(D.storageGb).openapi({ example: 50 }),
  })
  .openapi('ResourcesInput');

export const TargetReplicas = intIn(D.targetReplicas).openapi({ example: 3 });

export const CreateDeploymentBody = z
  .strictObject({
    name: DeploymentName,
    container_image: z
      .string()
      .min(D.containerImage.min)
      .max(D.containerImage.max)
      .regex(D.containerImage.pattern, 'no whitespace or control characters')
      .openapi({ example: 'nginx:1.27' }),
    target_replicas: TargetReplicas,
    resources: ResourcesIn,
  })
  .openapi('CreateDeployment');

export const ScaleBody = z.strictObject({ target_replicas: TargetReplicas }).openapi('ScaleDeployment');

export const ListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20).openapi({ param: { name: 'limit', in: 'query' }, example: 20 }),
  cursor: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .openapi({ param: { name: 'cursor', in: 'query' }, description: 'next_cursor of the previous page (opaque)' }),
  name: z
    .string()
    .min(1)
    .max(D.name.max)
    .optional()
    .openapi({ param: { name: 'name', in: 'query' }, description: 'only the live deployment with this name (names are unique per user)' }),
});

const Health = z.enum(['healthy', 'degraded', 'unhealthy']);
const DeploymentStatusEnum = z.enum(['pending', 'scheduled', 'running', 'stopped', 'failed', 'deleted']);
const ReplicaStatusEnum = z.enum(REPLICA_STATUSES);

export const Resources = z
  .object({ cpu_cores: z.number(), memory_mb: z.number().int(), gpu_units: z.number().int(), storage_gb: z.number().int() })
  .openapi('Resources');

export const DeploymentStatusSchema = z
  .object({
    deployment_id: uuid,
    name: z.string(),
    status: DeploymentStatusEnum,
    health: Health,
    target_replicas: z.number().int(),
    container_image: z.string().openapi({ description: 'the desired image' }),
    replicas: z.array(
      z.object({
        id: uuid,
        node_id: uuid.nullable(),
        node_name: z.string().nullable().openapi({ description: "the node's name, null while unscheduled" }),
        status: ReplicaStatusEnum,
        container_id: z.string().nullable(),
        started_at: nullableTimestamp,
        stopped_at: nullableTimestamp,
      }),
    ),
    resources: Resources,
    recent_status_changes: z.array(
      z.object({ old_status: z.string(), new_status: z.string(), changed_at: timestamp, reason: z.string().nullable() }),
    ),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .openapi('DeploymentStatus');

export const DeploymentListSchema = z
  .object({
    items: z.array(
      z.object({
        deployment_id: uuid,
        name: z.string(),
        status: DeploymentStatusEnum,
        health: Health,
        container_image: z.string(),
        target_replicas: z.number().int(),
        running_replicas: z.number().int(),
        total_replicas: z.number().int(),
        created_at: timestamp,
      }),
    ),
    next_cursor: z.string().nullable(),
  })
  .openapi('DeploymentList');

// ---------- nodes and replicas

const Labels = z
  .record(
    z.string().regex(N.labels.keyPattern, 'label keys: 1-63 letters, digits, ".", "_", "-", "/"'),
    z.string().max(N.labels.valueMax).regex(N.labels.valuePattern, 'no control characters'),
  )
  .refine((labels) => Object.keys(labels).length <= N.labels.maxEntries, `at most ${N.labels.maxEntries} labels`)
  .openapi({ example: { zone: 'a' } });

export const RegisterNodeBody = z
  .strictObject({
    name: z.string().min(N.name.min).max(N.name.max).regex(N.name.pattern, 'letters, digits, ".", "-" and "_" only').openapi({ example: 'node-1' }),
    cpu_cores: z.number().min(N.cpuCores.min).max(N.cpuCores.max).openapi({ example: 8 }),
    memory_mb: intIn(N.memoryMb).openapi({ example: 16384 }),
    gpu_units: intIn(N.gpuUnits).default(0),
    storage_gb: intIn(N.storageGb).openapi({ example: 500 }),
    labels: Labels.optional(),
  })
  .openapi('RegisterNode');

export const PatchNodeBody = z
  .strictObject({ status: z.enum(['ready', 'cordoned', 'draining']) })
  .openapi('PatchNode');

const nodeFields = {
  node_id: uuid,
  name: z.string(),
  status: z.enum(NODE_STATUSES),
  cpu_cores: z.number(),
  memory_mb: z.number().int(),
  gpu_units: z.number().int(),
  storage_gb: z.number().int(),
  labels: z.record(z.string(), z.string()),
  last_heartbeat_at: nullableTimestamp,
  created_at: timestamp,
  updated_at: timestamp,
};

export const NodeSchema = z.object(nodeFields).openapi('Node');

export const NodeListSchema = z
  .object({
    items: z.array(
      z
        .object({
          ...nodeFields,
          allocated: Resources,
          replica_counts: z.object(Object.fromEntries(REPLICA_STATUSES.map((s) => [s, z.number().int()])) as Record<(typeof REPLICA_STATUSES)[number], z.ZodNumber>),
        })
        .openapi('NodeOverview'),
    ),
  })
  .openapi('NodeList');

export const HeartbeatSchema = z
  .object({
    replicas: z.array(
      z.object({
        replica_id: uuid,
        deployment_id: uuid,
        status: ReplicaStatusEnum.openapi({ description: 'the status the database holds now' }),
        container_image: z.string(),
        resources: Resources,
        desired: z.enum(['run', 'stop']),
      }),
    ),
  })
  .openapi('Heartbeat');

export const ReplicaReportBody = z
  .strictObject({
    status: ReplicaStatusEnum,
    container_id: z.string().min(R.containerId.min).max(R.containerId.max).regex(R.containerId.pattern).optional(),
    reason: z.string().max(R.reason.max).optional(),
  })
  .openapi('ReplicaReport');

export const ReplicaSchema = z
  .object({
    replica_id: uuid,
    deployment_id: uuid,
    node_id: uuid.nullable(),
    status: ReplicaStatusEnum,
    container_id: z.string().nullable(),
    reason: z.string().nullable(),
    started_at: nullableTimestamp,
    stopped_at: nullableTimestamp,
    updated_at: timestamp,
  })
  .openapi('Replica');

// ---------- errors and ops

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'not_found' }),
      message: z.string(),
      details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    }),
  })
  .openapi('Error');

export const HealthzSchema = z.object({ status: z.literal('ok') });
export const ReadyzSchema = z.object({ status: z.enum(['ready', 'unavailable']), reason: z.string().optional() });
