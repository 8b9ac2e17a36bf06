/** Starting the policy part: the service, with the OPA Wasm worker pool when policies need it. */
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/schema.ts';
import type { MetaStore } from '../meta/metastore.ts';
import type { BlobStore } from '../storage/blobstore.ts';
import { PolicyService } from './service.ts';

export { PolicyService } from './service.ts';

export async function startPolicies(
  config: Config,
  parts: { meta: MetaStore; blobs: BlobStore; log: FastifyBaseLogger; now?: () => number },
): Promise<PolicyService> {
  const service = new PolicyService({
    ...parts,
    settings: {
      reloadMs: config.policy.reloadSeconds * 1000,
      retentionMs: config.policy.decisionRetentionDays * 86_400_000,
      recordInputs: config.policy.recordInputs,
    },
  });
  await service.start();
  return service;
}
