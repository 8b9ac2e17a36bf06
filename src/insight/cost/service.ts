/**
 * The cost jobs: storage sampling (sample(), every sampleSeconds) and the network rollup with the
 * budget check (check(), every budgetCheckSeconds), scheduled by buildApp once per interval
 * across replicas (src/lifecycle/schedule.ts). Each round also takes its own lease in
 * cost_leases, for half a period, and sampling skips a round when a tick is recent: these keep a
 * replica of an older release (which runs its own timers) from doing a round twice beside a
 * newer one. The store guards the rest: a tick as recent as another's, or a page of events the
 * cursor has passed, is not written twice.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { dayMs } from '../../meta/insight.ts';
import { priceModelOf, type PriceModel } from '../../meta/cost.ts';
import type { MetaStore } from '../../meta/metastore.ts';
import type { Config } from '../../config/schema.ts';
import { checkBudgets } from './budgets.ts';
import { rollUpNetworkEgress } from './egress.ts';
import { networkClassifier, type NetworkOf } from './networks.ts';
import { sampleStorage } from './sampler.ts';

export type CostConfig = Config['insight']['cost'];

export interface CostServiceParts {
  meta: MetaStore;
  log: FastifyBaseLogger;
  settings: CostConfig;
  /** samples are kept as long as the rollups (insight.rollups.retentionDays) */
  keepDays: number;
  now?: () => number;
}

export class CostService {
  readonly model: PriceModel;
  private readonly parts: CostServiceParts;
  private readonly networkOf: NetworkOf;
  private readonly holder = randomUUID();
  private readonly now: () => number;

  constructor(parts: CostServiceParts) {
    this.parts = parts;
    this.model = priceModelOf(parts.settings);
    this.networkOf = networkClassifier(parts.settings.egress.networks);
    this.now = parts.now ?? Date.now;
  }

  /** One sampling round, if this replica takes the round's lease; true when it recorded a tick. */
  async sample(): Promise<boolean> {
    const now = this.now();
    const periodMs = this.parts.settings.sampleSeconds * 1000;
    // an older replica's own timer runs out of phase: a tick taken lately by anyone makes this round's
    const last = await this.parts.meta.cost.lastSampleAt();
    if (last !== undefined && now - last < periodMs * 0.9) return false;
    if (!(await this.parts.meta.cost.acquireLease('cost-sample', this.holder, now, periodMs / 2))) return false;
    const recorded = await sampleStorage(this.parts.meta, now);
    await this.parts.meta.cost.pruneSamples(now - this.parts.keepDays * dayMs);
    return recorded;
  }

  /** One round of the network rollup and the budget check, if this replica takes the lease. */
  async check(): Promise<void> {
    const now = this.now();
    const periodMs = this.parts.settings.budgetCheckSeconds * 1000;
    if (!(await this.parts.meta.cost.acquireLease('cost-check', this.holder, now, periodMs / 2))) return;
    if (this.parts.settings.egress.networks.length > 0) await rollUpNetworkEgress(this.parts.meta, this.networkOf, now);
    await checkBudgets(this.parts.meta, this.model, this.parts.log, now);
  }
}
