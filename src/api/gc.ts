/**
 * /api/v1/gc: start a garbage collection (or a dry run), follow its progress, list past runs.
 * Registry administrators only: a collection spans every namespace. Starting one is audited.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { GcRun } from '../meta/gc.ts';
import { access, authorize, iso, recorded, type ApiContext } from './context.ts';
import { conflict, notFound, parse } from './errors.ts';

const startBody = z.strictObject({ dryRun: z.boolean().default(false) }).default({ dryRun: false });
const listQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  before: z.string().max(64).optional(),
});

export const gcRunView = (r: GcRun) => ({
  id: r.id,
  state: r.state,
  dryRun: r.dryRun,
  phase: r.phase,
  owner: r.owner,
  startedAt: iso(r.startedAt),
  heartbeatAt: iso(r.heartbeatAt),
  finishedAt: iso(r.finishedAt ?? null),
  graceSeconds: r.graceMs / 1000,
  resumed: r.resumed,
  /** what the run found to remove when it started (for a dry run, the answer) */
  planned: r.planned,
  /** what it has removed so far */
  done: r.done,
  ...(r.error === undefined ? {} : { error: r.error }),
});

export function registerGc(api: FastifyInstance, ctx: ApiContext): void {
  api.post('/gc', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    const { dryRun } = parse(startBody, req.body ?? undefined, 'garbage collection request');
    if (!ctx.gc) throw notFound('garbage collection is not available on this server');
    const run = await ctx.gc.begin({ dryRun });
    if (!run) {
      // The CLI follows the run that is already going; the message names it.
      const current = (await ctx.meta.gc.listRuns({ limit: 5 })).find((r) => r.state === 'running');
      throw conflict(`a garbage collection is already running${current ? `: run ${current.id}` : ''}`);
    }
    await recorded(ctx, req, 'gc.start', run.id, { dryRun, resumed: run.resumed });
    return reply.code(202).send(gcRunView(run));
  });

  api.get('/gc/runs', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    const q = parse(listQuery, req.query, 'query');
    const runs = await ctx.meta.gc.listRuns({ limit: q.limit, ...(q.before ? { before: q.before } : {}) });
    const last = runs.at(-1);
    return { runs: runs.map(gcRunView), ...(runs.length === q.limit && last ? { next: last.id } : {}) };
  });

  api.get<{ Params: { id: string } }>('/gc/runs/:id', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    const run = await ctx.meta.gc.getRun(req.params.id.slice(0, 64));
    if (!run) throw notFound(`no garbage collection run ${req.params.id.slice(0, 64)}`);
    return gcRunView(run);
  });
}
