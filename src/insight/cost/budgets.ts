/**
 * The budget check: this month's cost (UTC) of each budgeted namespace or team against its
 * thresholds. A crossing is announced once per month and threshold: the store's mark
 * (markBudgetNotified) lets one call through across replicas, and that call logs it and records a
 * `budget` usage event (which webhooks and the events API see like any other). The hard threshold
 * is not enforced here: policies read it as `ns.budget` beside `ns.costThisMonth`.
 */
import type { FastifyBaseLogger } from 'fastify';
import { costOf, monthOf, type Budget, type BudgetThreshold, type PriceModel } from '../../meta/cost.ts';
import { eventId, type UsageEvent } from '../../meta/insight.ts';
import type { MetaStore } from '../../meta/metastore.ts';
import { namespaceLabels, namespacesOfTeam } from './report.ts';

export interface BudgetCrossing {
  budget: Budget;
  threshold: BudgetThreshold;
  month: string;
  cost: number;
  limit: number;
}

/** The namespaces a budget covers. */
export function budgetNamespaces(b: Pick<Budget, 'scope' | 'name'>, labels: Map<string, Record<string, string>>): string[] {
  return b.scope === 'namespace' ? [b.name] : namespacesOfTeam(b.name, labels);
}

/** Checks every budget at `now`; returns the crossings this call announced. */
export async function checkBudgets(meta: MetaStore, model: PriceModel, log: FastifyBaseLogger, now: number): Promise<BudgetCrossing[]> {
  const budgets = await meta.cost.listBudgets();
  if (budgets.length === 0) return [];
  const month = monthOf(now);
  const labels = await namespaceLabels(meta);
  const announced: BudgetCrossing[] = [];
  for (const budget of budgets) {
    const cost = await costOf(meta.cost, model, { since: month.start, until: month.end, now }, budgetNamespaces(budget, labels));
    const thresholds: [BudgetThreshold, number | null][] = [
      ['soft', budget.soft],
      ['hard', budget.monthly],
    ];
    for (const [threshold, limit] of thresholds) {
      if (limit === null || limit <= 0 || cost < limit) continue;
      if (!(await meta.cost.markBudgetNotified(budget.scope, budget.name, threshold, month.name))) continue;
      const crossing = { budget, threshold, month: month.name, cost, limit };
      announced.push(crossing);
      log.warn(
        { scope: budget.scope, name: budget.name, threshold, month: month.name, cost, limit, currency: model.currency },
        'cost crossed a budget threshold',
      );
      await meta.insight.recordEvents([budgetEvent(crossing, model.currency, now)]);
    }
  }
  return announced;
}

export function budgetEvent(c: BudgetCrossing, currency: string, at: number): UsageEvent {
  return {
    id: eventId(at),
    at,
    type: 'budget',
    object: '',
    namespace: c.budget.scope === 'namespace' ? c.budget.name : '',
    repository: '',
    digest: '',
    tag: '',
    mediaType: '',
    actor: '',
    actorKind: '',
    tokenId: '',
    bytes: 0,
    userAgent: '',
    source: '',
    durationMicros: 0,
    status: 0,
    result: 'ok',
    detail: { scope: c.budget.scope, name: c.budget.name, threshold: c.threshold, month: c.month, cost: c.cost, limit: c.limit, currency },
  };
}
