/**
 * /api/v1/events and /api/v1/usage/rollups: usage events newest first, and their hourly and daily
 * rollups (docs/insight.md, "Events"). Registry administrators read everything; anyone logged in
 * who may pull from a namespace reads that namespace's events and rollups, by naming it (or a
 * repository in it). Registry-wide events (logins, tokens for several namespaces) have no
 * namespace, and only administrators see them. Anonymous readers of a public namespace do not:
 * events name who pulled, from where.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Access } from '../auth/access.ts';
import { eventJson, periodStart, type EventType } from '../meta/insight.ts';
import { isRepositoryName, namespaceOf, nameRule } from '../reference.ts';
import { timeParam } from './audit.ts';
import { access, authorize, iso, namespaceName, type ApiContext } from './context.ts';
import { invalid, parse } from './errors.ts';

const eventTypes: readonly EventType[] = ['push', 'pull', 'delete', 'login', 'token', 'decision', 'budget'];

const repository = z.string().max(255).refine(isRepositoryName, nameRule);

const eventQuery = z.strictObject({
  /** one type, or several separated by commas */
  type: z
    .string()
    .max(200)
    .transform((s, c) => {
      const types = s.split(',').filter(Boolean);
      const unknown = types.find((t) => !(eventTypes as readonly string[]).includes(t));
      if (unknown !== undefined || types.length === 0) {
        c.addIssue({ code: 'custom', message: `use ${eventTypes.join(', ')} (several separated by commas)` });
        return z.NEVER;
      }
      return types as EventType[];
    })
    .optional(),
  namespace: namespaceName.optional(),
  repository: repository.optional(),
  since: timeParam.optional(),
  until: timeParam.optional(),
  /** the `next` of the previous page: the id of the last event seen */
  before: z
    .string()
    .regex(/^\d{13}-[0-9a-z]{1,64}$/, 'use the `next` of the previous page')
    .optional(),
  limit: z.coerce.number<string>().int().min(1, 'at least 1').max(500, 'at most 500').default(100),
});

const rollupQuery = z.strictObject({
  period: z.enum(['hour', 'day']),
  namespace: namespaceName.optional(),
  repository: repository.optional(),
  since: timeParam.optional(),
  until: timeParam.optional(),
});

/** Rows a rollup answer holds at most; past it, `truncated` says so (ask for a shorter window). */
const maxRollups = 10_000;
/** The default window of a rollup answer: the last day of hours, the last 31 days. */
const defaultWindow = { hour: 86_400_000, day: 31 * 86_400_000 };

/**
 * Who may read what a query names: its namespace (a repository's, or the one given; both must
 * agree) for those logged in who may pull there, everything for registry administrators.
 */
async function readScope(
  ctx: ApiContext,
  req: FastifyRequest,
  reply: FastifyReply,
  q: { namespace?: string | undefined; repository?: string | undefined },
): Promise<string | undefined> {
  if (q.namespace && q.repository && namespaceOf(q.repository) !== q.namespace)
    throw invalid(`repository ${q.repository} is not in namespace ${q.namespace}: name one of them`);
  const scope = q.namespace ?? (q.repository ? namespaceOf(q.repository) : undefined);
  const reads: Access[] = scope ? [access.login, { type: 'repository', name: scope, actions: ['pull'] }] : [access.admin];
  await authorize(ctx, req, reply, reads);
  return scope;
}

export function registerEvents(api: FastifyInstance, ctx: ApiContext): void {
  api.get('/events', async (req, reply) => {
    const q = parse(eventQuery, req.query, 'events query');
    const scope = await readScope(ctx, req, reply, q);
    const before = q.before === undefined ? undefined : { at: Number(q.before.slice(0, 13)), id: q.before };
    const page = await ctx.meta.insight.listEvents(
      {
        ...(q.type ? { types: q.type } : {}),
        ...(scope !== undefined ? { namespaces: [scope] } : {}),
        ...(q.repository ? { repository: q.repository } : {}),
        ...(q.since !== undefined ? { since: q.since } : {}),
        ...(q.until !== undefined ? { until: q.until } : {}),
      },
      { limit: q.limit, ...(before ? { before } : {}) },
    );
    return { events: page.events.map(eventJson), next: page.next ? page.next.id : null };
  });

  api.get('/usage/rollups', async (req, reply) => {
    const q = parse(rollupQuery, req.query, 'rollups query');
    const scope = await readScope(ctx, req, reply, q);
    const until = q.until ?? Date.now();
    // the periods that overlap the window: from the start of the one `since` falls in
    const since = periodStart(q.period, q.since ?? until - defaultWindow[q.period]);
    const rows = await ctx.meta.insight.rollups({
      period: q.period,
      ...(scope !== undefined ? { namespaces: [scope] } : {}),
      ...(q.repository ? { repository: q.repository } : {}),
      since,
      until,
      limit: maxRollups + 1,
    });
    return {
      period: q.period,
      since: iso(since),
      until: iso(until),
      rollups: rows.slice(0, maxRollups).map((r) => ({
        start: iso(r.start),
        namespace: r.namespace,
        repository: r.repository,
        type: r.type,
        object: r.object,
        count: r.count,
        bytes: r.bytes,
      })),
      truncated: rows.length > maxRollups,
    };
  });
}
