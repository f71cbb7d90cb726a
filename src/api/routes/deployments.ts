import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from '../../context.js';
import { createDeployments, type CreateRequest } from '../../db/queries/create-deployments.js';
import {
  deleteDeployment,
  scaleDeployment,
  startDeployment,
  stopDeployment,
} from '../../db/queries/deployment-commands.js';
import { listDeploymentPages, listDeploymentsNamed, pageKeyOf, type DeploymentPage, type PageKey } from '../../db/queries/deployment-list.js';
import type { DeploymentStatusRecord } from '../../db/queries/deployment-status.js';
import { NotFoundError } from '../../domain/errors.js';
import { DEFAULT_STRATEGY, mergeStrategy } from '../../domain/strategy.js';
import { commandOrNull, envOrNull } from '../../domain/validation.js';
import { Batcher } from '../../lib/batcher.js';
import { Coalescer } from '../../lib/coalescer.js';
import { requireUser, type ApiEnv, type UserDirectory } from '../auth.js';
import { decodeCursor, encodeCursor } from '../cursor.js';
import { notFoundOnBadId } from '../errors.js';
import { BEARER, errorResponses, jsonBody, jsonContent } from '../openapi.js';
import { CreateDeploymentBody, DeploymentListSchema, DeploymentStatusSchema, ListQuery, ScaleBody, idParam } from '../schemas.js';
import { jsonTextResponse, jsonViewOnce } from '../json-text.js';
import { StatusCache } from '../status-cache.js';
import { checkStrategy, resourcesOf } from '../template-input.js';
import { deploymentListItemJson, deploymentStatusJson } from '../views.js';
import { registerRolloutRoutes } from './rollouts.js';

const tags = ['deployments'];
const params = idParam('deployment');
const statusResponse = (description: string) => jsonContent(DeploymentStatusSchema, description);

const deploy = createRoute({
  method: 'post',
  path: '/api/deployment/deploy',
  tags,
  security: BEARER,
  summary: 'Declare a deployment',
  middleware: [requireUser] as const,
  request: { body: jsonBody(CreateDeploymentBody) },
  responses: { 201: statusResponse('Created; the status object'), ...errorResponses(400, 401, 403, 409, 413, 415, 422) },
});

const scale = createRoute({
  method: 'post',
  path: '/api/deployment/scale/{id}',
  tags,
  security: BEARER,
  summary: 'Change the replica target',
  middleware: [requireUser] as const,
  request: { params, body: jsonBody(ScaleBody) },
  responses: { 200: statusResponse('The status object'), ...errorResponses(400, 401, 403, 404, 413, 415, 422) },
});

const status = createRoute({
  method: 'get',
  path: '/api/deployment/status/{id}',
  tags,
  security: BEARER,
  summary: 'Desired and observed state, health and recent history',
  middleware: [requireUser] as const,
  request: { params },
  responses: { 200: statusResponse('The status object'), ...errorResponses(401, 403, 404) },
});

const list = createRoute({
  method: 'get',
  path: '/api/deployment/list',
  tags,
  security: BEARER,
  summary: "The caller's deployments, newest first, keyset-paginated; with ?name=, the live one of that name (or none)",
  middleware: [requireUser] as const,
  request: { query: ListQuery },
  responses: { 200: jsonContent(DeploymentListSchema, 'One page'), ...errorResponses(401, 403, 422) },
});

const remove = createRoute({
  method: 'delete',
  path: '/api/deployment/{id}',
  tags,
  security: BEARER,
  summary: 'Soft-delete; the controller stops the replicas',
  middleware: [requireUser] as const,
  request: { params },
  responses: { 204: { description: 'Deleted' }, ...errorResponses(401, 403, 404) },
});

const stop = createRoute({
  method: 'post',
  path: '/api/deployment/{id}/stop',
  tags,
  security: BEARER,
  summary: 'Stop every replica (idempotent)',
  middleware: [requireUser] as const,
  request: { params },
  responses: { 200: statusResponse('The status object'), ...errorResponses(401, 403, 404) },
});

const start = createRoute({
  method: 'post',
  path: '/api/deployment/{id}/start',
  tags,
  security: BEARER,
  summary: 'Start a stopped or failed deployment again (idempotent)',
  middleware: [requireUser] as const,
  request: { params },
  responses: { 200: statusResponse('The status object'), ...errorResponses(401, 403, 404) },
});

