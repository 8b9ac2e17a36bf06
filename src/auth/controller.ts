/**
 * The access controller for /v2 and /api/v1. Credentials come as Basic (password or token), as
 * a Bearer JWT from /token, or as a Bearer personal or robot token (decided as Basic with that
 * token); no credentials means anonymous. A JWT allows what it says (the intersection computed
 * when it was issued); Basic and anonymous requests are decided from the roles in the store. Refusals follow the Docker token flow: 401 with a challenge naming the
 * scope to ask /token for, or 403 when the caller is known and simply may not.
 */
import type { FastifyRequest } from 'fastify';
import type { Access, AccessController, Decision } from './access.ts';
import { scopeString } from './access.ts';
import { AuthError, type Authenticator, type TokenAccess } from './authenticate.ts';
import { namespaceOf } from '../reference.ts';
import { anonymous, mayReadMetrics, type Principal } from './principal.ts';
import { parseToken } from './secrets.ts';
import type { Rbac } from './rbac.ts';
import type { RequestLimiter } from './rate-limit.ts';

export interface ControllerSettings {
  service: string;
  /** absolute URL of /token; derived from the request's host when unset */
  realm?: string;
}

type Credentials = { kind: 'none' } | { kind: 'basic'; username: string; password: string } | { kind: 'bearer'; token: string } | { kind: 'malformed' };

export function parseAuthorization(header: string | undefined): Credentials {
  if (!header) return { kind: 'none' };
  const space = header.indexOf(' ');
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === 'bearer' && value) return { kind: 'bearer', token: value };
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return { kind: 'malformed' };
}

export class TokenAccessController implements AccessController {
  private readonly auth: Authenticator;
  private readonly rbac: Rbac;
  private readonly limiter: RequestLimiter;
  private readonly settings: ControllerSettings;

  constructor(auth: Authenticator, rbac: Rbac, limiter: RequestLimiter, settings: ControllerSettings) {
    this.auth = auth;
    this.rbac = rbac;
    this.limiter = limiter;
    this.settings = settings;
  }

  realm(req: FastifyRequest): string {
    return this.settings.realm ?? `${req.protocol}://${req.host}/token`;
  }

  challenge(req: FastifyRequest, accesses: Access[], error?: string): string {
    const scopes = accesses
      .filter((a) => !(a.type === 'registry' && (a.name === 'login' || a.name === 'credentials' || a.name === 'metrics')))
      .map(scopeString);
    let value = `Bearer realm="${this.realm(req)}",service="${this.settings.service}"`;
    if (scopes.length > 0) value += `,scope="${scopes.join(' ')}"`;
    if (error) value += `,error="${error}"`;
    return value;
  }

  /** The principal behind a request's credentials (anonymous without any); throws AuthError. */
  async principal(req: FastifyRequest): Promise<{ principal: Principal; via: Credentials['kind']; access?: TokenAccess[] }> {
    const credentials = parseAuthorization(req.headers.authorization);
    switch (credentials.kind) {
      case 'none':
        return { principal: anonymous, via: 'none' };
      case 'basic':
        return { principal: await this.auth.basic(credentials.username, credentials.password, req.ip, req.headers['user-agent']), via: 'basic' };
      case 'bearer': {
        if (parseToken(credentials.token)) return { principal: await this.auth.tokenBearer(credentials.token, req.ip), via: 'basic' };
        const claims = await this.auth.bearer(credentials.token);
        return { principal: claims.principal, via: 'bearer', access: claims.access };
      }
      case 'malformed':
        throw new AuthError(401, 'malformed Authorization header');
    }
  }

  async authorize(req: FastifyRequest, accesses: Access[]): Promise<Decision> {
    let who;
    try {
      who = await this.principal(req);
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      return {
        granted: false,
        status: err.status,
        message: err.message,
        ...(err.status === 401 ? { challenge: this.challenge(req, accesses, err.bearerError) } : {}),
        ...(err.retryAfter === undefined ? {} : { retryAfter: err.retryAfter }),
      };
    }
    const refused: Access[] = [];
    let missing: Access | undefined;
    for (const access of accesses) {
      const notAllowed = await this.missingActions(who.principal, who.via, who.access, access);
      if (notAllowed.length === 0) continue;
      if (access.optional) refused.push(access);
      else missing ??= { ...access, actions: notAllowed };
    }
    if (missing) {
      const message = who.access
        ? tokenLacks(who.access, missing)
        : `${who.principal.name} may not ${missing.type === 'registry' ? `use the registry ${missing.name}` : `${missing.actions.join(', ')} ${missing.name}`}`;
      if (who.via === 'basic') return { granted: false, status: 403, message, principal: who.principal };
      const anonymous = who.principal.kind === 'anonymous';
      return {
        granted: false,
        status: 401,
        message: anonymous ? 'authentication required' : message,
        challenge: this.challenge(req, accesses, who.via === 'bearer' ? 'insufficient_scope' : undefined),
        principal: who.principal,
      };
    }
    const rate = await this.limiter.take(who.principal.kind === 'anonymous' ? `source:${req.ip}` : `${who.principal.kind}:${who.principal.id}`);
    if (!rate.allowed) {
      return { granted: false, status: 429, message: 'too many requests; slow down', retryAfter: rate.retryAfter, principal: who.principal };
    }
    return { granted: true, principal: who.principal, refused };
  }

  /** The actions of an access the caller may not take (none: allowed). */
  private async missingActions(
    principal: Principal,
    via: Credentials['kind'],
    tokenAccess: TokenAccess[] | undefined,
    access: Access,
  ): Promise<Access['actions']> {
    const everything: Access['actions'] = access.actions.length > 0 ? access.actions : ['*'];
    // Logged in means a user or robot: an anonymous JWT from /token is no login, only credentials.
    if (access.type === 'registry' && access.name === 'login') return principal.kind === 'anonymous' ? everything : [];
    if (access.type === 'registry' && access.name === 'credentials') return via === 'none' ? everything : [];
    // /metrics: never through a JWT from /token (a scraper sends its token itself, Basic or Bearer).
    if (access.type === 'registry' && access.name === 'metrics') return !tokenAccess && mayReadMetrics(principal) ? [] : everything;
    if (tokenAccess)
      return access.actions.filter(
        (a) => !tokenAccess.some((t) => t.type === access.type && t.name === access.name && (t.actions.includes(a) || t.actions.includes('*'))),
      );
    if (access.type === 'registry') return principal.admin && (principal.scopes?.includes('manage') ?? true) ? [] : everything;
    const allowed = await this.rbac.actions(principal, namespaceOf(access.name));
    return access.actions.filter((a) => a === '*' || !allowed.has(a));
  }
}

/** "the token grants pull,push on team/app; this request needs delete": what a Bearer token lacks. */
function tokenLacks(granted: TokenAccess[], missing: Access): string {
  const has = [...new Set(granted.filter((t) => t.type === missing.type && t.name === missing.name).flatMap((t) => t.actions))];
  const what = missing.type === 'registry' ? `the registry's ${missing.name}` : missing.name;
  return `the token grants ${has.length > 0 ? has.join(',') : 'nothing'} on ${what}; this request needs ${missing.actions.join(',') || 'access'}`;
}
