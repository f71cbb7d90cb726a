import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { sql } from 'kysely';
import type { Context } from '../../context.js';
import { NotFoundError } from '../../domain/errors.js';
import { requireUser, type ApiEnv, type UserDirectory } from '../auth.js';
import type { EventHub } from '../events/event-hub.js';
import { BEARER, errorResponses } from '../openapi.js';

const EVENT_ID = /^\d{1,19}$/;
const MAX_EVENT_ID = 2n ** 63n - 1n;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const eventId = z
  .string()
  .regex(EVENT_ID, 'an event id: a non-negative integer')
  .refine((s) => !EVENT_ID.test(s) || BigInt(s) <= MAX_EVENT_ID, 'an event id: at most 2^63 - 1');

const EventsQuery = z.strictObject({
  deployment_id: z
    .string()
    .optional()
    .openapi({ param: { name: 'deployment_id', in: 'query' }, description: "Only this deployment's events (yours; 404 otherwise)", format: 'uuid' }),
  since: eventId
    .optional()
    .openapi({ param: { name: 'since', in: 'query' }, description: 'Resume after this event id (Last-Event-ID wins when both are sent)', example: '42' }),
});

const EventsHeaders = z.object({
  'last-event-id': eventId.optional().openapi({ param: { name: 'last-event-id', in: 'header' }, description: 'Resume after this event id' }),
});

const DESCRIPTION = `Server-Sent Events of the caller's deployments (\`text/event-stream\`).

Each event is \`id: N\`, \`event: TYPE\`, \`data: JSON\` on one line, then a blank line. Ids are decimal integers that only
grow (up to 2^63; compare them as integers, or keep them as text and send them back). Types:
- \`deployment\` \`{deployment_id, name, status, health, target_replicas, running_replicas, revision, rollout}\`, when any of
  them changes (\`rollout\` as in the status object: \`{state, revision, updated_replicas, available_replicas, reason}\`);
- \`history\` \`{deployment_id, name, old_status, new_status, reason, changed_at}\`, each new status-history row;
- \`replica\` \`{replica_id, deployment_id, name, status, node_id, node_name, reason, revision}\`, when a replica appears
  or its status, node, reason or revision changes;
- \`node\` \`{node_id, name, status}\` (admins only, not with \`deployment_id\`), when a node registers, changes status or is
  deleted (status \`deleted\`);
- \`reset\` \`{reason}\`: events after the id asked for are no longer retained: list again, then go on reading.

The stream opens with \`retry: MS\` and, when not resuming, \`id: N\` alone (no event is dispatched for it; it sets the
id to resume from). \`: ping\` comments come at least every 15 s. Resume with \`Last-Event-ID\` (or \`?since=\`):
every retained event after that id comes once, in order, then the live ones. A client that reads too slowly is cut off.`;

const route = createRoute({
  method: 'get',
  path: '/api/events',
  tags: ['events'],
  security: BEARER,
  summary: "Follow changes to the caller's deployments (Server-Sent Events)",
  description: DESCRIPTION,
  middleware: [requireUser] as const,
  request: { query: EventsQuery, headers: EventsHeaders },
  responses: {
    200: { description: 'The event stream', content: { 'text/event-stream': { schema: z.string() } } },
    ...errorResponses(401, 403, 404, 422),
  },
});

export function registerEventRoutes(app: OpenAPIHono<ApiEnv>, ctx: Context, users: UserDirectory, hub: EventHub): void {
  const db = ctx.database.db;
  app.openapi(route, async (c) => {
    const query = c.req.valid('query');
    const header = c.req.valid('header')['last-event-id'];
    const principal = c.get('principal');
    const userId = await users.idOf(principal);
    const deploymentId = query.deployment_id;
    if (deploymentId !== undefined) {
      // Another user's, unknown and malformed ids look alike. A deleted deployment of one's own still has its events.
      if (!UUID.test(deploymentId)) throw new NotFoundError('deployment');
      const { rows } = await sql`SELECT 1 FROM deployments WHERE id = ${deploymentId} AND user_id = ${userId}`.execute(db);
      if (rows.length === 0) throw new NotFoundError('deployment');
    }
    const since = header ?? query.since;
    // The Node adapter hands over its response object: a dropped client's connection is cut there.
    const outgoing = (c.env as { outgoing?: { destroy(): void } } | undefined)?.outgoing;
    const body = await hub.open({
      caller: principal.subject,
      filter: {
        userId,
        ...(deploymentId === undefined ? { nodes: principal.roles.has('admin') } : { deploymentId: deploymentId.toLowerCase() }),
      },
      since: since === undefined ? null : BigInt(since),
      ...(outgoing ? { abort: () => outgoing.destroy() } : {}),
    });
    return new Response(body, {
      status: 200,
      headers: {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache, no-transform',
        // Proxies that buffer (nginx) must pass each event on at once.
        'X-Accel-Buffering': 'no',
      },
    });
  });
}
