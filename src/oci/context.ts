/** What the /v2 handlers work with. */
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { Auditor } from '../auth/audit.ts';
import type { MetaStore } from '../meta/metastore.ts';
import type { BlobStore } from '../storage/blobstore.ts';
import type { Answer, Question } from '../policy/service.ts';
import type { QuotaGuard } from '../lifecycle/quota.ts';

export interface RegistryContext {
  meta: MetaStore;
  blobs: BlobStore;
  limits: { manifestBytes: number };
  log: FastifyBaseLogger;
  /** where pushes and deletes are recorded */
  audit?: Auditor;
  /** told after a change is stored (trust, later insight); a listener must not fail the request */
  events?: RegistryEvents;
  /** decides pushes, pulls and deletes at the manifest (src/oci/policy-gate.ts); none: everything is allowed */
  policy?: { decide(q: Question): Answer | Promise<Answer> };
  /** the namespaces' quotas, asked before a push's bytes are kept (src/oci/quota-gate.ts); none: no quotas */
  quota?: QuotaGuard;
  /** counts manifest pulls for retention (src/lifecycle/pulls.ts): a map update, never awaited; none: not counted */
  pulls?: { record(repo: string, digest: string): void };
  /** answer whole-blob GETs with 307 to the storage's own URL where the driver has one (config storage.redirect) */
  redirect?: boolean;
  /** the clock policies see as the request's time (tests move it); default Date.now */
  now?: () => number;
}

/** What the registry core tells the parts that react to changes (docs/architecture.md: data flows one way). */
export interface RegistryEvents {
  manifestPushed(e: { repo: string; digest: string; mediaType: string; content: Uint8Array; tag?: string }): Promise<void>;
  manifestDeleted(e: { repo: string; digest: string }): Promise<void>;
  tagDeleted(e: { repo: string; tag: string }): Promise<void>;
}

/** A matched /v2 route: the repository name, the reference (digest, tag or upload id), the query. */
export interface Match {
  name: string;
  ref: string;
  query: URLSearchParams;
  /**
   * For whoever observes the request (usage events): the bytes of a blob's body that went out
   * (counted as the socket took them), or the size of what a push stored.
   */
  bytes?: number;
}

export type Handler = (ctx: RegistryContext, req: FastifyRequest, reply: FastifyReply, match: Match) => Promise<void>;
