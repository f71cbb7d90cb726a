import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from '../../context.js';
import { listRevisions } from '../../db/queries/revisions.js';
import { changeDeployment, rollbackDeployment, setPaused } from '../../db/queries/rollout-commands.js';
import { NotFoundError } from '../../domain/errors.js';
import { commandOrNull, envOrNull } from '../../domain/validation.js';
import { requireUser, type ApiEnv, type UserDirectory } from '../auth.js';
import { notFoundOnBadId } from '../errors.js';
import { jsonTextResponse, type JsonText } from '../json-text.js';
import { BEARER, errorResponses, jsonBody, jsonContent } from '../openapi.js';
import { DeploymentStatusSchema, PatchDeploymentBody, RevisionListSchema, RollbackBody, idParam } from '../schemas.js';
import { partialResources } from '../template-input.js';
import { resourcesJson, type deploymentStatusJson } from '../views.js';

const tags = ['rollouts'];
const params = idParam('deployment');
const statusResponse = (description: string) => jsonContent(DeploymentStatusSchema, description);

const patch = createRoute({
  method: 'patch',
  path: '/api/deployment/{id}',
  tags,
  security: BEARER,
  summary: 'Change the template (a new revision and a rollout), the target or the strategy',
  middleware: [requireUser] as const,
  request: { params, body: jsonBody(PatchDeploymentBody) },
  responses: { 200: statusResponse('The status object'), ...errorResponses(400, 401, 403, 404, 413, 415, 422) },
});

const revisions = createRoute({
  method: 'get',
  path: '/api/deployment/{id}/revisions',
  tags,
  security: BEARER,
  summary: 'Every revision kept, newest first',
  middleware: [requireUser] as const,
  request: { params },
  responses: { 200: jsonContent(RevisionListSchema, 'The revisions'), ...errorResponses(401, 403, 404) },
});

const rollback = createRoute({
  method: 'post',
  path: '/api/deployment/{id}/rollback',
  tags,
  security: BEARER,
  summary: 'A new revision with the template of an earlier one (default: the one before the current)',
  middleware: [requireUser] as const,
  request: { params, body: { ...jsonBody(RollbackBody), required: false } },
  responses: { 200: statusResponse('The status object'), ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422) },
});

const pauseOrResume = (action: 'pause' | 'resume') =>
  createRoute({
    method: 'post',
    path: `/api/deployment/{id}/${action}`,
    tags,
    security: BEARER,
    summary: action === 'pause' ? 'Pause the rollout: no step and no deadline; scaling still works' : 'Resume a paused rollout',
    middleware: [requireUser] as const,
    request: { params },
    responses: { 200: statusResponse('The status object'), ...errorResponses(401, 403, 404) },
  });

type ReadStatusText = (userId: string, id: string) => Promise<JsonText<ReturnType<typeof deploymentStatusJson>>>;

export function registerRolloutRoutes(app: OpenAPIHono<ApiEnv>, ctx: Context, users: UserDirectory, readStatusText: ReadStatusText): void {
  const db = ctx.database.db;
  const hook = notFoundOnBadId('deployment');

  app.openapi(
    patch,
    async (c) => {
      const { id } = c.req.valid('param');
      const body = c.req.valid('json');
      const userId = await users.idOf(c.get('principal'));
      const template = {
        ...(body.container_image !== undefined && { containerImage: body.container_image }),
        ...(body.resources !== undefined && { resources: partialResources(body.resources) }),
        ...(body.command !== undefined && { command: commandOrNull(body.command) }),
        ...(body.env !== undefined && { env: envOrNull(body.env) }),
      };
      await changeDeployment(db, userId, id, {
        ...(Object.keys(template).length > 0 && { template }),
        ...(body.target_replicas !== undefined && { targetReplicas: body.target_replicas }),
        ...(body.strategy !== undefined && { strategy: body.strategy }),
      });
      return jsonTextResponse(c, await readStatusText(userId, id), 200);
    },
    hook,
  );

  app.openapi(
    revisions,
    async (c) => {
      const { id } = c.req.valid('param');
      const userId = await users.idOf(c.get('principal'));
      // The status read is also the ownership check: another user's id is a 404 like an unknown one.
      await readStatusText(userId, id);
      const items = await listRevisions(db, id);
      if (items.length === 0) throw new NotFoundError('deployment');
      return c.json(
        {
          items: items.map((r) => ({
            revision: r.revision,
            container_image: r.template.containerImage,
            resources: resourcesJson(r.template.resources),
            command: r.template.command === null ? null : [...r.template.command],
            env: r.template.env === null ? null : { ...r.template.env },
            created_at: r.createdAt.toISOString(),
            active_replicas: r.activeReplicas,
          })),
        },
        200,
      );
    },
    hook,
  );

  app.openapi(
    rollback,
    async (c) => {
      const { id } = c.req.valid('param');
      const body = (c.req.valid('json') as { revision?: number } | undefined) ?? {};
      const userId = await users.idOf(c.get('principal'));
      await rollbackDeployment(db, userId, id, body.revision);
      return jsonTextResponse(c, await readStatusText(userId, id), 200);
    },
    hook,
  );

  for (const action of ['pause', 'resume'] as const) {
    app.openapi(
      pauseOrResume(action),
      async (c) => {
        const { id } = c.req.valid('param');
        const userId = await users.idOf(c.get('principal'));
        await setPaused(db, userId, id, action === 'pause');
        return jsonTextResponse(c, await readStatusText(userId, id), 200);
      },
      hook,
    );
  }
}
