/**
 * /api/v1/tokens: personal access tokens. The secret is returned once, when the token is made;
 * only its hash is stored and no listing shows either. A request made with a token may create or
 * revoke tokens only when that token has the manage scope, and may not create one that can do
 * more than itself (so a leaked pull token cannot mint a lasting, wider one).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { allActions, type Principal, type Scope } from '../auth/principal.ts';
import { newTokenSecret } from '../auth/secrets.ts';
import type { TokenRecord } from '../meta/accounts.ts';
import { access, authorize, iso, recorded, viaBasic, type ApiContext } from './context.ts';
import { ApiError, denied, notFound, parse } from './errors.ts';

export const tokenBody = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'use 1 to 64 characters of A-Z, a-z, 0-9, ".", "_" and "-", starting with a letter or digit'),
  scopes: z
    .array(z.enum(['pull', 'push', 'delete', 'manage', 'metrics'], 'use pull, push, delete, manage or metrics'))
    .min(1, 'give at least one scope')
    .transform((s) => [...new Set(s)])
    .optional(),
  expiresInDays: z.number().int('a whole number of days').min(1, 'at least 1 day').max(3650, 'at most 3650 days').optional(),
});

export const tokenId = z.string().regex(/^[0-9a-f]{16}$/, 'a token id is 16 hexadecimal digits');

export const tokenView = (t: TokenRecord) => ({
  id: t.id,
  name: t.name,
  scopes: t.scopes,
  expiresAt: iso(t.expiresAt),
  lastUsedAt: iso(t.lastUsedAt),
  createdAt: iso(t.createdAt),
});

/**
 * Makes a token for a user or robot; the answer carries the secret, this once. A token made by a
 * request that itself used a token expires no later than that token: it cannot outlive its maker.
 */
export async function createToken(
  ctx: ApiContext,
  req: FastifyRequest,
  owner: { kind: 'user' | 'robot'; id: string; name: string },
  body: z.infer<typeof tokenBody>,
) {
  // A Bearer JWT from /token was issued for some repositories, for minutes: not for this.
  if (!viaBasic(req)) throw denied('create tokens with a password or token sent as Basic credentials');
  const scopes: Scope[] = body.scopes ?? [...allActions];
  // Metrics are the whole registry's: only an administrator hands out a token that reads them.
  if (scopes.includes('metrics') && !req.principal?.admin) throw denied('only a registry administrator may create a token with the metrics scope');
  const secret = newTokenSecret();
  const asked = body.expiresInDays === undefined ? null : Date.now() + body.expiresInDays * 86_400_000;
  const expiresAt = await expiryWithin(ctx, req.principal, asked);
  const record = await ctx.accounts.createToken({
    id: secret.id,
    ownerKind: owner.kind,
    ownerId: owner.id,
    name: body.name,
    secretHash: secret.hash,
    scopes,
    expiresAt,
  });
  await recorded(ctx, req, 'token.create', record.id, { name: record.name, owner: owner.name, ownerKind: owner.kind, scopes, expiresAt: iso(expiresAt) });
  return { id: record.id, name: record.name, scopes, expiresAt: iso(expiresAt), token: secret.token };
}

/** The expiry asked for, bounded by the expiry of the token the request was made with. */
async function expiryWithin(ctx: ApiContext, creator: Principal | undefined, asked: number | null): Promise<number | null> {
  if (!creator?.tokenId) return asked;
  const limit = (await ctx.accounts.getToken(creator.tokenId))?.expiresAt ?? null;
  if (limit === null) return asked;
  if (asked === null) return limit;
  if (asked > limit) throw denied(`this token expires at ${iso(limit)}; a token it creates may not expire later`);
  return asked;
}

/** A request made with a token changes tokens only if that token may manage. */
function checkTokenManagement(p: Principal): void {
  if (p.scopes && !p.scopes.includes('manage')) throw denied('this token lacks the manage scope, which creating and revoking tokens needs');
}

const own = (p: Principal, t: TokenRecord) => t.ownerKind === p.kind && t.ownerId === p.id;

export function registerTokens(api: FastifyInstance, ctx: ApiContext): void {
  api.get('/tokens', async (req, reply) => {
    const p = await authorize(ctx, req, reply, [access.login]);
    if (p.kind === 'anonymous') return { tokens: [] };
    return { tokens: (await ctx.accounts.listTokens(p.kind, p.id)).map(tokenView) };
  });

  api.post('/tokens', async (req, reply) => {
    const p = await authorize(ctx, req, reply, [access.login]);
    if (p.kind !== 'user') throw denied("robots get their tokens from their namespace's admins");
    checkTokenManagement(p);
    const body = parse(tokenBody, req.body, 'token');
    const wider = (body.scopes ?? allActions).filter((s) => p.scopes && !p.scopes.includes(s));
    if (wider.length > 0) throw denied(`this token may not create a token with ${wider.join(', ')}, which it lacks itself`);
    return reply.code(201).send(await createToken(ctx, req, { kind: 'user', id: p.id, name: p.name }, body));
  });

  api.delete<{ Params: { id: string } }>('/tokens/:id', async (req, reply) => {
    const p = await authorize(ctx, req, reply, [access.login]);
    const id = parse(tokenId, req.params.id, 'token id');
    const token = await ctx.accounts.getToken(id);
    if (token && own(p, token)) checkTokenManagement(p);
    else if (token) await othersToken(ctx, req, id);
    if (!token || !(await ctx.accounts.deleteToken(id))) throw notFound(`no token ${id}`);
    await recorded(ctx, req, 'token.revoke', id, { name: token.name, ownerKind: token.ownerKind });
    return reply.code(204).send();
  });
}

/** Someone else's token: registry administrators may revoke it; to anyone else it does not exist. */
async function othersToken(ctx: ApiContext, req: FastifyRequest, id: string): Promise<void> {
  const decision = await ctx.auth.controller.authorize(req, [access.admin]);
  if (decision.granted) return;
  if (decision.status === 429) throw new ApiError('TOO_MANY_REQUESTS', decision.message);
  throw notFound(`no token ${id}`);
}
