/**
 * The cost jobs, started and stopped by buildApp: on every replica a timer for storage sampling
 * (every sampleSeconds) and one for the network rollup and the budget check (every
 * budgetCheckSeconds). Each round is run by the one replica that takes its lease first; the
 * lease lasts half a period, so it is taken afresh each round and a replica that died holds
 * nothing for long. The store guards the rest: a tick as recent as another's, or a page of
 * events the cursor has passed, is not written twice.
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
  private timers: NodeJS.Timeout[] = [];
  private readonly running = new Set<Promise<void>>();

  constructor(parts: CostServiceParts) {
    this.parts = parts;
    this.model = priceModelOf(parts.settings);
    this.networkOf = networkClassifier(parts.settings.egress.networks);
    this.now = parts.now ?? Date.now;
  }

  start(): void {
    const { sampleSeconds, budgetCheckSeconds } = this.parts.settings;
    this.every(sampleSeconds * 1000, () => this.sample());
    this.every(budgetCheckSeconds * 1000, () => this.check());
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    await Promise.allSettled([...this.running]);
  }

  /** One sampling round, if this replica takes the round's lease; true when it recorded a tick. */
  async sample(): Promise<boolean> {
    const now = this.now();
    const periodMs = this.parts.settings.sampleSeconds * 1000;
    // replicas' timers run out of phase: a tick taken lately by any of them makes this round's
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

  /** Runs `round` now and every `ms`, skipping a turn while the last one is still going. */
  private every(ms: number, round: () => Promise<unknown>): void {
    let busy = false;
    const go = () => {
      if (busy) return;
      busy = true;
      const run: Promise<void> = round()
        .then(() => undefined)
        .catch((err: unknown) => this.parts.log.error({ err }, 'a cost round failed'))
        .finally(() => {
          busy = false;
          this.running.delete(run);
        });
      this.running.add(run);
    };
    const first = setTimeout(go, 0);
    const timer = setInterval(go, ms);
    first.unref();
    timer.unref();
    this.timers.push(first, timer);
  }
}
