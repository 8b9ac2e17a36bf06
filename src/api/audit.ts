/**
 * /api/v1/audit: the audit log, newest first, filtered by actor, action, target and time, paged
 * with `before` (pass the `next` of one page to get the following one). Registry administrators.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { access, authorize, iso, type ApiContext } from './context.ts';
import { parse } from './errors.ts';

/** ISO 8601 or milliseconds since the epoch. */
export const timeParam = z.string().transform((s, c) => {
  const ms = /^\d+$/.test(s) ? Number(s) : Date.parse(s);
  if (Number.isNaN(ms)) {
    c.addIssue({ code: 'custom', message: 'use an ISO 8601 time or milliseconds since the epoch' });
    return z.NEVER;
  }
  return ms;
});

const filter = z.string().min(1).max(300);

const querySchema = z.strictObject({
  actor: filter.optional(),
  action: filter.optional(),
  target: filter.optional(),
  since: timeParam.optional(),
  until: timeParam.optional(),
  before: z.coerce.number<string>().int().positive().optional(),
  limit: z.coerce.number<string>().int().min(1, 'at least 1').max(500, 'at most 500').default(100),
});

export function registerAudit(api: FastifyInstance, ctx: ApiContext): void {
  api.get('/audit', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    const q = parse(querySchema, req.query, 'audit query');
    const events = await ctx.accounts.query(q);
    const last = events.at(-1);
    return {
      events: events.map((e) => ({
        id: e.id,
        time: iso(e.time),
        actor: e.actor,
        source: e.source,
        action: e.action,
        target: e.target,
        outcome: e.outcome,
        detail: e.detail,
      })),
      next: last !== undefined && events.length === q.limit ? last.id : null,
    };
  });
}
