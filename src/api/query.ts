/**
 * POST /api/v1/query: the query language (docs/insight.md, "Query language"). Any user or robot
 * may ask; the answer holds only rows of the namespaces it may pull from (every namespace for a
 * registry administrator), which the planner makes a condition of the query itself. A query that
 * is wrong, too long or too slow is a 400 whose message says why (and where, for a wrong one).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { QueryDataError, QueryError, QueryTimeoutError, runQuery, type QueryLimits } from '../insight/query/index.ts';
import { access, authorize, type ApiContext } from './context.ts';
import { invalid, parse } from './errors.ts';

// the text's own limit is the language's (a 400 with the position); this only stops absurd bodies early
const bodySchema = z.strictObject({ query: z.string().max(60_000, 'at most 60 000 characters') });

export function registerQuery(api: FastifyInstance, ctx: ApiContext, limits: Partial<QueryLimits> = {}): void {
  api.post('/query', async (req, reply) => {
    const principal = await authorize(ctx, req, reply, [access.login]);
    const { query } = parse(bodySchema, req.body, 'query request');
    const readable = await ctx.auth.rbac.readable(principal);
    try {
      return await runQuery(ctx.meta.query, query, { access: readable, limits });
    } catch (err) {
      if (err instanceof QueryError) throw invalid(err.message);
      if (err instanceof QueryTimeoutError) throw invalid(`${err.message}: narrow it (a time range, a namespace) or aggregate less`);
      if (err instanceof QueryDataError) throw invalid(`the query failed: ${err.message}`);
      throw err;
    }
  });
}
