/**
 * Storage usage and quotas (docs/lifecycle.md, "Quotas"): a namespace's fair usage beside its hard
 * and soft quotas, for its admins; every namespace's fair share and the physical total, for
 * registry administrators. The figures add up: the namespaces' fair blob bytes sum to the
 * physical bytes of the linked blobs.
 */
import type { FastifyInstance } from 'fastify';
import type { UsageReport } from '../lifecycle/quota.ts';
import { access, authorize, iso, namespaceName, type ApiContext } from './context.ts';
import { ApiError, notFound, parse } from './errors.ts';

type NsParams = { Params: { ns: string } };

const view = (u: UsageReport) => ({
  namespace: u.namespace,
  usedBytes: u.usedBytes,
  fairBlobBytes: u.fairBlobBytes,
  physicalBlobBytes: u.physicalBlobBytes,
  manifestBytes: u.manifestBytes,
  blobs: u.blobs,
  sharedBlobs: u.sharedBlobs,
  manifests: u.manifests,
  hardQuotaBytes: u.hardQuotaBytes,
  softQuotaBytes: u.softQuotaBytes,
  overSoftQuota: u.overSoftQuota,
  overHardQuota: u.overHardQuota,
});

export function registerUsage(api: FastifyInstance, ctx: ApiContext): void {
  const quotas = () => {
    if (!ctx.quota) throw new ApiError('INVALID', 'quotas are not available on this server');
    return ctx.quota;
  };

  api.get<NsParams>('/namespaces/:ns/usage', async (req, reply) => {
    const ns = parse(namespaceName, req.params.ns, 'namespace name');
    await authorize(ctx, req, reply, [access.manage(ns)]);
    const usage = await quotas().usage(ns);
    if (usage.blobs === 0 && usage.manifests === 0 && !(await ctx.accounts.getNamespace(ns)))
      throw notFound(`no namespace ${ns}: nothing is stored in it and it has no settings`);
    return { ...view(usage), softExceededAt: iso(usage.softExceededAt) };
  });

  api.get('/usage', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    const usage = await quotas().registry();
    const fairBlobBytes = usage.namespaces.reduce((sum, n) => sum + n.fairBlobBytes, 0);
    return {
      namespaces: usage.namespaces.map(view),
      totals: {
        physicalBlobBytes: usage.physicalBlobBytes,
        fairBlobBytes,
        manifestBytes: usage.manifestBytes,
        usedBytes: fairBlobBytes + usage.manifestBytes,
      },
    };
  });
}
