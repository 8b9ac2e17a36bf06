/**
 * Quotas per namespace, counted fairly (docs/lifecycle.md, "Quotas").
 *
 * A namespace's usage is its fair share of the blobs its repositories link (a blob k namespaces
 * link counts size/k to each, src/meta/quota.ts) plus its manifests in full. A push that would take
 * the usage over the hard quota is refused before its bytes are kept: the registry core asks
 * checkBlob() from the blob write's beforeCommit hook, before an upload's part is moved into place
 * and before a mount links, and checkManifest() before a manifest is stored. A push that takes the
 * usage over the soft quota is let through and the crossing is logged, once: the mark lives in the
 * database, so of several replicas only the one whose update changed it logs.
 *
 * The exact usage reads every link of the namespace (tens of milliseconds at 20 000 blobs), too
 * much for every push. So a push is judged by an upper bound: the exact usage this replica last
 * read (at most `refreshMs` ago) plus everything stamped since, a margin earlier, in full, read
 * through an index on the recent links alone. Removals, and other namespaces sharing a blob, only
 * lower the true figure, so the bound is never below it: a push the bound admits, the exact figure
 * admits too. Only when the bound would refuse is the exact usage read, and that decides. The
 * bound is sound while the replicas' clocks (which stamp links) are within `marginMs` of each
 * other and a link commits within that margin of being stamped.
 *
 * The check reads the figures, then the push stores: two pushes that each fit can pass together
 * and overshoot the hard quota by what they add. That is the documented overshoot.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { MetaStore } from '../meta/metastore.ts';
import type { NamespaceUsage, PushFigures, QuotaSettings } from '../meta/quota.ts';
import { BoundedMap } from '../bounded-map.ts';
import { namespaceOf } from '../reference.ts';

/**
 * The bytes of a blob of `size` that one of the `namespaces` linking it is charged, when `before`
 * of them sort ahead of it by name: size / namespaces, rounded down, plus one of the leftover
 * size % namespaces bytes for each of the first ones. Over all of them the shares add up to size.
 */
export function fairShare(size: number, namespaces: number, before: number): number {
  if (!Number.isSafeInteger(size) || size < 0 || !Number.isSafeInteger(namespaces) || namespaces < 1 || before < 0 || before >= namespaces) {
    throw new RangeError(`no fair share of ${size} bytes among ${namespaces} namespaces for position ${before}`);
  }
  return Math.floor(size / namespaces) + (before < size % namespaces ? 1 : 0);
}

/** Why a push is refused, with the figures the message gives. */
export interface QuotaRefusal {
  message: string;
  namespace: string;
  usedBytes: number;
  pushBytes: number;
  quotaBytes: number;
}

/** A namespace's usage beside its quotas, as the API shows it. */
export interface UsageReport extends NamespaceUsage {
  /** what the quotas compare: fair blob bytes plus manifest bytes */
  usedBytes: number;
  hardQuotaBytes: number;
  softQuotaBytes: number;
  overSoftQuota: boolean;
  overHardQuota: boolean;
  /** when a push was first seen taking the usage over the soft quota, while it stays over */
  softExceededAt: number | null;
}

export interface RegistryUsageReport {
  namespaces: UsageReport[];
  /** the linked blobs, each once: equal to the sum of the namespaces' fairBlobBytes */
  physicalBlobBytes: number;
  manifestBytes: number;
}

/** The answer to a push: refused (with the figures), or admitted, with what to call once it is stored. */
export type QuotaVerdict = { refusal: QuotaRefusal } | { refusal?: undefined; stored: () => Promise<void> };

/** What the registry core asks before it keeps a push's bytes (src/oci/quota-gate.ts). */
export interface QuotaGuard {
  checkBlob(repo: string, digest: string, size: number): Promise<QuotaVerdict>;
  /** a cross-repository mount: the blob's size is what `from` holds */
  checkMount(repo: string, from: string, digest: string): Promise<QuotaVerdict>;
  checkManifest(repo: string, digest: string, size: number): Promise<QuotaVerdict>;
}

const admitted: QuotaVerdict = { stored: async () => {} };

/** How long an exact reading serves as the base of the bound, and how far back the bound looks before it. */
export const boundTimes = { refreshMs: 60_000, marginMs: 60_000 };

type Log = Pick<FastifyBaseLogger, 'info' | 'warn'>;

/** The usage a push is judged by: exact, or an upper bound of it. */
interface Judged {
  used: number;
  exact: boolean;
}

export class Quotas implements QuotaGuard {
  private readonly meta: Pick<MetaStore, 'quota' | 'accounts' | 'blobInRepo'>;
  private readonly log: Log;
  private readonly now: () => number;
  /** The clock links are stamped by (store.ts uses Date.now), not the injected one. */
  private readonly stampClock: () => number;
  /** Per namespace, the last exact reading and when it began. */
  private readonly readings = new BoundedMap<string, { at: number; used: number }>(10_000);

