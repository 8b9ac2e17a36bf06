/**
 * What cost (src/insight/cost/, docs/insight.md "Cost") keeps in the shared metadata store, and the
 * one pricing formula.
 *
 * - Storage over time: each sample (a "tick") holds every repository's fair stored bytes at one
 *   moment, written by one replica under a lease. A tick stands until the next one (or, the last,
 *   until now), so the byte-milliseconds over a window are the integral of a step function and a
 *   gap in sampling (all replicas down) carries the last figures across it. A repository's fair
 *   bytes are its namespace's fair share of the blobs (quotas' figures, meta.quota) handed to the
 *   namespace's repositories in proportion to the blobs each links counted in full, plus its own
 *   manifests: they add up to the namespace's figure.
 * - Egress and requests come from the usage rollups (meta.insight): bytes and counts of pull and
 *   push events per hour. The bytes that went to a configured network are rolled up here, per hour,
 *   from the events' source addresses (cost_egress); the rest of a rollup's bytes are priced at the
 *   default egress price.
 * - Budgets per namespace or team, with the month each threshold was last announced in.
 *
 * The pricing formula lives here, beside the figures, because two parts price them: insight's cost
 * reports and policy's `ns.costThisMonth` (policy may not import insight).
 */
import type { EventCursor } from './insight.ts';

/** A price model (the config's insight.cost): prices in `currency` per unit. */
export interface PriceModel {
  currency: string;
  /** per GB (10^9 bytes) stored for a whole calendar month */
  storagePerGbMonth: number;
  egress: {
    /** per GB sent to an address no network below contains */
    perGb: number;
    /** named networks with their own price per GB; the first that contains the address decides */
    networks: { name: string; cidrs: string[]; perGb: number }[];
  };
  /** per request (one recorded push or pull event: a manifest or blob request) */
  requests: { push: number; pull: number };
}

/** The price model of a config's insight.cost (which holds the jobs' settings beside it). */
export const priceModelOf = (c: PriceModel): PriceModel => ({
  currency: c.currency,
  storagePerGbMonth: c.storagePerGbMonth,
  egress: c.egress,
  requests: c.requests,
});

/** Milliseconds since the epoch: [since, until), with storage counted no later than `now`. */
export interface CostWindow {
  since: number;
  until: number;
  now: number;
}

export interface CostFilter {
  /** only these namespaces (an empty list matches nothing) */
  namespaces?: string[];
}

/** One repository's usage over a window, as the price model prices it. */
export interface RepositoryUsage {
  namespace: string;
  repository: string;
  /** the fair bytes over time: the integral of bytes over each calendar month, over 10^9 × the month's length */
  storageGbMonths: number;
  /** bytes that pulls sent */
  egressBytes: number;
  /** of those, the bytes sent to each configured network (by name); the rest went elsewhere */
  egressByNetwork: Record<string, number>;
  pushes: number;
  pulls: number;
}

export interface StorageSample {
  namespace: string;
  repository: string;
  /** fair bytes: a share of the namespace's fair blob bytes plus the repository's manifests */
  bytes: number;
}

/** A repository's bytes counted in full: the blobs it links and its manifests. */
export interface RepositoryBytes {
  repository: string;
  blobBytes: number;
  manifestBytes: number;
}

/** Bytes an hour of pulls sent to one configured network. */
export interface NetworkEgress {
  /** the hour's start */
  start: number;
  namespace: string;
  repository: string;
  network: string;
  bytes: number;
}

export type BudgetScope = 'namespace' | 'team';
export type BudgetThreshold = 'soft' | 'hard';

export interface Budget {
  scope: BudgetScope;
  /** the namespace's or the team's name */
  name: string;
  /** the budget per calendar month (UTC), in the price model's currency: the hard threshold */
  monthly: number;
  /** a lower threshold that only announces; null when none */
  soft: number | null;
  updatedBy: string;
  updatedAt: number;
}

/** Storage samples: written by one replica at a time, read as an integral. */
export interface StorageSamples {
  /**
   * Records a tick at `at` holding these samples, and ends the previous tick there. False (and
   * nothing written) when a tick at or after `at` exists: another replica sampled first.
   */
  recordSample(at: number, samples: StorageSample[]): Promise<boolean>;
  /** When the last tick was taken; undefined before the first. */
  lastSampleAt(): Promise<number | undefined>;
  /** Every repository's blobs (each linked blob in full) and manifests, for the sampler. */
  repositoryBytes(): Promise<RepositoryBytes[]>;
  /** Deletes the ticks (and their samples) that ended before `before`; how many ticks. */
  pruneSamples(before: number): Promise<number>;
}

