/**
 * /api/v1/namespaces/<ns>/trust: what a namespace trusts (cosign keys, Sigstore keyless
 * identities and trusted root, Notary trust stores and trust policy). A namespace admin
 * replaces it whole; every signature in the namespace is then judged again.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { trustDocumentSchema } from '../trust/document.ts';
import { access, authorize, iso, namespaceName, recorded, type ApiContext } from './context.ts';
import { invalid, parse } from './errors.ts';

type NsParams = { Params: { ns: string } };

/** A trusted root and a few certificates easily pass 64 KiB. */
const bodyLimit = 1024 * 1024;

export function registerTrust(api: FastifyInstance, ctx: ApiContext): void {
  api.get<NsParams>('/namespaces/:ns/trust', async (req, reply) => {
    const ns = parse(namespaceName, req.params.ns, 'namespace name');
    await authorize(ctx, req, reply, [access.manage(ns)]);
    return view(ctx, ns);
  });

  api.put<NsParams>('/namespaces/:ns/trust', { bodyLimit }, async (req, reply) => {
    const ns = parse(namespaceName, req.params.ns, 'namespace name');
    await authorize(ctx, req, reply, [access.manage(ns)]);
    if (req.body === undefined || req.body === null) throw invalid('send the trust document as JSON (see docs/trust.md)');
    const document = parse(trustDocumentSchema, req.body, 'trust document');
    await ctx.meta.trust.putNamespaceTrust(ns, document);
    await recorded(ctx, req, 'trust.update', ns, {
      publicKeys: document.sigstore.publicKeys.map((k) => k.name),
      identities: document.sigstore.identities.length,
      trustStores: document.notary.trustStores.map((s) => `${s.type}:${s.name}`),
    });
    const reevaluating = (await ctx.trust?.trustChanged(ns)) ?? 0;
    return { ...(await view(ctx, ns)), reevaluating };
  });

  api.delete<NsParams>('/namespaces/:ns/trust', async (req, reply) => {
    const ns = parse(namespaceName, req.params.ns, 'namespace name');
    await authorize(ctx, req, reply, [access.manage(ns)]);
    const removed = await ctx.meta.trust.deleteNamespaceTrust(ns);
    if (removed) await recorded(ctx, req, 'trust.delete', ns);
    const reevaluating = removed ? ((await ctx.trust?.trustChanged(ns)) ?? 0) : 0;
    return { ...(await view(ctx, ns)), reevaluating };
  });
}

const trustedRootSummary = z.looseObject({
  certificateAuthorities: z.array(z.unknown()).optional(),
  tlogs: z.array(z.unknown()).optional(),
  timestampAuthorities: z.array(z.unknown()).optional(),
});

async function view(ctx: ApiContext, ns: string) {
  if (!ctx.trust) return { namespace: ns, verification: 'disabled (trust.enabled is false)', source: 'none' };
  const { trust, fingerprint, source, updatedAt } = await ctx.trust.resolver.resolve(ns);
  const root = trustedRootSummary.safeParse(trust.sigstore.trustedRoot);
  return {
    namespace: ns,
    source,
    fingerprint,
    updatedAt: iso(updatedAt ?? null),
    sigstore: {
      publicKeys: trust.sigstore.publicKeys,
      identities: trust.sigstore.identities,
      trustedRoot:
        trust.sigstore.trustedRoot === undefined
          ? null
          : {
              certificateAuthorities: root.data?.certificateAuthorities?.length ?? 0,
              tlogs: root.data?.tlogs?.length ?? 0,
              timestampAuthorities: root.data?.timestampAuthorities?.length ?? 0,
            },
    },
    notary: trust.notary,
  };
}
