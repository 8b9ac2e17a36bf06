/**
 * Cost reports: the usage over [since, until) (meta.cost.usage) grouped by namespace, team,
 * repository or a namespace label, each group priced with the one formula (priceUsage).
 *
 * A namespace's team is the value of its `team` label (docs/decisions.md says why not its grants):
 * each namespace belongs to one team at most, so the teams' figures add up to the registry's.
 * Namespaces without that label (or without the label a `label:<key>` grouping names) are the
 * group "" in the rows.
 */
import { priceUsage, type CostWindow, type LineItems, type PriceModel, type RepositoryUsage } from '../../meta/cost.ts';
import type { MetaStore } from '../../meta/metastore.ts';

export type CostGrouping = { kind: 'namespace' } | { kind: 'team' } | { kind: 'repository' } | { kind: 'label'; key: string };

/** The label a namespace's team is read from. */
export const teamLabel = 'team';

/** `namespace`, `team`, `repository` or `label:<key>`; undefined for anything else. */
export function parseGrouping(by: string): CostGrouping | undefined {
  if (by === 'namespace' || by === 'team' || by === 'repository') return { kind: by };
  const m = /^label:([A-Za-z0-9][A-Za-z0-9._/-]{0,62})$/.exec(by);
  return m ? { kind: 'label', key: m[1]! } : undefined;
}

export const groupingName = (g: CostGrouping): string => (g.kind === 'label' ? `label:${g.key}` : g.kind);

export interface CostRow extends LineItems {
  /** the namespace, team, repository or label value ("" for namespaces without the team or label) */
  key: string;
}

export interface CostReport {
  currency: string;
  since: string;
  until: string;
  by: string;
  rows: CostRow[];
  total: LineItems;
}

/** Usage with no namespace or repository: what a group adds up to. */
export type Usage = Omit<RepositoryUsage, 'namespace' | 'repository'>;

export const noUsage = (): Usage => ({ storageGbMonths: 0, egressBytes: 0, egressByNetwork: {}, pushes: 0, pulls: 0 });

export function addUsage(into: Usage, u: Usage): Usage {
  into.storageGbMonths += u.storageGbMonths;
  into.egressBytes += u.egressBytes;
  into.pushes += u.pushes;
  into.pulls += u.pulls;
  for (const [network, bytes] of Object.entries(u.egressByNetwork)) into.egressByNetwork[network] = (into.egressByNetwork[network] ?? 0) + bytes;
  return into;
}

/** Each namespace's labels, for grouping by team or label. */
export async function namespaceLabels(meta: MetaStore): Promise<Map<string, Record<string, string>>> {
  return new Map((await meta.accounts.listNamespaces()).map((n) => [n.name, n.labels]));
}

export function groupKey(u: RepositoryUsage, g: CostGrouping, labels: Map<string, Record<string, string>>): string {
  switch (g.kind) {
    case 'namespace':
      return u.namespace;
    case 'repository':
      return u.repository;
    case 'team':
      return labels.get(u.namespace)?.[teamLabel] ?? '';
    case 'label':
      return labels.get(u.namespace)?.[g.key] ?? '';
  }
}

export interface ReportQuestion {
  window: CostWindow;
  by: CostGrouping;
  /** only these namespaces; undefined: all */
  namespaces?: string[];
}

export async function costReport(meta: MetaStore, model: PriceModel, q: ReportQuestion): Promise<CostReport> {
  const [usage, labels] = await Promise.all([
    meta.cost.usage(q.window, q.namespaces ? { namespaces: q.namespaces } : {}),
    q.by.kind === 'team' || q.by.kind === 'label' ? namespaceLabels(meta) : Promise.resolve(new Map<string, Record<string, string>>()),
  ]);
  const groups = new Map<string, Usage>();
  const total = noUsage();
  for (const u of usage) {
    const key = groupKey(u, q.by, labels);
    addUsage(groups.get(key) ?? groups.set(key, noUsage()).get(key)!, u);
    addUsage(total, u);
  }
  const rows = [...groups]
    .map(([key, u]) => ({ key, ...priceUsage(u, model) }))
    .sort((a, b) => b.cost - a.cost || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { currency: model.currency, since: iso(q.window.since), until: iso(q.window.until), by: groupingName(q.by), rows, total: priceUsage(total, model) };
}

/** ISO 8601 UTC without milliseconds when there are none: 2026-11-01T00:00:00Z. */
export function iso(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

/** The namespaces a team's budget covers: those whose team label names it. */
export function namespacesOfTeam(team: string, labels: Map<string, Record<string, string>>): string[] {
  return [...labels].filter(([, l]) => l[teamLabel] === team).map(([name]) => name);
}
