import { z } from '@hono/zod-openapi';
import { NODE_STATUSES, REPLICA_STATUSES } from '../domain/types.js';
import {
  DEPLOYMENT_LIMITS as D,
  NODE_LIMITS as N,
  REPLICA_REPORT_LIMITS as R,
  STRATEGY_LIMITS as S,
  TEMPLATE_LIMITS as T,
} from '../domain/validation.js';

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

/** The resources named change, the others keep (no default here: a missing field is no change). */
const ResourcesPatch = z
  .strictObject({
    cpu_cores: z.number().min(D.cpuCores.min).max(D.cpuCores.max).optional(),
    memory_mb: intIn(D.memoryMb).optional(),
    gpu_units: intIn(D.gpuUnits).optional(),
    storage_gb: intIn(D.storageGb).optional(),
  })
  .openapi('ResourcesPatch');

export const TargetReplicas = intIn(D.targetReplicas).openapi({ example: 3 });

// TextEncoder, not Buffer: the dashboard's types come from this module too.
const encoder = new TextEncoder();
const utf8Bytes = (text: string): number => encoder.encode(text).length;
// PostgreSQL stores no NUL character in text or jsonb: refuse it here, not as a 500 there.
const NO_NUL = /^[^\u0000]*$/;

const ContainerImage = z
  .string()
  .min(D.containerImage.min)
  .max(D.containerImage.max)
  .regex(D.containerImage.pattern, 'no whitespace or control characters')
  .openapi({ example: 'nginx:1.27' });

const Command = z
  .array(
    z
      .string()
      .regex(NO_NUL, 'no NUL characters')
      .refine((arg) => utf8Bytes(arg) <= T.command.maxBytes, `each argument at most ${T.command.maxBytes} bytes`),
  )
  .max(T.command.maxItems)
  .nullable()
  .openapi({ description: "Overrides the image's command; null (or []) keeps the image's", example: ['nginx', '-g', 'daemon off;'] });

const Env = z
  .record(
    z.string().max(T.env.nameMax).regex(T.env.namePattern, 'names: a letter or "_", then letters, digits or "_"'),
    z
      .string()
      .regex(NO_NUL, 'no NUL characters')
      .refine((value) => utf8Bytes(value) <= T.env.valueMaxBytes, `each value at most ${T.env.valueMaxBytes} bytes`),
  )
  .refine((env) => Object.keys(env).length <= T.env.maxEntries, `at most ${T.env.maxEntries} variables`)
  .nullable()
  .openapi({ description: 'Environment variables; values are never logged', example: { LOG_LEVEL: 'info' } });

const SurgeOrUnavailable = z.union([
  intIn(S.count),
  z.string().regex(S.percent, 'an integer from 0 to 100, or a percentage from "0%" to "100%"'),
]);

/** Every field optional: a PATCH changes the fields it names; create fills the rest with the defaults. */
export const StrategyIn = z
  .strictObject({
    type: z.enum(['rolling', 'recreate']).optional(),
    max_surge: SurgeOrUnavailable.optional(),
    max_unavailable: SurgeOrUnavailable.optional(),
    min_ready_seconds: intIn(S.minReadySeconds).optional(),
    progress_deadline_seconds: intIn(S.progressDeadlineSeconds).optional(),
    auto_rollback: z.boolean().optional(),
  })
  .openapi('StrategyInput');

export const StrategySchema = z
  .object({
    type: z.enum(['rolling', 'recreate']),
    max_surge: z.union([z.number().int(), z.string()]),
    max_unavailable: z.union([z.number().int(), z.string()]),
    min_ready_seconds: z.number().int(),
    progress_deadline_seconds: z.number().int(),
    auto_rollback: z.boolean(),
  })
  .openapi('Strategy');

export const CreateDeploymentBody = z
  .strictObject({
    name: DeploymentName,
    container_image: ContainerImage,
    target_replicas: TargetReplicas,
    resources: ResourcesIn,
    command: Command.optional(),
    env: Env.optional(),
    strategy: StrategyIn.optional(),
  })
  .openapi('CreateDeployment');

export const PatchDeploymentBody = z
  .strictObject({
    container_image: ContainerImage.optional(),
    resources: ResourcesPatch.optional(),
    command: Command.optional(),
    env: Env.optional(),
    target_replicas: TargetReplicas.optional(),
    strategy: StrategyIn.optional(),
  })
  .refine((body) => Object.keys(body).length > 0, 'name at least one field to change')
  .openapi('PatchDeployment');

