/** Removes uploads that nobody has touched for a while, with their parts. */
import type { RegistryContext } from './context.ts';
import { discardUpload } from './uploads.ts';

/** `now`: the time to judge by (tests pass a later one instead of waiting). */
export async function expireUploads(ctx: RegistryContext, maxAgeMs: number, now = Date.now()): Promise<number> {
  const stale = await ctx.meta.staleUploads(now - maxAgeMs);
  for (const upload of stale) await discardUpload(ctx, upload);
  if (stale.length) ctx.log.info({ count: stale.length }, 'expired abandoned uploads');
  return stale.length;
}
