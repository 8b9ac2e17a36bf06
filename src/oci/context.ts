/** What the /v2 handlers work with. */
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { Auditor } from '../auth/audit.ts';
import type { MetaStore } from '../meta/metastore.ts';
import type { BlobStore } from '../storage/blobstore.ts';

export interface RegistryContext {
  meta: MetaStore;
  blobs: BlobStore;
  limits: { manifestBytes: number };
  log: FastifyBaseLogger;
  /** where pushes and deletes are recorded */
  audit?: Auditor;
}

/** A matched /v2 route: the repository name, the reference (digest, tag or upload id), the query. */
export interface Match {
  name: string;
  ref: string;
  query: URLSearchParams;
}

export type Handler = (ctx: RegistryContext, req: FastifyRequest, reply: FastifyReply, match: Match) => Promise<void>;