export const RollbackBody = z
  .strictObject({ revision: z.number().int().min(1).optional().openapi({ description: 'default: the revision before the current one' }) })
  .openapi('RollbackDeployment');

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
    .min(D.name.min)
    .max(D.name.max)
    .regex(D.name.pattern, 'letters, digits, "-" and "_" only')
    .optional()
    .openapi({ param: { name: 'name', in: 'query' }, description: 'only the live deployment with this name (names are unique per user)' }),
});

const Health = z.enum(['healthy', 'degraded', 'unhealthy']);
const DeploymentStatusEnum = z.enum(['pending', 'scheduled', 'running', 'stopped', 'failed', 'deleted']);
const ReplicaStatusEnum = z.enum(REPLICA_STATUSES);

export const Resources = z
  .object({ cpu_cores: z.number(), memory_mb: z.number().int(), gpu_units: z.number().int(), storage_gb: z.number().int() })
  .openapi('Resources');

export const RolloutSchema = z
  .object({
    state: z.enum(['progressing', 'complete', 'paused', 'failed']),
    revision: z.number().int().openapi({ description: 'the desired revision' }),
    updated_replicas: z.number().int().openapi({ description: 'active replicas running the desired template' }),
    available_replicas: z.number().int().openapi({ description: 'of those, running for at least min_ready_seconds' }),
    reason: z.string().nullable(),
  })
  .openapi('Rollout');

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
        revision: z.number().int(),
        reason: z.string().nullable(),
      }),
    ),
    resources: Resources,
    recent_status_changes: z.array(
      z.object({ old_status: z.string(), new_status: z.string(), changed_at: timestamp, reason: z.string().nullable() }),
    ),
    created_at: timestamp,
    updated_at: timestamp,
    revision: z.number().int().openapi({ description: 'the desired revision' }),
    generation: z.number().int().openapi({ description: 'bumped by every change of the spec (target, template, stop/start/delete, pause)' }),
    observed_generation: z
      .number()
      .int()
      .openapi({ description: 'the generation the controller has acted on; while lower than generation, the rest describes the deployment before the change' }),
    reason: z.string().nullable().openapi({ description: 'why the deployment is where it is, e.g. Unschedulable: …' }),
    rollout: RolloutSchema,
    command: z.array(z.string()).nullable(),
    env: z.record(z.string(), z.string()).nullable(),
    strategy: StrategySchema,
  })
  .openapi('DeploymentStatus');

export const RevisionListSchema = z
  .object({
    items: z.array(
      z.object({
        revision: z.number().int(),
        container_image: z.string(),
        resources: Resources,
        command: z.array(z.string()).nullable(),
        env: z.record(z.string(), z.string()).nullable(),
        created_at: timestamp,
        active_replicas: z.number().int(),
      }),
    ),
  })
  .openapi('RevisionList');

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
        revision: z.number().int().openapi({ description: 'the desired revision' }),
        rollout: RolloutSchema,
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

export const NodeRegistrationSchema = z
  .object({
    ...nodeFields,
    evicted_replicas: z
      .array(
        z.object({
          replica_id: uuid,
          deployment_id: uuid,
          status: z.enum(['failed', 'stopped']),
          reason: z.string().openapi({ example: 'NodeCapacityReduced' }),
        }),
      )
      .openapi({
        description:
          'Replicas the node gave up because it re-registered with less capacity than they hold (the fewest that make the rest fit); the controller replaces them elsewhere. Empty when everything still fits.',
      }),
  })
  .openapi('NodeRegistration');

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
        revision: z.number().int(),
        container_image: z.string(),
        resources: Resources,
        command: z.array(z.string()).nullable(),
        env: z.record(z.string(), z.string()).nullable(),
        desired: z.enum(['run', 'stop']),
      }),
    ),
  })
  .openapi('Heartbeat');

export const ReplicaReportBody = z
  .strictObject({
    status: ReplicaStatusEnum,
    container_id: z.string().min(R.containerId.min).max(R.containerId.max).regex(R.containerId.pattern).optional(),
    reason: z.string().max(R.reason.max).regex(NO_NUL, 'no NUL characters').optional(),
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
