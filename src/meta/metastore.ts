/**
 * MetaStore: everything about artifacts except their bytes — repositories, which blobs each
 * repository may serve, manifests, tags, referrers and upload sessions. Upload sessions live
 * here (not in a process) so that any replica can continue an upload another one started.
 */
import type { AccountStore } from './accounts.ts';
import type { TufStore } from './tuf.ts';
import type { TrustStore } from './trust.ts';
import type { PolicyStore } from './policy.ts';
import type { GcStore } from './gc.ts';
import type { QuotaStore } from './quota.ts';
import type { RetentionStore } from './retention.ts';
import type { QueryStore } from './query.ts';
import type { InsightStore } from './insight.ts';
import type { CostStore } from './cost.ts';
import type { WebhookStore } from './webhooks.ts';
import type { LeaseStore } from './leases.ts';
import type { RateStore } from './rates.ts';

export interface ManifestRecord {
  repo: string;
  digest: string;
  mediaType: string;
  content: Uint8Array;
  /** the manifest's artifactType, else its config's media type (what the referrers API shows) */
  artifactType?: string;
  subject?: string;
  annotations?: Record<string, string>;
}

export interface NewManifest extends ManifestRecord {
  /** blobs (config, layers) that must be linked to the repository */
  blobs: string[];
  /** child manifests (of an index) that must exist in the repository */
  manifests: string[];
  /** tag to point at this manifest, when pushed by tag */
  tag?: string;
}

export type PutManifestResult = { ok: true } | { ok: false; missing: string };

export interface UploadPart {
  start: number;
  size: number;
  /** sha256 of the part's bytes, hex, computed as they streamed in */
  sha256: string;
  /** where the part's bytes are in the BlobStore */
  key: string;
}

export interface Upload {
  id: string;
  repo: string;
  offset: number;
  parts: UploadPart[];
  createdAt: number;
}

export interface Page {
  n: number;
  last?: string;
}

/** Which blobs each repository may serve (the bytes themselves are in the BlobStore). */
export interface BlobLinks {
  /**
   * Called before a blob's bytes are written to its key: restarts the GC's grace period for the
   * blob (creating its row, unlinked, when new), so a sweep cannot take the bytes being written.
   * Answers the size the row had: 0 for a new blob or one never linked, otherwise the size of
   * bytes that were stored once (a crash in a sweep can leave the row and not the bytes).
   */
  touchBlob(digest: string): Promise<{ linkedSize: number }>;
  /**
   * Links a blob whose bytes were just written under its digest to a repository (creating the
   * repository). `collected` is true when the blob's row had been swept since touchBlob (a write
   * that outlasted the grace period): the bytes may be gone, and the caller must check them. With
   * `afterTouch` (the caller touched the blob before writing), a collected blob's row is made again
   * but not linked: the caller links it once it has seen the bytes, and never has to unlink, which
   * would take away a link another upload made meanwhile. With `endUpload`, the upload of that id
   * (its record and its parts' rows) goes in the same statement as the link, if the link is made:
   * `uploadEnded` says so. For an upload that has nothing left in the BlobStore.
   */
  linkBlob(
    repo: string,
    digest: string,
    size: number,
    options?: { afterTouch?: boolean; endUpload?: string },
  ): Promise<{ collected: boolean; uploadEnded?: boolean }>;
  /** Links a blob that `from` may serve to `repo` as well (a mount); its size, or undefined when `from` has no such blob. */
  linkExistingBlob(repo: string, from: string, digest: string): Promise<number | undefined>;
  /** The blob's size, if the repository may serve it. */
  blobInRepo(repo: string, digest: string): Promise<number | undefined>;
  unlinkBlob(repo: string, digest: string): Promise<boolean>;
}

/** Upload sessions, shared by every replica. */
export interface UploadSessions {
  createUpload(id: string, repo: string): Promise<void>;
  getUpload(id: string): Promise<Upload | undefined>;
  /** Appends a part if the upload's offset is still `part.start`; false when another write won. */
  appendUploadPart(id: string, part: UploadPart): Promise<boolean>;
  deleteUpload(id: string): Promise<void>;
  /** Uploads untouched since before `cutoff` (ms since the epoch), for expiry. */
  staleUploads(cutoff: number): Promise<Upload[]>;
  /** How many uploads are open now, on every replica (the metrics' uploads in progress). */
  countUploads(): Promise<number>;
}

/** Manifests, tags and what can be listed of them. */
export interface ManifestIndex {
  /** Stores a manifest and its tag in one transaction, unless a referenced blob or manifest is missing. */
  putManifest(manifest: NewManifest): Promise<PutManifestResult>;
  getManifest(repo: string, digest: string): Promise<ManifestRecord | undefined>;
  resolveTag(repo: string, tag: string): Promise<string | undefined>;
  /** The manifest a tag points at, in one query (the hottest read of a registry). */
  getTaggedManifest(repo: string, tag: string): Promise<ManifestRecord | undefined>;
  /** Deletes a manifest and every tag that points at it. */
  deleteManifest(repo: string, digest: string): Promise<boolean>;
  deleteTag(repo: string, tag: string): Promise<boolean>;

  repositoryExists(repo: string): Promise<boolean>;
  listTags(repo: string, page: Page): Promise<string[]>;
  /**
   * A page of the repository's manifests, in digest order (`last` is a digest), each saying
   * whether a tag points at it: what is stored, tagged or not (an index's children, referrers, a
   * push by digest), for those that must see all of it (policy simulation).
   */
  listManifests(repo: string, page: Page): Promise<{ digest: string; tagged: boolean }[]>;
  listRepositories(page: Page): Promise<string[]>;
  listReferrers(repo: string, subject: string): Promise<ManifestRecord[]>;
  /**
   * A namespace's usage as quotas count it: its fair share of the blobs its repositories link (a
   * blob k namespaces link counts size/k to each, see quota.ts), plus its manifests in full.
   */
  storedBytes(namespace: string): Promise<number>;
}

export interface MetaStore extends BlobLinks, UploadSessions, ManifestIndex {
  /** people, teams, robots, roles, tokens, keys and the audit log (see accounts.ts) */
  readonly accounts: AccountStore;
  /** each namespace's TUF keys and metadata versions (see tuf.ts) */
  readonly tuf: TufStore;
  /** signatures, attestations and SBOMs with their verdicts; per-namespace trust (see trust.ts) */
  readonly trust: TrustStore;
  /** policies, their versions, the decision log and recorded inputs (see policy.ts) */
  readonly policy: PolicyStore;
  /** what online garbage collection sweeps, and its runs (see gc.ts) */
  readonly gc: GcStore;
  /** fair usage per namespace and the soft-quota mark (see quota.ts) */
  readonly quota: QuotaStore;
  /** retention rules, pull counts, retention runs and their lease (see retention.ts) */
  readonly retention: RetentionStore;
  /** usage events and their hourly and daily rollups (see insight.ts) */
  readonly insight: InsightStore;
  /** storage samples, egress per network, budgets and the lease of the cost jobs (see cost.ts) */
  readonly cost: CostStore;
  /** webhooks per namespace and the outbox they are delivered from (see webhooks.ts) */
  readonly webhooks: WebhookStore;
  /** read-only queries the query language planned (see query.ts) */
  readonly query: QueryStore;
  /** the periodic jobs' leases: one replica runs each job per interval (see leases.ts) */
  readonly leases: LeaseStore;
  /** each replica's request counts per identity and window, for shared rate limits (see rates.ts) */
  readonly rates: RateStore;
  ping(): Promise<void>;
  close(): Promise<void>;
}
