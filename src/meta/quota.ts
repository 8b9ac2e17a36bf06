/**
 * What quotas (src/lifecycle/quota.ts) ask of the metadata: how much a namespace stores, counted
 * fairly, and the little state a soft quota keeps so that a crossing is logged once.
 *
 * Fair counting: a blob that repositories of k distinct namespaces link counts size/k to each of
 * them (links from several repositories of one namespace count once for it). Bytes are whole, so
 * each namespace gets floor(size/k), and the size mod k bytes left over go one each to the first
 * namespaces in byte order of their names: the shares of a blob always add up to its size, and
 * the fair figures of all namespaces to the physical bytes of the linked blobs. Manifests live in
 * the database, one row per repository, and count in full to their namespace.
 */

export interface NamespaceUsage {
  namespace: string;
  /** the namespace's fair share of the blobs its repositories link */
  fairBlobBytes: number;
  /** the same blobs counted in full (what the namespace would hold alone) */
  physicalBlobBytes: number;
  /** its manifests, in full */
  manifestBytes: number;
  /** distinct blobs linked, and how many of them another namespace links too */
  blobs: number;
  sharedBlobs: number;
  manifests: number;
}

export interface RegistryUsage {
  /** every namespace that links a blob or holds a manifest, by name */
  namespaces: NamespaceUsage[];
  /** bytes of the distinct linked blobs, each once: the sum of the namespaces' fair blob bytes */
  physicalBlobBytes: number;
  manifestBytes: number;
}

/** A namespace's quotas, as the push path reads them. */
export interface QuotaSettings {
  /** refuse a push that would take the fair usage over this; 0: none */
  hardBytes: number;
  /** log and show a crossing of this; 0: none */
  softBytes: number;
  /** when a push was last seen taking the usage over the soft quota; null when not over */
  softExceededAt: number | null;
}

/** What a push would change, from one query: the usage (or what was added lately) and how a blob or manifest stands. */
export interface PushFigures {
  /** fair blob bytes plus manifest bytes, now (asked without `addedSince`) */
  usedBytes?: number;
  /**
   * asked with `addedSince`: the blobs linked to the namespace's repositories since then, each in
   * full and once per link, plus the manifests stored since; never less than what they added
   */
  addedBytes?: number;
  blob?: {
    /** a repository of this namespace links it already: it costs nothing more */
    linkedHere: boolean;
    /** how many other namespaces link it, and how many of those sort before this one */
    otherNamespaces: number;
    namespacesBefore: number;
  };
  /** the repository holds the manifest already: storing it again costs nothing */
  manifestStored?: boolean;
}

export interface QuotaStore {
  /** The namespace's quotas; undefined when it has no settings (no quota). */
  settings(namespace: string): Promise<QuotaSettings | undefined>;
  usage(namespace: string): Promise<NamespaceUsage>;
  registryUsage(): Promise<RegistryUsage>;
  /**
   * The usage, or with `addedSince` (ms since the epoch, as links and manifests are stamped) what
   * was added since, and the standing of a blob (by digest) or a manifest (repository and digest),
   * in one query. The first reads every link of the namespace; the second only the recent ones.
   */
  pushFigures(namespace: string, question: { blob?: string; manifest?: { repo: string; digest: string }; addedSince?: number }): Promise<PushFigures>;
  /**
   * Marks the namespace over its soft quota since `at`, or no longer over (null). True only when
   * this call changed the mark: of several replicas noticing the same crossing, one logs it.
   */
  markSoftExceeded(namespace: string, at: number | null): Promise<boolean>;
}
