/**
 * The one access question: given a request and the accesses it needs, grant, or answer with a
 * challenge. Every route asks it (the /v2 dispatcher and /api/v1); none decides alone.
 */
import type { FastifyRequest } from 'fastify';
import type { Action, Principal } from './principal.ts';

export type { Action, Principal } from './principal.ts';

export interface Access {
  /**
   * 'repository' with a repository name; 'registry' with 'catalog' or 'admin' (administrators),
   * 'login' (a user or robot) or 'credentials' (any valid credentials, an anonymous JWT too)
   */
  type: 'repository' | 'registry';
  name: string;
  actions: (Action | '*')[];
  /** asked for but not required: refused ones are reported, not denied (a mount's source) */
  optional?: boolean;
}

export type Decision =
  | { granted: true; principal: Principal; refused: Access[] }
  | {
      granted: false;
      status: 401 | 403 | 429;
      message: string;
      challenge?: string;
      retryAfter?: number;
      /** who was refused, when the credentials held (for logs and usage events) */
      principal?: Principal;
    };

/** The headers a refusal is sent with: its challenge, and for 429 when to try again. */
export function refusalHeaders(decision: Extract<Decision, { granted: false }>): Record<string, string> {
  const headers: Record<string, string> = {};
  if (decision.challenge) headers['www-authenticate'] = decision.challenge;
  if (decision.retryAfter !== undefined) headers['retry-after'] = String(decision.retryAfter);
  return headers;
}

export interface AccessController {
  authorize(request: FastifyRequest, accesses: Access[]): Promise<Decision>;
}

/** `repository:team/app:pull,push`, as challenges and /token write scopes. */
export function scopeString(access: Access): string {
  return `${access.type}:${access.name}:${access.actions.join(',')}`;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** who the access controller found behind the request, once it has asked */
    principal?: Principal;
  }
}
