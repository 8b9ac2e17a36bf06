/**
 * Where /v2 asks the namespace's quotas (src/lifecycle/quota.ts) before it keeps a push's bytes:
 * a blob write's beforeCommit, an upload's single-part move, a mount's link and a manifest PUT. A
 * push over the hard quota is `403 DENIED` with the figures in the message and the detail, which
 * docker, podman and skopeo show to the user. An admitted push returns what to call once it is
 * stored (it notes a crossing of the soft quota).
 */
import type { QuotaRefusal, QuotaVerdict } from '../lifecycle/quota.ts';
import type { RegistryContext } from './context.ts';
import { OciError } from './errors.ts';

/** Called once the push is stored; never throws. */
export type Stored = () => Promise<void>;

const nothing: Stored = async () => {};

export async function checkBlobQuota(ctx: RegistryContext, repo: string, digest: string, size: number): Promise<Stored> {
  return ctx.quota ? admit(await ctx.quota.checkBlob(repo, digest, size)) : nothing;
}

/** A mount of `digest` from `from` into `repo`; nothing to judge when `from` has no such blob (an upload starts). */
export async function checkMountQuota(ctx: RegistryContext, repo: string, from: string, digest: string): Promise<Stored> {
  return ctx.quota ? admit(await ctx.quota.checkMount(repo, from, digest)) : nothing;
}

export async function checkManifestQuota(ctx: RegistryContext, repo: string, digest: string, size: number): Promise<Stored> {
  return ctx.quota ? admit(await ctx.quota.checkManifest(repo, digest, size)) : nothing;
}

/** Is this error a quota refusal (the upload it ends is discarded, parts and all)? */
export const isQuotaDenial = (err: unknown): boolean =>
  err instanceof OciError && err.code === 'DENIED' && (err.detail as { reason?: unknown } | null)?.reason === 'quota';

function admit(verdict: QuotaVerdict): Stored {
  if (verdict.refusal) throw quotaDenied(verdict.refusal);
  return verdict.stored;
}

function quotaDenied(r: QuotaRefusal): OciError {
  return new OciError('DENIED', r.message, {
    detail: { reason: 'quota', namespace: r.namespace, usedBytes: r.usedBytes, pushBytes: r.pushBytes, quotaBytes: r.quotaBytes },
  });
}