export function registerDeploymentRoutes(app: OpenAPIHono<ApiEnv>, ctx: Context, users: UserDirectory): void {
  const db = ctx.database.db;
  // Reads of concurrent requests share statements, and a status object read again is rebuilt only
  // when its rows changed (every command answers with the status too).
  const statuses = new StatusCache(db, { metric: ctx.metrics.statusReads });
  const pages = new Coalescer<PageKey, DeploymentPage>((keys) => listDeploymentPages(db, keys), pageKeyOf);
  // Creates of concurrent requests share one transaction and one commit (each still all-or-nothing).
  // At most 128 a batch: the ids of a batch's NOTIFY fit in one notification (about 210 would not).
  const creates = new Batcher<CreateRequest, DeploymentStatusRecord>((requests) => createDeployments(db, requests));
  // Each loaded status object and page is serialized once, whichever requests it answers.
  const statusText = jsonViewOnce(deploymentStatusJson);
  const pageText = jsonViewOnce((page: DeploymentPage) => ({
    items: page.items.map(deploymentListItemJson),
    next_cursor: page.next ? encodeCursor(page.next) : null,
  }));
  const readStatusText = async (userId: string, id: string) => {
    const record = await statuses.get({ userId, id });
    // Deleted between the command's commit and this read (another request): as gone as it gets.
    if (!record) throw new NotFoundError('deployment');
    return statusText(record);
  };
  const hook = notFoundOnBadId('deployment');
  registerRolloutRoutes(app, ctx, users, readStatusText);

  app.openapi(
    deploy,
    async (c) => {
      const body = c.req.valid('json');
      const userId = await users.idOf(c.get('principal'));
      const strategy = mergeStrategy(DEFAULT_STRATEGY, body.strategy);
      checkStrategy(strategy);
      // Answered with the status as the create wrote it (no read after the commit).
      const record = await creates.submit({
        userId,
        spec: {
          name: body.name,
          targetReplicas: body.target_replicas,
          template: {
            containerImage: body.container_image,
            resources: resourcesOf(body.resources),
            command: commandOrNull(body.command),
            env: envOrNull(body.env),
          },
          strategy,
        },
      });
      return jsonTextResponse(c, statusText(record), 201, { Location: `/api/deployment/status/${record.id}` });
    },
    hook,
  );

  app.openapi(
    scale,
    async (c) => {
      const { id } = c.req.valid('param');
      const userId = await users.idOf(c.get('principal'));
      await scaleDeployment(db, userId, id, c.req.valid('json').target_replicas);
      return jsonTextResponse(c, await readStatusText(userId, id), 200);
    },
    hook,
  );

  app.openapi(
    status,
    async (c) => {
      const { id } = c.req.valid('param');
      return jsonTextResponse(c, await readStatusText(await users.idOf(c.get('principal')), id), 200);
    },
    hook,
  );

  app.openapi(
    list,
    async (c) => {
      const query = c.req.valid('query');
      const after = query.cursor === undefined ? null : decodeCursor(query.cursor);
      const userId = await users.idOf(c.get('principal'));
      // A name matches at most one live deployment: one page, whatever the cursor.
      const page = query.name !== undefined ? await listDeploymentsNamed(db, userId, query.name) : (await pages.get({ userId, limit: query.limit, after }))!;
      return jsonTextResponse(c, pageText(page), 200);
    },
    hook,
  );

  app.openapi(
    remove,
    async (c) => {
      const { id } = c.req.valid('param');
      await deleteDeployment(db, await users.idOf(c.get('principal')), id);
      return c.body(null, 204);
    },
    hook,
  );

  app.openapi(
    stop,
    async (c) => {
      const { id } = c.req.valid('param');
      const userId = await users.idOf(c.get('principal'));
      await stopDeployment(db, userId, id);
      return jsonTextResponse(c, await readStatusText(userId, id), 200);
    },
    hook,
  );

  app.openapi(
    start,
    async (c) => {
      const { id } = c.req.valid('param');
      const userId = await users.idOf(c.get('principal'));
      await startDeployment(db, userId, id);
      return jsonTextResponse(c, await readStatusText(userId, id), 200);
    },
    hook,
  );
}