  constructor(meta: Pick<MetaStore, 'quota' | 'accounts' | 'blobInRepo'>, log: Log, now: () => number = Date.now, stampClock: () => number = Date.now) {
    this.meta = meta;
    this.log = log;
    this.now = now;
    this.stampClock = stampClock;
  }

  async checkBlob(repo: string, digest: string, size: number): Promise<QuotaVerdict> {
    const namespace = namespaceOf(repo);
    const settings = await this.settings(namespace);
    return settings ? this.blobCost(namespace, settings, digest, size) : admitted;
  }

  async checkMount(repo: string, from: string, digest: string): Promise<QuotaVerdict> {
    const namespace = namespaceOf(repo);
    const settings = await this.settings(namespace);
    const size = settings && (await this.meta.blobInRepo(from, digest));
    return settings && size !== undefined ? this.blobCost(namespace, settings, digest, size) : admitted;
  }

  async checkManifest(repo: string, digest: string, size: number): Promise<QuotaVerdict> {
    const namespace = namespaceOf(repo);
    const settings = await this.settings(namespace);
    if (!settings) return admitted;
    const { judged, figures } = await this.figures(namespace, { manifest: { repo, digest } });
    return this.judge(namespace, settings, judged, figures.manifestStored ? 0 : size, 'manifest');
  }

  /** The namespace's quotas, or nothing to check: a namespace without them costs the push path one primary-key read. */
  private async settings(namespace: string): Promise<QuotaSettings | undefined> {
    const settings = await this.meta.quota.settings(namespace);
    return settings && (settings.hardBytes > 0 || settings.softBytes > 0) ? settings : undefined;
  }

  private async blobCost(namespace: string, settings: QuotaSettings, digest: string, size: number): Promise<QuotaVerdict> {
    const { judged, figures } = await this.figures(namespace, { blob: digest });
    const blob = figures.blob ?? { linkedHere: false, otherNamespaces: 0, namespacesBefore: 0 };
    const cost = blob.linkedHere ? 0 : fairShare(size, blob.otherNamespaces + 1, blob.namespacesBefore);
    return this.judge(namespace, settings, judged, cost, 'blob');
  }

  /** The push's figures with the usage as the bound, from the last exact reading; or exact, when there is none fresh. */
  private async figures(
    namespace: string,
    question: { blob?: string; manifest?: { repo: string; digest: string } },
  ): Promise<{ judged: Judged; figures: PushFigures }> {
    const last = this.readings.get(namespace);
    const now = this.stampClock();
    if (last && now - last.at < boundTimes.refreshMs) {
      const figures = await this.meta.quota.pushFigures(namespace, { ...question, addedSince: last.at - boundTimes.marginMs });
      return { judged: { used: last.used + (figures.addedBytes ?? 0), exact: false }, figures };
    }
    const figures = await this.meta.quota.pushFigures(namespace, question);
    return { judged: this.read(namespace, now, figures.usedBytes ?? 0), figures };
  }

  /** The exact usage now (and the base of the next bounds). */
  private async exact(namespace: string): Promise<Judged> {
    const at = this.stampClock();
    const figures = await this.meta.quota.pushFigures(namespace, {});
    return this.read(namespace, at, figures.usedBytes ?? 0);
  }

  private read(namespace: string, at: number, used: number): Judged {
    this.readings.set(namespace, { at, used });
    return { used, exact: true };
  }

  async usage(namespace: string): Promise<UsageReport> {
    const at = this.stampClock();
    const [usage, settings] = await Promise.all([this.meta.quota.usage(namespace), this.meta.quota.settings(namespace)]);
    const report = reportOf(usage, settings);
    this.read(namespace, at, report.usedBytes);
    // What GC freed since the last push is noticed here too (the next crossing is logged again),
    // and a namespace found over it (its soft quota was lowered) is marked and logged.
    const exact = { used: report.usedBytes, exact: true };
    const back = await this.backUnder(namespace, settings, exact);
    const marked = await this.crossed(namespace, settings, exact, back || settings?.softExceededAt === null);
    return { ...report, softExceededAt: report.overSoftQuota ? (marked ?? settings?.softExceededAt ?? null) : null };
  }

