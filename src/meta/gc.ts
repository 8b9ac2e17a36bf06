/**
 * What online garbage collection asks of the metadata (src/lifecycle/gc.ts runs it).
 *
 * Nothing is marked in memory: what is garbage is what the database says, and every sweep takes
 * the rows it deletes under lock and checks them again in the same transaction, so a manifest PUT,
 * blob link or mount that commits first keeps its rows, and one that commits after finds them gone
 * and fails cleanly. That is what makes it correct with several replicas on one database. The
 * grace period protects what was written or linked recently (touched_at), such as a push whose
 * manifest has not arrived yet.
 */

/** What a run removed (or, for a plan, would remove). */
export interface GcCounts {
  /** untagged manifests that nothing reaches, in namespaces that collect them */
  manifests: number;
  /** repository links to blobs that no manifest of the repository references */
  links: number;
  /** blobs that no repository links, with their bytes */
  blobs: number;
  bytes: number;
}

export type GcPhase = 'plan' | 'manifests' | 'links' | 'blobs' | 'done';

export interface GcRun {
  id: string;
  state: 'running' | 'done' | 'failed';
  dryRun: boolean;
  phase: GcPhase;
  /** the replica (process) that runs it now */
  owner: string;
  startedAt: number;
  heartbeatAt: number;
  finishedAt?: number;
  graceMs: number;
  /** how many times another process took over a run whose owner stopped */
  resumed: number;
  planned: GcCounts;
  done: GcCounts;
  error?: string;
}

export interface GcSweep {
  /** how many rows were removed */
  count: number;
  /** keyset position to continue from; undefined when the phase has nothing more */
  next?: string;
}

export interface ClaimRun {
  id: string;
  owner: string;
  dryRun: boolean;
  graceMs: number;
  now: number;
  staleMs: number;
  /** only take over an unfinished run; start none */
  resumeOnly?: boolean;
}

export interface GcStore {
  /**
   * What a run with this cutoff would remove now (the dry run's answer, and a run's progress
   * total), read in short queries with `between` awaited after each (to let requests go first).
   */
  plan(cutoff: number, between?: () => Promise<void>): Promise<GcCounts>;
  /**
   * Deletes up to `limit` untagged manifests touched before `cutoff` that no tag, index or
   * subject holds, in namespaces whose settings collect untagged manifests. Deleting one can free
   * others (an index's children), so the caller repeats until nothing is removed.
   */
  sweepManifests(cutoff: number, limit: number): Promise<number>;
  /** Deletes up to `limit` blob links created before `cutoff` that no manifest of their repository references, after `after`. */
  sweepLinks(cutoff: number, limit: number, after?: string): Promise<GcSweep>;
  /**
   * Deletes up to `limit` blobs touched before `cutoff` that no repository links, after `after`:
   * `removeBytes` is called with them while their rows are still locked, and the rows go only
   * once it resolves, so a blob row never outlives its bytes' deletion by a crash in between.
   */
  sweepBlobs(
    cutoff: number,
    limit: number,
    removeBytes: (blobs: { digest: string; size: number }[]) => Promise<void>,
    after?: string,
  ): Promise<GcSweep & { bytes: number }>;

  /**
   * Starts a run, or takes over the unfinished one whose heartbeat is older than `staleMs`.
   * Undefined when another process's run is alive: one run at a time across replicas.
   */
  claimRun(run: ClaimRun): Promise<GcRun | undefined>;
  /** Records progress; false when the run is no longer this owner's (another took it over). */
  updateRun(
    id: string,
    owner: string,
    change: Partial<Pick<GcRun, 'state' | 'phase' | 'planned' | 'done' | 'error' | 'finishedAt'>> & { heartbeatAt: number },
  ): Promise<boolean>;
  getRun(id: string): Promise<GcRun | undefined>;
  /** Newest first. */
  listRuns(page: { limit: number; before?: string }): Promise<GcRun[]>;
}
