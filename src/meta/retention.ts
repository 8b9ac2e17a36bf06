/**
 * What retention (src/lifecycle/retention*.ts) keeps in the shared metadata store: the rule sets
 * of namespaces and repositories, how often and how lately each manifest was pulled, the log of
 * runs, and the lease that lets one replica at a time run a real run. It also answers the reads a
 * run plans from (a repository's tags, manifests and the edges between them) and the conditional
 * deletes it ends with. The store keeps rule documents as JSON; lifecycle gives them meaning.
 */

export type RulesKind = 'namespace' | 'repository';

export interface StoredRules {
  kind: RulesKind;
  /** the namespace, or the repository's full name */
  name: string;
  /** the validated document, as JSON */
  document: unknown;
  /** the text as it was set (YAML or JSON), for `show` */
  source: string;
  updatedBy: string;
  updatedAt: number;
}

/** Rule sets, one per namespace and one per repository at most. */
export interface RetentionRuleSets {
  /** Sets (creates or replaces) a rule set; `created` when there was none. */
  putRules(rules: StoredRules): Promise<{ created: boolean }>;
  getRules(kind: RulesKind, name: string): Promise<StoredRules | undefined>;
  deleteRules(kind: RulesKind, name: string): Promise<boolean>;
  /** Every rule set (or those of one namespace and its repositories), by kind and name. */
  listRules(namespace?: string): Promise<StoredRules[]>;
}

export interface PullCount {
  repo: string;
  digest: string;
  /** ms since the epoch */
  lastPulledAt: number;
  count: number;
}

/** Pulls per manifest, written in batches by src/lifecycle/pulls.ts. */
export interface PullCounts {
  /** Adds the counts and keeps the later of the two times, for each (repo, digest): replicas add up. */
  recordPulls(pulls: PullCount[]): Promise<void>;
  pullsOf(repo: string): Promise<PullCount[]>;
}

/** A repository as a run plans from it: no manifest bytes, only what the rules and edges need. */
export interface RepositoryContents {
  tags: { name: string; digest: string; updatedAt: number }[];
  manifests: { digest: string; mediaType: string; subject?: string; size: number; createdAt: number }[];
  /** an index (parent) and each manifest it lists (child) */
  children: { parent: string; child: string }[];
  pulls: { digest: string; lastPulledAt: number; count: number }[];
}

/** The reads a run plans from, and the conditional deletes it ends with. */
export interface RetentionFacts {
  /** The repositories of a namespace (named `ns` or `ns/…`), sorted. */
  repositoriesIn(namespace: string): Promise<string[]>;
  contents(repo: string): Promise<RepositoryContents>;
  /** The blobs (config, layers) each of these manifests of `repo` references. */
  blobsOf(repo: string, digests: string[]): Promise<{ digest: string; blob: string }[]>;
  /** For each blob: its size, and how many manifests in the whole registry reference it. */
  blobReferences(blobs: string[]): Promise<{ blob: string; size: number; references: number }[]>;
  /** Deletes the tag if it still points at `digest` and was not pushed again since `updatedAt`. */
  deleteTagIf(repo: string, tag: string, digest: string, updatedAt: number): Promise<boolean>;
  /**
   * Deletes the manifest (and what it references, as deleteManifest does) only if no tag points
   * at it and no index of the repository lists it, checked under lock: a push that tagged it
   * again meanwhile keeps it.
   */
  deleteManifestIfUnused(repo: string, digest: string): Promise<boolean>;
  /** Drops the pull counts of deleted manifests. */
  forgetPulls(repo: string, digests: string[]): Promise<void>;
}

export type RunStatus = 'running' | 'done' | 'failed';

export interface RunCounts {
  repositories: number;
  tagsDeleted: number;
  manifestsDeleted: number;
  /** deletions a policy vetoed (kept) */
  vetoed: number;
  errors: number;
  /** bytes of the blobs that no remaining manifest would reference (an estimate) */
  bytes: number;
  blobs: number;
  /** bytes of the deleted manifests themselves */
  manifestBytes: number;
}

export interface RetentionRun {
  id: string;
  /** 'schedule' or 'api' */
  trigger: string;
  actor: string;
  /** what it covers: every rule set, a namespace, or a repository */
  scope: { kind: 'all' } | { kind: RulesKind; name: string };
  /** the namespace of the scope, for filtering; undefined for 'all' */
  namespace?: string;
  dryRun: boolean;
  status: RunStatus;
  startedAt: number;
  /** the last heartbeat or progress */
  updatedAt: number;
  finishedAt?: number;
  phase: string;
  done: number;
  total: number;
  counts: RunCounts;
  error?: string;
  /** what it deleted or would delete (JSON); only from getRun */
  result?: unknown;
}

export interface RunFilter {
  namespace?: string;
  /** only runs whose scope is the whole registry */
  registryWide?: boolean;
}

/** The log of runs and the lease of the one real run at a time. */
export interface RetentionRuns {
  createRun(run: RetentionRun): Promise<void>;
  updateRun(
    id: string,
    change: Partial<Pick<RetentionRun, 'status' | 'phase' | 'done' | 'total' | 'counts' | 'error' | 'finishedAt' | 'result'>> & { updatedAt: number },
  ): Promise<void>;
  getRun(id: string): Promise<RetentionRun | undefined>;
  /** Newest first, without results; `before` is the `next` of the previous page. */
  listRuns(filter: RunFilter, page: { limit: number; before?: string }): Promise<{ runs: RetentionRun[]; next?: string }>;
  /** When the last scheduled run started. */
  lastScheduledStart(): Promise<number | undefined>;
  /** Marks runs still 'running' whose heartbeat is older than `before` as failed (their replica stopped); how many. */
  failStaleRuns(before: number, now: number): Promise<number>;
  /** Deletes runs that finished before `before`; how many. */
  pruneRuns(before: number): Promise<number>;
  /** Takes (or renews) the lease `name` for `holder` until now + ttlMs, unless another holder's lease is still valid. */
  acquireLease(name: string, holder: string, now: number, ttlMs: number): Promise<boolean>;
  releaseLease(name: string, holder: string): Promise<void>;
}

export interface RetentionStore extends RetentionRuleSets, PullCounts, RetentionFacts, RetentionRuns {}
