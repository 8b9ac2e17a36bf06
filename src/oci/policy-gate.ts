/**
 * The policy decision points of /v2 (docs/policy.md): a manifest PUT is a push, a manifest GET
 * or HEAD a pull, a manifest or tag DELETE a delete. Each handler asks once, after it knows the
 * manifest and before it changes or sends anything; a denial is `403 DENIED` with the policy's
 * message, which skopeo, podman and docker show to the user.
 */
import type { FastifyRequest } from 'fastify';
import type { Action } from '../policy/input-schema.ts';
import type { Question } from '../policy/service.ts';
import { namespaceOf } from '../reference.ts';
import type { Match, RegistryContext } from './context.ts';
import { OciError } from './errors.ts';

export async function askPolicy(
  ctx: RegistryContext,
  req: FastifyRequest,
  action: Action,
  m: Match,
  manifest: { digest: string; mediaType: string; content: Uint8Array },
  tag: string | undefined,
): Promise<void> {
  if (!ctx.policy) return;
  const principal = req.principal ?? { kind: 'anonymous' as const, id: '', name: 'anonymous', admin: false };
  const question: Question = {
    action,
    repository: m.name,
    namespace: namespaceOf(m.name),
    digest: manifest.digest,
    ...(tag === undefined ? {} : { tag }),
    manifest,
    principal: { kind: principal.kind, id: principal.id, name: principal.name, admin: principal.admin },
    tokenKind: tokenKind(req.headers.authorization, principal.tokenId !== undefined),
    userAgent: (req.headers['user-agent'] ?? '').slice(0, 512),
    sourceAddress: req.ip,
    time: (ctx.now ?? Date.now)(),
  };
  const answer = await ctx.policy.decide(question);
  if (!answer.allowed) throw new OciError('DENIED', answer.message, { status: 403 });
}

function tokenKind(authorization: string | undefined, withToken: boolean): Question['tokenKind'] {
  const scheme = authorization?.slice(0, 7).toLowerCase() ?? '';
  if (scheme.startsWith('basic ')) return withToken ? 'token' : 'password';
  if (scheme.startsWith('bearer ')) return 'jwt';
  return 'anonymous';
}
