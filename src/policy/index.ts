/**
 * Starting the policy part: the service, and the OPA Wasm worker pool, which is started only when
 * the first OPA policy is loaded (a registry with CEL policies alone runs no extra threads).
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/schema.ts';
import type { MetaStore } from '../meta/metastore.ts';
import type { BlobStore } from '../storage/blobstore.ts';
import { compileOpa, createOpaPool, type OpaPool } from './opa/index.ts';
import { PolicyService, type Question } from './service.ts';
import type { DecisionRecord } from '../meta/policy.ts';
import { priceModelOf } from '../meta/cost.ts';

export { PolicyService } from './service.ts';

export async function startPolicies(
  config: Config,
  parts: { meta: MetaStore; blobs: BlobStore; log: FastifyBaseLogger; now?: () => number; decided?: (record: DecisionRecord, q: Question) => void },
): Promise<PolicyService> {
  let pool: OpaPool | undefined;
  const opa = config.policy.opa;
  const service = new PolicyService({
    ...parts,
    cost: priceModelOf(config.insight.cost),
    settings: {
      reloadMs: config.policy.reloadSeconds * 1000,
      retentionMs: config.policy.decisionRetentionDays * 86_400_000,
      recordInputs: config.policy.recordInputs,
    },
    opa: (doc, bundle) => compileOpa(doc, bundle, (pool ??= createOpaPool({ size: opa.workers, timeoutMs: opa.timeoutMs, memoryPages: opa.memoryMiB * 16 }))),
    onStop: async () => pool?.close(),
  });
  await service.start();
  return service;
}
