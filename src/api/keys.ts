/** /api/v1/keys: rotating the JWT signing key (registry administrators). Older keys keep verifying. */
import type { FastifyInstance } from 'fastify';
import { access, authorize, recorded, type ApiContext } from './context.ts';

export function registerKeys(api: FastifyInstance, ctx: ApiContext): void {
  api.post('/keys/rotate', async (req, reply) => {
    await authorize(ctx, req, reply, [access.admin]);
    const kid = await ctx.auth.keys.rotate();
    await recorded(ctx, req, 'keys.rotate', kid);
    return { kid };
  });
}
