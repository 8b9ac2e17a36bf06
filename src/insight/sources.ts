/**
 * Usage events from outside the Distribution API, made from what auth and policy tell their
 * observers (the server wires them; neither part knows of insight):
 *
 * - login: a password or a personal/robot token checked with Basic credentials, at /v2, /api/v1
 *   or /token. A verified password is cached for a minute, and a token's use is noted at most once
 *   a minute, so a client sending the same Basic credentials with every request makes one login
 *   event a minute per replica, not one per request. A failure is an event every time ('denied').
 * - token: every /token answer: issued ('ok', with the scopes the token grants) or refused.
 * - decision: every decision the policy decision log keeps (docs/policy.md: what is not logged,
 *   an enforcing policy's allow, makes no event either).
 */
import type { DecisionRecord } from '../meta/policy.ts';
import { namespaceOf } from '../reference.ts';
import type { Question } from '../policy/service.ts';
import type { EventResult, UsageEvent } from '../meta/insight.ts';

/** What auth tells of a login (src/auth/authenticate.ts LoginEvent). */
export interface LoginSeen {
  principal: string;
  source: string;
  outcome: 'success' | 'failure';
  reason?: string;
  kind?: 'user' | 'robot';
  via: 'password' | 'token';
  tokenId?: string;
  userAgent: string;
}

/** What auth tells of a /token answer (src/auth/token-route.ts TokenAnswer). */
export interface TokenSeen {
  actor: string;
  actorKind: string;
  tokenId: string;
  granted: string[];
  status: number;
  source: string;
  userAgent: string;
  at: number;
  durationMicros: number;
}

const blank = {
  object: '',
  namespace: '',
  repository: '',
  digest: '',
  tag: '',
  mediaType: '',
  bytes: 0,
  status: 0,
  durationMicros: 0,
} as const;

export function loginEvent(e: LoginSeen, at: number): UsageEvent {
  return {
    id: '',
    at,
    type: 'login',
    ...blank,
    actor: e.principal,
    actorKind: e.outcome === 'success' ? (e.kind ?? 'user') : 'anonymous',
    tokenId: e.tokenId ?? '',
    userAgent: e.userAgent.slice(0, 512),
    source: e.source,
    result: e.outcome === 'success' ? 'ok' : 'denied',
    detail: e.reason ? { via: e.via, reason: e.reason } : { via: e.via },
  };
}

export function tokenEvent(e: TokenSeen): UsageEvent {
  // the repository (and namespace) when every scope granted names the same one
  const repositories = new Set(e.granted.filter((g) => g.startsWith('repository:')).map((g) => g.slice('repository:'.length, g.lastIndexOf(':'))));
  const namespaces = new Set([...repositories].map(namespaceOf));
  const result: EventResult = e.status < 400 ? 'ok' : e.status === 401 || e.status === 403 || e.status === 429 ? 'denied' : 'error';
  return {
    id: '',
    at: e.at,
    type: 'token',
    ...blank,
    namespace: namespaces.size === 1 ? [...namespaces][0]! : '',
    repository: repositories.size === 1 ? [...repositories][0]! : '',
    actor: e.actor,
    actorKind: e.actorKind,
    tokenId: e.tokenId,
    userAgent: e.userAgent.slice(0, 512),
    source: e.source,
    durationMicros: e.durationMicros,
    status: e.status,
    result,
    detail: { scopes: e.granted },
  };
}

const results: Record<string, EventResult> = { allow: 'ok', deny: 'denied', error: 'error' };

export function decisionEvent(r: DecisionRecord, q: Question): UsageEvent {
  return {
    id: '',
    at: r.at,
    type: 'decision',
    ...blank,
    object: 'manifest',
    namespace: q.namespace,
    repository: r.repository,
    digest: q.digest,
    tag: q.tag ?? '',
    mediaType: q.manifest.mediaType,
    actor: r.actor,
    actorKind: q.principal.kind,
    tokenId: '',
    userAgent: q.userAgent.slice(0, 512),
    source: r.source,
    durationMicros: Math.round(r.latencyMicros),
    result: results[r.result] ?? 'error',
    detail: { policy: r.policy, version: r.version, mode: r.mode, action: r.action, enforced: r.enforced, message: r.message },
  };
}
