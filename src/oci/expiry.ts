/** Removes uploads that nobody has touched for a while, with their parts. */
import type { RegistryContext } from './context.ts';
import { discardUpload } from './uploads.ts';

export async function expireUploads(ctx: RegistryContext, maxAgeMs: number): Promise<number> {
  const stale = await ctx.meta.staleUploads(Date.now() - maxAgeMs);
  for (const upload of stale) await discardUpload(ctx, upload);
  if (stale.length) ctx.log.info({ count: stale.length }, 'expired abandoned uploads');
  return stale.length;
}
