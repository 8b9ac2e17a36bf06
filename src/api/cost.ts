/**
 * Cost (docs/insight.md, "Cost"): reports over a window grouped by namespace, team, repository or
 * a namespace label; the FinOps FOCUS CSV export; budgets per namespace or team.
 *
 * Access: registry administrators read every figure and set every budget. Naming a namespace
 * (`namespace=`), its admins (manage) read its figures and set its budget; nobody else reads a
 * namespace's cost. Team budgets, and reports over all namespaces, are for administrators: a team
 * (the namespaces whose `team` label names it) is not a namespace anyone manages.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { monthOf, type BudgetScope, type PriceModel } from '../meta/cost.ts';
import { costReport, parseGrouping } from '../insight/cost/report.ts';
import { focusCsv, focusRows, type FocusSettings } from '../insight/cost/focus.ts';
import { timeParam } from './audit.ts';
import { access, authorize, iso, namespaceName, recorded, type ApiContext } from './context.ts';
import { invalid, notFound, parse } from './errors.ts';

/** What the cost routes need of the server: the price model, the export's fixed columns, the clock. */
export interface CostApi {
  model: PriceModel;
  focus: FocusSettings;
  now: () => number;
}

/** The longest window a report or an export covers (an export is a row per repository, charge and day). */
const maxWindowDays = 400;
const dayMs = 86_400_000;
/** new Date() takes times up to here; past it, toISOString throws */
const maxTime = 8.64e15;

const time = timeParam.refine((ms) => ms >= 0 && ms <= maxTime, 'a time between 1970 and 275760');

const windowQuery = {
  since: time.optional(),
  until: time.optional(),
  namespace: namespaceName.optional(),
};
const reportQuery = z.strictObject({
  ...windowQuery,
  by: z
    .string()
    .max(80)
    .refine((by) => parseGrouping(by) !== undefined, 'use namespace, team, repository or label:<key>')
    .default('namespace'),
});
const exportQuery = z.strictObject({ ...windowQuery, format: z.literal('focus', 'the one format is focus (FinOps FOCUS 1.x CSV)').default('focus') });

const amount = (what: string) =>
  z.number(`${what} is a number`).finite(`${what} is a finite number`).nonnegative(`${what} is 0 or more`).max(1e15, `${what} is at most 10^15`);
const budgetBody = z
  .strictObject({ monthly: amount('monthly').positive('monthly is more than 0'), soft: amount('soft').nullable().optional() })
  .refine((b) => b.soft === undefined || b.soft === null || b.soft <= b.monthly, 'soft is at most monthly: it warns before the hard threshold');

const teamName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a team is 1 to 64 letters, digits, ".", "_" and "-"');

type Query = { Querystring: Record<string, string> };
type BudgetParams = { Params: { name: string } };

export function costApi(cost: CostApi): (api: FastifyInstance, ctx: ApiContext) => void {
  /** [since, until): this month unless given; refused when reversed or too long. */
  const windowOf = (q: { since?: number | undefined; until?: number | undefined }) => {
    const now = cost.now();
    const month = monthOf(now);
    const since = q.since ?? month.start;
    const until = q.until ?? (q.since !== undefined ? Math.max(since, now) : month.end);
    if (until <= since) throw invalid('until must be after since');
    if (until - since > maxWindowDays * dayMs) throw invalid(`a window is at most ${maxWindowDays} days`);
    return { since, until, now };
  };

  return (api, ctx) => {
    api.get<Query>('/cost', async (req, reply) => {
      const q = parse(reportQuery, req.query, 'cost query');
      await authorize(ctx, req, reply, [q.namespace !== undefined ? access.manage(q.namespace) : access.admin]);
      return costReport(ctx.meta, cost.model, {
        window: windowOf(q),
        by: parseGrouping(q.by)!,
        ...(q.namespace !== undefined ? { namespaces: [q.namespace] } : {}),
      });
    });

    api.get<Query>('/cost/export', async (req, reply) => {
      const q = parse(exportQuery, req.query, 'cost export query');
      await authorize(ctx, req, reply, [q.namespace !== undefined ? access.manage(q.namespace) : access.admin]);
      const window = windowOf(q);
      const rows = await focusRows(ctx.meta, cost.model, cost.focus, window, q.namespace !== undefined ? [q.namespace] : undefined);
      const name = `custody-cost-${iso(window.since)!.slice(0, 10)}-${iso(window.until)!.slice(0, 10)}.csv`;
      return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${name}"`).send(focusCsv(rows));
    });

    api.get('/budgets', async (req, reply) => {
      await authorize(ctx, req, reply, [access.admin]);
      return { currency: cost.model.currency, budgets: (await ctx.meta.cost.listBudgets()).map(budgetView) };
    });

    for (const scope of ['namespace', 'team'] as const satisfies BudgetScope[]) {
      const nameOf = (raw: string) => parse(scope === 'namespace' ? namespaceName : teamName, raw, `${scope} name`);
      const accessFor = (name: string) => (scope === 'namespace' ? access.manage(name) : access.admin);

      api.get<BudgetParams>(`/budgets/${scope}/:name`, async (req, reply) => {
        const name = nameOf(req.params.name);
        await authorize(ctx, req, reply, [accessFor(name)]);
        const b = await ctx.meta.cost.getBudget(scope, name);
        if (!b) throw notFound(`no budget for ${scope} ${name}`);
        return { currency: cost.model.currency, ...budgetView(b) };
      });

      api.put<BudgetParams>(`/budgets/${scope}/:name`, async (req, reply) => {
        const name = nameOf(req.params.name);
        const principal = await authorize(ctx, req, reply, [accessFor(name)]);
        const body = parse(budgetBody, req.body, 'budget');
        const budget = { scope, name, monthly: body.monthly, soft: body.soft ?? null, updatedBy: principal.name, updatedAt: cost.now() };
        await ctx.meta.cost.setBudget(budget);
        await recorded(ctx, req, 'budget.set', `${scope}:${name}`, { monthly: budget.monthly, soft: budget.soft, currency: cost.model.currency });
        // policies read ns.budget: this replica's next decision sees the new one
        if (scope === 'namespace') ctx.policy?.namespaceChanged(name);
        return { currency: cost.model.currency, ...budgetView(budget) };
      });

      api.delete<BudgetParams>(`/budgets/${scope}/:name`, async (req, reply) => {
        const name = nameOf(req.params.name);
        await authorize(ctx, req, reply, [accessFor(name)]);
        if (!(await ctx.meta.cost.deleteBudget(scope, name))) throw notFound(`no budget for ${scope} ${name}`);
        await recorded(ctx, req, 'budget.delete', `${scope}:${name}`);
        if (scope === 'namespace') ctx.policy?.namespaceChanged(name);
        return reply.code(204).send();
      });
    }
  };
}

const budgetView = (b: { scope: string; name: string; monthly: number; soft: number | null; updatedBy: string; updatedAt: number }) => ({
  scope: b.scope,
  name: b.name,
  monthly: b.monthly,
  soft: b.soft,
  updatedBy: b.updatedBy,
  updatedAt: iso(b.updatedAt),
});