export interface CostStore extends StorageSamples {
  /**
   * Each repository's usage over the window: storage integrated exactly (counted up to `now`),
   * egress and requests of the hours whose start lies in the window. Repositories with no usage are
   * left out.
   */
  usage(window: CostWindow, filter?: CostFilter): Promise<RepositoryUsage[]>;
  /** Where the network rollup has read the events up to; undefined before it started. */
  egressCursor(): Promise<EventCursor | undefined>;
  /**
   * Adds the rows to the network rollup and moves the cursor from `from` to `to`, in one
   * transaction; false (nothing written) when the cursor was no longer `from`.
   */
  addNetworkEgress(rows: NetworkEgress[], from: EventCursor | undefined, to: EventCursor): Promise<boolean>;
  getBudget(scope: BudgetScope, name: string): Promise<Budget | undefined>;
  listBudgets(): Promise<Budget[]>;
  /** Creates or replaces a budget; its thresholds count as not yet announced. */
  setBudget(budget: Budget): Promise<void>;
  deleteBudget(scope: BudgetScope, name: string): Promise<boolean>;
  /** Marks a threshold announced for `month` (e.g. '2026-11'); true only for the call that changed the mark. */
  markBudgetNotified(scope: BudgetScope, name: string, threshold: BudgetThreshold, month: string): Promise<boolean>;
  /** Takes (or renews) the lease `name` for `holder` until now + ttlMs, unless another holder's is still valid. */
  acquireLease(name: string, holder: string, now: number, ttlMs: number): Promise<boolean>;
  releaseLease(name: string, holder: string): Promise<void>;
}

/** The line items of some usage priced by a model. */
export interface LineItems {
  storage: { gbMonths: number; cost: number };
  egress: { gb: number; cost: number; networks: { network: string; gb: number; cost: number }[] };
  requests: { push: number; pull: number; cost: number };
  cost: number;
}

export const bytesPerGb = 1e9;
/** The name of the egress that no configured network took. */
export const defaultNetwork = 'default';

/** The egress bytes per network, the default one last; networks no longer configured are priced at the default price. */
export function egressSplit(
  u: Pick<RepositoryUsage, 'egressBytes' | 'egressByNetwork'>,
  model: PriceModel,
): { network: string; bytes: number; perGb: number }[] {
  const out: { network: string; bytes: number; perGb: number }[] = [];
  let rest = u.egressBytes;
  for (const n of model.egress.networks) {
    const bytes = Math.min(rest, u.egressByNetwork[n.name] ?? 0);
    if (bytes > 0) out.push({ network: n.name, bytes, perGb: n.perGb });
    rest -= bytes;
  }
  if (rest > 0) out.push({ network: defaultNetwork, bytes: rest, perGb: model.egress.perGb });
  return out;
}

/** Usage priced: storage by GB-month, egress by GB and network, requests by type. */
export function priceUsage(u: Omit<RepositoryUsage, 'namespace' | 'repository'>, model: PriceModel): LineItems {
  const storage = { gbMonths: u.storageGbMonths, cost: u.storageGbMonths * model.storagePerGbMonth };
  const networks = egressSplit(u, model).map((n) => ({ network: n.network, gb: n.bytes / bytesPerGb, cost: (n.bytes / bytesPerGb) * n.perGb }));
  const egress = { gb: u.egressBytes / bytesPerGb, cost: networks.reduce((s, n) => s + n.cost, 0), networks };
  const requests = { push: u.pushes, pull: u.pulls, cost: u.pushes * model.requests.push + u.pulls * model.requests.pull };
  return { storage, egress, requests, cost: storage.cost + egress.cost + requests.cost };
}

/** Whether the model prices anything: with every price 0, no cost needs computing. */
export const pricesAnything = (m: PriceModel): boolean =>
  m.storagePerGbMonth > 0 || m.egress.perGb > 0 || m.egress.networks.some((n) => n.perGb > 0) || m.requests.push > 0 || m.requests.pull > 0;

/** The start of the UTC calendar month that `at` falls in, and of the next one. */
export function monthOf(at: number): { start: number; end: number; name: string } {
  const d = new Date(at);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  return { start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1), name: `${y}-${String(m + 1).padStart(2, '0')}` };
}

/** What some namespaces' usage over a window costs (budgets and policy's `ns.costThisMonth` ask this). */
export async function costOf(store: Pick<CostStore, 'usage'>, model: PriceModel, window: CostWindow, namespaces: string[]): Promise<number> {
  if (namespaces.length === 0 || !pricesAnything(model)) return 0;
  let total = 0;
  for (const u of await store.usage(window, { namespaces })) total += priceUsage(u, model).cost;
  return total;
}
