/**
 * The cost as FinOps FOCUS 1.x CSV (https://focus.finops.org), which OpenCost-style tooling ingests.
 *
 * Granularity: one row per repository, charge and UTC day of the window (a day cut by the
 * window's ends is cut the same way). The charges are storage (GB-months of fair bytes), egress
 * per network (GB) and push and pull requests; a charge with no quantity that day has no row.
 * SubAccount is the namespace, ResourceId the repository, Tags the namespace's labels. List,
 * contracted, billed and effective cost are the same figure: the price model has no discounts.
 * Dates are ISO 8601 UTC, numbers plain decimals (never exponents), nulls empty fields, fields
 * quoted as RFC 4180 says, lines ending CRLF.
 */
import { dayMs } from '../../meta/insight.ts';
import { egressSplit, monthOf, type PriceModel, type RepositoryUsage } from '../../meta/cost.ts';
import type { MetaStore } from '../../meta/metastore.ts';
import { iso, namespaceLabels } from './report.ts';

/** The config's insight.cost.focus: the columns that are the same on every row. */
export interface FocusSettings {
  provider: string;
  invoiceIssuer: string;
  billingAccountId: string;
  billingAccountName: string;
  serviceName: string;
  region?: string | undefined;
}

/** The FOCUS 1.x columns this export writes, in order. */
export const focusColumns = [
  'BilledCost',
  'BillingAccountId',
  'BillingAccountName',
  'BillingCurrency',
  'BillingPeriodEnd',
  'BillingPeriodStart',
  'ChargeCategory',
  'ChargeClass',
  'ChargeDescription',
  'ChargeFrequency',
  'ChargePeriodEnd',
  'ChargePeriodStart',
  'ConsumedQuantity',
  'ConsumedUnit',
  'ContractedCost',
  'ContractedUnitPrice',
  'EffectiveCost',
  'InvoiceIssuerName',
  'ListCost',
  'ListUnitPrice',
  'PricingCategory',
  'PricingQuantity',
  'PricingUnit',
  'ProviderName',
  'PublisherName',
  'RegionId',
  'RegionName',
  'ResourceId',
  'ResourceName',
  'ResourceType',
  'ServiceCategory',
  'ServiceName',
  'SkuId',
  'SkuPriceId',
  'SubAccountId',
  'SubAccountName',
  'Tags',
] as const;

export type FocusColumn = (typeof focusColumns)[number];
export type FocusRow = Record<FocusColumn, string | null>;

/** A plain decimal: no exponent, at most 12 places, no trailing zeros. */
export function decimal(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`not a finite number: ${n}`);
  const fixed = n.toFixed(12).replace(/\.?0+$/, '');
  return fixed === '-0' ? '0' : fixed;
}

interface Charge {
  sku: string;
  skuPrice: string;
  category: 'Storage' | 'Networking';
  description: string;
  quantity: number;
  unit: string;
  price: number;
}

/** The charges of one repository's usage. */
export function chargesOf(u: RepositoryUsage, model: PriceModel): Charge[] {
  const charges: Charge[] = [];
  if (u.storageGbMonths > 0)
    charges.push({
      sku: 'storage',
      skuPrice: 'storage',
      category: 'Storage',
      description: `Storage of ${u.repository}: its fair share of shared blobs, plus its manifests`,
      quantity: u.storageGbMonths,
      unit: 'GB-Month',
      price: model.storagePerGbMonth,
    });
  for (const n of egressSplit(u, model))
    charges.push({
      sku: 'egress',
      skuPrice: `egress:${n.network}`,
      category: 'Networking',
      description: `Egress of ${u.repository} to network ${n.network}`,
      quantity: n.bytes / 1e9,
      unit: 'GB',
      price: n.perGb,
    });
  for (const [type, count, price] of [
    ['push', u.pushes, model.requests.push],
    ['pull', u.pulls, model.requests.pull],
  ] as const)
    if (count > 0)
      charges.push({
        sku: 'requests',
        skuPrice: `requests:${type}`,
        category: 'Storage',
        description: `${type} requests to ${u.repository}`,
        quantity: count,
        unit: 'Requests',
        price,
      });
  return charges;
}

/** The rows of [since, until), day by day. */
export async function focusRows(
  meta: MetaStore,
  model: PriceModel,
  focus: FocusSettings,
  window: { since: number; until: number; now: number },
  /** only these namespaces; undefined: all */
  namespaces?: string[],
): Promise<FocusRow[]> {
  const labels = await namespaceLabels(meta);
  const rows: FocusRow[] = [];
  for (let from = window.since; from < window.until;) {
    const to = Math.min(window.until, (Math.floor(from / dayMs) + 1) * dayMs);
    const billing = monthOf(from);
    for (const u of await meta.cost.usage({ since: from, until: to, now: window.now }, namespaces ? { namespaces } : {})) {
      for (const c of chargesOf(u, model)) {
        const cost = decimal(c.quantity * c.price);
        rows.push({
          BilledCost: cost,
          BillingAccountId: focus.billingAccountId,
          BillingAccountName: focus.billingAccountName,
          BillingCurrency: model.currency,
          BillingPeriodEnd: iso(billing.end),
          BillingPeriodStart: iso(billing.start),
          ChargeCategory: 'Usage',
          ChargeClass: null,
          ChargeDescription: c.description,
          ChargeFrequency: 'Usage-Based',
          ChargePeriodEnd: iso(to),
          ChargePeriodStart: iso(from),
          ConsumedQuantity: decimal(c.quantity),
          ConsumedUnit: c.unit,
          ContractedCost: cost,
          ContractedUnitPrice: decimal(c.price),
          EffectiveCost: cost,
          InvoiceIssuerName: focus.invoiceIssuer,
          ListCost: cost,
          ListUnitPrice: decimal(c.price),
          PricingCategory: 'Standard',
          PricingQuantity: decimal(c.quantity),
          PricingUnit: c.unit,
          ProviderName: focus.provider,
          PublisherName: focus.provider,
          RegionId: focus.region ?? null,
          RegionName: focus.region ?? null,
          ResourceId: u.repository,
          ResourceName: u.repository,
          ResourceType: 'Repository',
          ServiceCategory: c.category,
          ServiceName: focus.serviceName,
          SkuId: c.sku,
          SkuPriceId: c.skuPrice,
          SubAccountId: u.namespace,
          SubAccountName: u.namespace,
          Tags: JSON.stringify(labels.get(u.namespace) ?? {}),
        });
      }
    }
    from = to;
  }
  return rows;
}

/** One CSV field: quoted when it holds a comma, a quote or a line break (RFC 4180); null is empty. */
export function csvField(v: string | null): string {
  if (v === null) return '';
  return /[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

export function focusCsv(rows: FocusRow[]): string {
  const lines = [focusColumns.join(','), ...rows.map((r) => focusColumns.map((c) => csvField(r[c])).join(','))];
  return lines.join('\r\n') + '\r\n';
}
