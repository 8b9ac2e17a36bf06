/**
 * The policy decision points of /v2 (docs/policy.md): a manifest PUT is a push, a manifest GET
 * or HEAD a pull, a manifest or tag DELETE a delete. Each handler asks once, after it knows the
 * manifest and before it changes or sends anything; a denial is `403 DENIED` with the policy's
 * message, which skopeo, podman and docker show to the user.
 */
import type { FastifyRequest } from 'fastify';
import type { Action } from '../policy/input-schema.ts';
import { anonymous } from '../auth/principal.ts';
import type { Answer, Question } from '../policy/service.ts';
import { namespaceOf } from '../reference.ts';
import type { Match, RegistryContext } from './context.ts';
import { OciError } from './errors.ts';

export function askPolicy(
  ctx: RegistryContext,
  req: FastifyRequest,
  action: Action,
  m: Match,
  manifest: { digest: string; mediaType: string; content: Uint8Array },
  tag: string | undefined,
): void | Promise<void> {
  const policy = ctx.policy;
  if (!policy) return;
  // The principal as it is: the service reads its kind, id, name and admin and keeps nothing else.
  const principal = req.principal ?? anonymous;
  const headers = req.headers;
  const userAgent = headers['user-agent'];
  const question: Question = {
    action,
    repository: m.name,
    namespace: namespaceOf(m.name),
    digest: manifest.digest,
    tag,
    manifest,
    principal,
    tokenKind: tokenKind(headers.authorization, principal.tokenId !== undefined),
    userAgent: userAgent === undefined ? '' : userAgent.length > 512 ? userAgent.slice(0, 512) : userAgent,
    sourceAddress: req.ip,
    time: (ctx.now ?? Date.now)(),
  };
  // A decision the service could make at once comes without a promise, and so does this: the
  // usual pull makes no promise here nor in the service, nor waits for their microtask turns.
  const answer = policy.decide(question);
  if (answer instanceof Promise) return answer.then(enforce);
  enforce(answer);
}

function enforce(answer: Answer): void {
  if (!answer.allowed) throw new OciError('DENIED', answer.message, { status: 403 });
}

const basic = /^basic /i;
const bearer = /^bearer /i;

function tokenKind(authorization: string | undefined, withToken: boolean): Question['tokenKind'] {
  if (authorization === undefined) return 'anonymous';
  if (basic.test(authorization)) return withToken ? 'token' : 'password';
  if (bearer.test(authorization)) return 'jwt';
  return 'anonymous';
}
