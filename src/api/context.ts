/**
 * What every /api/v1 handler shares: the stores, the one access question, the audit record that
 * follows each change, the name grammars and the JSON shape of times.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { refusalHeaders, type Access, type AccessController } from '../auth/access.ts';
import { parseAuthorization } from '../auth/controller.ts';
import type { Auth } from '../auth/index.ts';
import type { Principal } from '../auth/principal.ts';
import type { AccountStore } from '../meta/accounts.ts';
import type { MetaStore } from '../meta/metastore.ts';
import { isNamespaceName, maxNameLength, namespaceRule } from '../reference.ts';
import type { TrustService } from '../trust/service.ts';
import type { PolicyService } from '../policy/service.ts';
import type { GarbageCollector } from '../lifecycle/gc.ts';
import type { Quotas } from '../lifecycle/quota.ts';
import type { RetentionService } from '../lifecycle/retention.ts';
import { ApiError, codeOf, conflict } from './errors.ts';

export interface ApiContext {
  accounts: AccountStore;
  meta: MetaStore;
  auth: Auth;
  /** the trust worker; undefined when trust.enabled is false */
  trust?: TrustService;
  /** the policies every push, pull and delete is decided by */
  policy?: PolicyService;
  /** namespaces' usage and quotas (/api/v1/usage, …/namespaces/:ns/usage) */
  quota?: Quotas;
  /** online garbage collection (src/lifecycle/gc.ts) */
  gc?: GarbageCollector;
  /** retention rules and runs (src/lifecycle/retention.ts) */
  retention?: RetentionService;
  /** what webhook URLs may point at (insight.webhooks) */
  webhooks?: { allowPrivateNetworks: boolean };
}

/** The accesses API routes ask for. */
export const access: { login: Access; admin: Access; manage: (namespace: string) => Access } = {
  /** any valid credentials */
  login: { type: 'registry', name: 'login', actions: [] },
  /** registry administrators only */
  admin: { type: 'registry', name: 'admin', actions: ['manage'] },
  /** the admin role in a namespace (registry administrators have it everywhere) */
  manage: (namespace) => ({ type: 'repository', name: namespace, actions: ['manage'] }),
};

/**
 * Asks the access controller; a refusal becomes the API error, with the controller's challenge
 * and Retry-After. The one place the API (and /tuf) turns a refusal into an answer.
 */
export async function ask(
  controller: AccessController,
  req: FastifyRequest,
  reply: FastifyReply,
  accesses: Access[],
): Promise<{ principal: Principal; refused: Access[] }> {
  const decision = await controller.authorize(req, accesses);
  if (!decision.granted) {
    reply.headers(refusalHeaders(decision));
    throw new ApiError(codeOf(decision.status), decision.message);
  }
  req.principal = decision.principal;
  return decision;
}

/** ask(), with the API's controller. */
export function decide(ctx: ApiContext, req: FastifyRequest, reply: FastifyReply, accesses: Access[]): Promise<{ principal: Principal; refused: Access[] }> {
  return ask(ctx.auth.controller, req, reply, accesses);
}

/** decide(), for the usual case where every access is required: the principal. */
export async function authorize(ctx: ApiContext, req: FastifyRequest, reply: FastifyReply, accesses: Access[]): Promise<Principal> {
  return (await decide(ctx, req, reply, accesses)).principal;
}

/** Whether the request carries Basic credentials (a password or a token), not a Bearer JWT. */
export const viaBasic = (req: FastifyRequest): boolean => parseAuthorization(req.headers.authorization).kind === 'basic';

/** Records a change in the audit log, then drops every cached decision so the next request sees it. */
export async function recorded(ctx: ApiContext, req: FastifyRequest, action: string, target: string, detail: Record<string, unknown> = {}): Promise<void> {
  await ctx.auth.audit.record({ actor: req.principal?.name ?? 'anonymous', source: req.ip, action, target, outcome: 'success', detail });
  ctx.auth.changed();
}

/** Creates something with a unique name: 409 when it exists, also when a concurrent request won. */
export async function createUnique<T>(create: () => Promise<T>, exists: () => Promise<boolean>, message: string): Promise<T> {
  if (await exists()) throw conflict(message);
  try {
    return await create();
  } catch (err) {
    if (await exists()) throw conflict(message);
    throw err;
  }
}

export const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export const accountName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'use 1 to 64 characters of a-z, 0-9, ".", "_" and "-", starting with a letter or digit');
export const namespaceName = z.string().max(maxNameLength, `at most ${maxNameLength} characters`).refine(isNamespaceName, namespaceRule);
export const password = z.string().min(8, 'at least 8 characters').max(1024, 'at most 1024 characters');
