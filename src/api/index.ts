/**
 * The management API, /api/v1: JSON in and out, the same credentials as /v2, every route deciding
 * through the access controller. One file per resource; errors in errors.ts; docs/api-v1.md.
 */
import type { FastifyInstance } from 'fastify';
import type { Auth } from '../auth/index.ts';
import type { MetaStore } from '../meta/metastore.ts';
import type { TufPublisher } from '../trust/tuf/index.ts';
import type { TrustService } from '../trust/service.ts';
import type { PolicyService } from '../policy/service.ts';
import type { Quotas } from '../lifecycle/quota.ts';
import { registerPolicies } from './policies.ts';
import { registerQuery } from './query.ts';
import { registerGc } from './gc.ts';
import type { GarbageCollector } from '../lifecycle/gc.ts';
import type { RetentionService } from '../lifecycle/retention.ts';
import { registerRetention } from './retention.ts';
import { registerArtifacts } from './artifacts.ts';
import { registerAudit } from './audit.ts';
import { registerEvents } from './events.ts';
import { costApi, type CostApi } from './cost.ts';
import { authenticateBeforeBody, installJsonParser } from './bodies.ts';
import type { ApiContext } from './context.ts';
import { installApiErrors } from './errors.ts';
import { registerKeys } from './keys.ts';
import { registerNamespaces } from './namespaces.ts';
import { registerRobots } from './robots.ts';
import { registerTeams } from './teams.ts';
import { registerTokens } from './tokens.ts';
import { tufApi } from './tuf.ts';
import { registerTrust } from './trust.ts';
import { registerUsage } from './usage.ts';
import { registerUsers } from './users.ts';
import { registerWebhooks } from './webhooks.ts';

export interface ApiDeps {
  meta: MetaStore;
  auth: Auth;
  /** the namespaces' TUF repositories (/api/v1/namespaces/<ns>/tuf) */
  tuf?: TufPublisher;
  trust?: TrustService;
  policy?: PolicyService;
  quota?: Quotas;
  gc?: GarbageCollector;
  retention?: RetentionService;
  /** what webhook URLs may point at (insight.webhooks.allowPrivateNetworks) */
  webhooks?: { allowPrivateNetworks: boolean };
  /** cost reports, the FOCUS export and budgets (/api/v1/cost, /api/v1/budgets) */
  cost?: CostApi;
}

/** Management requests are small; anything larger is a mistake or an attack. */
const bodyLimit = 64 * 1024;

export function registerApi(app: FastifyInstance, deps: ApiDeps): void {
  const ctx: ApiContext = {
    accounts: deps.meta.accounts,
    meta: deps.meta,
    auth: deps.auth,
    ...(deps.trust ? { trust: deps.trust } : {}),
    ...(deps.policy ? { policy: deps.policy } : {}),
    ...(deps.quota ? { quota: deps.quota } : {}),
    ...(deps.gc ? { gc: deps.gc } : {}),
    ...(deps.retention ? { retention: deps.retention } : {}),
    ...(deps.webhooks ? { webhooks: deps.webhooks } : {}),
  };
  app.register(
    async (api) => {
      api.removeAllContentTypeParsers();
      installJsonParser(api, bodyLimit);
      installApiErrors(api);
      // who is asking, before any body is read (bodies.ts); the routes decide what they may do
      api.addHook('onRequest', authenticateBeforeBody(ctx));
      for (const register of [
        registerUsers,
        registerTeams,
        registerNamespaces,
        registerRobots,
        registerTokens,
        registerKeys,
        registerAudit,
        ...(deps.tuf ? [tufApi(deps.tuf)] : []),
        registerTrust,
        registerArtifacts,
        registerPolicies,
        registerUsage,
        registerGc,
        registerRetention,
        registerEvents,
        registerQuery,
        registerWebhooks,
        ...(deps.cost ? [costApi(deps.cost)] : []),
      ])
        register(api, ctx);
    },
    { prefix: '/api/v1' },
  );
}