  async registry(): Promise<RegistryUsageReport> {
    const [usage, namespaces] = await Promise.all([this.meta.quota.registryUsage(), this.meta.accounts.listNamespaces()]);
    const settings = new Map(namespaces.map((n) => [n.name, n]));
    const reports = new Map(
      usage.namespaces.map((u) => {
        const s = settings.get(u.namespace);
        return [u.namespace, reportOf(u, s && { hardBytes: s.quotaBytes, softBytes: s.softQuotaBytes, softExceededAt: null })];
      }),
    );
    // namespaces with settings but nothing stored yet are listed too, at zero
    for (const n of namespaces) {
      if (!reports.has(n.name)) {
        const empty = { namespace: n.name, fairBlobBytes: 0, physicalBlobBytes: 0, manifestBytes: 0, blobs: 0, sharedBlobs: 0, manifests: 0 };
        reports.set(n.name, reportOf(empty, { hardBytes: n.quotaBytes, softBytes: n.softQuotaBytes, softExceededAt: null }));
      }
    }
    const list = [...reports.values()].sort((a, b) => (a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0));
    return { namespaces: list, physicalBlobBytes: usage.physicalBlobBytes, manifestBytes: usage.manifestBytes };
  }

  private async judge(namespace: string, settings: QuotaSettings, judged: Judged, cost: number, what: string): Promise<QuotaVerdict> {
    const hard = settings.hardBytes;
    // A push that adds nothing (a layer the namespace holds already) passes even over the quota.
    // The bound decides only to admit: a refusal is judged by the exact usage.
    const over = (j: Judged) => hard > 0 && cost > 0 && j.used + cost > hard;
    if (over(judged) && !judged.exact) judged = await this.exact(namespace);
    if (over(judged)) {
      return {
        refusal: {
          message: `namespace ${namespace} is over its hard quota: it uses ${judged.used} bytes (fair share), this ${what} would add ${cost}, and the quota is ${hard} bytes`,
          namespace,
          usedBytes: judged.used,
          pushBytes: cost,
          quotaBytes: hard,
        },
      };
    }
    const back = await this.backUnder(namespace, settings, judged);
    const unmarked = back || settings.softExceededAt === null;
    const after = { used: judged.used + cost, exact: judged.exact };
    return { stored: async () => void (await this.crossed(namespace, settings, after, unmarked, { pushBytes: cost, push: what })) };
  }

  /**
   * A crossing of the soft quota is logged once. The mark in the database is set only after the
   * push that crosses is stored (so it never stands for bytes not yet counted), by a conditional
   * update that one replica wins; it is cleared when a later look finds the usage back under,
   * which, since the mark came after those bytes were counted, means something was removed. A
   * bound at or under the soft quota means the exact usage is too; one over it is read exactly
   * before anything is marked.
   */
  private async backUnder(namespace: string, settings: QuotaSettings | undefined, judged: Judged): Promise<boolean> {
    const soft = settings?.softBytes ?? 0;
    if (soft === 0 || judged.used > soft || settings?.softExceededAt === null || settings?.softExceededAt === undefined) return false;
    if (await this.meta.quota.markSoftExceeded(namespace, null))
      this.log.info({ namespace, usedBytes: judged.used, softQuotaBytes: soft }, 'namespace is back under its soft quota');
    return true;
  }

  /** Marks and logs a crossing (when the mark was not set); the mark's time when this call set it. */
  private async crossed(
    namespace: string,
    settings: QuotaSettings | undefined,
    judged: Judged,
    unmarked: boolean,
    push?: { pushBytes: number; push: string },
  ): Promise<number | undefined> {
    const soft = settings?.softBytes ?? 0;
    if (soft === 0 || judged.used <= soft || !unmarked) return undefined;
    try {
      // the push is stored now, so the exact usage counts it
      const used = judged.exact ? judged.used : (await this.exact(namespace)).used;
      if (used <= soft) return undefined;
      const at = this.now();
      if (!(await this.meta.quota.markSoftExceeded(namespace, at))) return undefined;
      this.log.warn(
        { namespace, usedBytes: used, softQuotaBytes: soft, ...push },
        `namespace ${namespace} crossed its soft quota: it uses ${used} of ${soft} bytes`,
      );
      return at;
    } catch (err) {
      // the push is stored: a failure to note it must not fail the request
      this.log.warn({ err, namespace }, 'could not note a crossing of the soft quota');
      return undefined;
    }
  }
}

function reportOf(usage: NamespaceUsage, settings: QuotaSettings | undefined): UsageReport {
  const usedBytes = usage.fairBlobBytes + usage.manifestBytes;
  const hard = settings?.hardBytes ?? 0;
  const soft = settings?.softBytes ?? 0;
  return {
    ...usage,
    usedBytes,
    hardQuotaBytes: hard,
    softQuotaBytes: soft,
    overSoftQuota: soft > 0 && usedBytes > soft,
    overHardQuota: hard > 0 && usedBytes > hard,
    softExceededAt: soft > 0 && usedBytes > soft ? (settings?.softExceededAt ?? null) : null,
  };
}
