import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from '../../context.js';
import { AfterCommitWake } from '../../db/after-commit-wake.js';
import { deleteNode, listNodeOverviews, recordHeartbeat, registerNode, setNodeStatus } from '../../db/queries/nodes.js';
import { reportReplicaStatus } from '../../db/queries/replicas.js';
import { ConflictError, ForbiddenError, NotFoundError } from '../../domain/errors.js';
import { requireRole, type ApiEnv } from '../auth.js';
import { notFoundOnBadId } from '../errors.js';
import { BEARER, errorResponses, jsonBody, jsonContent } from '../openapi.js';
import {
  HeartbeatSchema,
  NodeListSchema,
  NodeRegistrationSchema,
  NodeSchema,
  PatchNodeBody,
  RegisterNodeBody,
  ReplicaReportBody,
  ReplicaSchema,
  idParam,
} from '../schemas.js';
import { assignmentJson, nodeJson, nodeOverviewJson, registrationJson, replicaJson } from '../views.js';

const tags = ['nodes'];

const register = createRoute({
  method: 'post',
  path: '/api/nodes',
  tags,
  security: BEARER,
  summary: 'Register a node, or update it (idempotent by name); a node token only for its own name',
  middleware: [requireRole('admin', 'node')] as const,
  request: { body: jsonBody(RegisterNodeBody) },
  responses: {
    201: jsonContent(NodeRegistrationSchema, 'The node, and the replicas it gave up because they no longer fit its capacity'),
    ...errorResponses(400, 401, 403, 413, 415, 422),
  },
});

const heartbeat = createRoute({
  method: 'post',
  path: '/api/nodes/{id}/heartbeat',
  tags,
  security: BEARER,
  summary: "A node agent's heartbeat; answers what the node must run and stop",
  middleware: [requireRole('node')] as const,
  request: { params: idParam('node') },
  responses: { 200: jsonContent(HeartbeatSchema, 'The assignments'), ...errorResponses(401, 403, 404) },
});

const list = createRoute({
  method: 'get',
  path: '/api/nodes',
  tags,
  security: BEARER,
  summary: 'Every node with capacity, allocation and replica counts',
  middleware: [requireRole('admin')] as const,
  responses: { 200: jsonContent(NodeListSchema, 'The nodes'), ...errorResponses(401, 403) },
});

const patch = createRoute({
  method: 'patch',
  path: '/api/nodes/{id}',
  tags,
  security: BEARER,
  summary: 'Cordon, drain or uncordon a node',
  middleware: [requireRole('admin')] as const,
  request: { params: idParam('node'), body: jsonBody(PatchNodeBody) },
  responses: { 200: jsonContent(NodeSchema, 'The node'), ...errorResponses(400, 401, 403, 404, 413, 415, 422) },
});

const remove = createRoute({
  method: 'delete',
  path: '/api/nodes/{id}',
  tags,
  security: BEARER,
  summary: 'Remove a node that holds no replica (drain it first)',
  middleware: [requireRole('admin')] as const,
  request: { params: idParam('node') },
  responses: { 204: { description: 'Deleted' }, ...errorResponses(401, 403, 404, 409) },
});

const report = createRoute({
  method: 'post',
  path: '/api/replicas/{id}/status',
  tags: ['replicas'],
  security: BEARER,
  summary: "A node agent reports a replica's status (legal transitions only)",
  middleware: [requireRole('node')] as const,
  request: { params: idParam('replica'), body: jsonBody(ReplicaReportBody) },
  responses: { 200: jsonContent(ReplicaSchema, 'The replica'), ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422) },
});

export function registerNodeRoutes(app: OpenAPIHono<ApiEnv>, ctx: Context): void {
  const db = ctx.database.db;
  const wake = new AfterCommitWake(db, (err) =>
    ctx.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not notify after a replica report; the controller resync will see it'),
  );

  app.openapi(
    register,
    async (c) => {
      const body = c.req.valid('json');
      const principal = c.get('principal');
      if (!principal.roles.has('admin') && principal.subject !== body.name) {
        throw new ForbiddenError('a node token may only register its own node');
      }
      const registered = await registerNode(db, {
        name: body.name,
        capacity: { cpuCores: body.cpu_cores, memoryMb: body.memory_mb, gpuUnits: body.gpu_units, storageGb: body.storage_gb },
        labels: body.labels ?? null,
      });
      return c.json(registrationJson(registered), 201);
    },
    notFoundOnBadId('node'),
  );

  app.openapi(
    heartbeat,
    async (c) => {
      const assignments = await recordHeartbeat(db, c.req.valid('param').id, c.get('principal').subject);
      // Another node's id is indistinguishable from an unknown one.
      if (assignments === null) throw new NotFoundError('node');
      return c.json({ replicas: assignments.map(assignmentJson) }, 200);
    },
    notFoundOnBadId('node'),
  );

  app.openapi(list, async (c) => c.json({ items: (await listNodeOverviews(db)).map(nodeOverviewJson) }, 200), notFoundOnBadId('node'));

  app.openapi(
    patch,
    async (c) => {
      const node = await setNodeStatus(db, c.req.valid('param').id, c.req.valid('json').status);
      if (!node) throw new NotFoundError('node');
      return c.json(nodeJson(node), 200);
    },
    notFoundOnBadId('node'),
  );

  app.openapi(
    remove,
    async (c) => {
      const result = await deleteNode(db, c.req.valid('param').id);
      if (result.outcome === 'not_found') throw new NotFoundError('node');
      if (result.outcome === 'busy') {
        throw new ConflictError(`node still holds ${result.replicas} replica${result.replicas === 1 ? '' : 's'} (pending, starting, running or stopping); drain it first`);
      }
      return c.body(null, 204);
    },
    notFoundOnBadId('node'),
  );

  app.openapi(
    report,
    async (c) => {
      const body = c.req.valid('json');
      const result = await reportReplicaStatus(
        db,
        {
          replicaId: c.req.valid('param').id,
          nodeName: c.get('principal').subject,
          status: body.status,
          containerId: body.container_id ?? null,
          reason: body.reason ?? null,
        },
        wake,
      );
      return c.json(replicaJson(result.replica), 200);
    },
    notFoundOnBadId('replica'),
  );
}
