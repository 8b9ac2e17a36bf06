/** The trust part, as buildApp starts it: file trust loaded, the resolver and the worker running. */
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/schema.ts';
import type { MetaStore } from '../meta/metastore.ts';
import type { BlobStore } from '../storage/blobstore.ts';
import { loadFileTrust, TrustResolver } from './config.ts';
import { TrustService } from './service.ts';

export { TrustService } from './service.ts';
export { TrustResolver } from './config.ts';

/** The running trust worker, or undefined when `trust.enabled` is false. */
export async function startTrust(config: Config, deps: { meta: MetaStore; blobs: BlobStore; log: FastifyBaseLogger }): Promise<TrustService | undefined> {
  if (!config.trust.enabled) return undefined;
  const resolver = new TrustResolver(deps.meta.trust, await loadFileTrust(config.trust));
  const service = new TrustService({ ...deps, resolver, workers: config.trust.workers, claimMs: config.jobs.leaseSeconds * 1000 });
  await service.start();
  return service;
}
