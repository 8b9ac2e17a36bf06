/**
 * GET and POST /token: the Docker token protocol. GET takes Basic credentials (or none, for
 * anonymous) and `scope=` parameters; POST takes the OAuth2 password grant as a form. The JWT
 * grants the intersection of what was asked and what the caller may do; a scope the caller may
 * not use comes back with no actions, as the protocol expects, and the registry then refuses.
 * A JWT is never traded for another: that would turn a leaked pull token into lasting, wider
 * access, and outlive a password reset.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AuthError, type TokenAccess } from './authenticate.ts';
import { parseAuthorization, type TokenAccessController } from './controller.ts';
import type { KeyRing } from './keys.ts';
import { isRepositoryName, namespaceOf } from '../reference.ts';
import type { Principal } from './principal.ts';
import type { Rbac } from './rbac.ts';

export interface TokenRouteDeps {
  controller: TokenAccessController;
  rbac: Rbac;
  keys: KeyRing;
  service: string;
  ttlSeconds: number;
  authenticate: (username: string, password: string, source: string, userAgent: string) => Promise<Principal>;
  /** told of every /token answer, issued or refused, once it is sent (usage events) */
  observe?: (answer: TokenAnswer) => void;
}

/** A /token request as it ended. */
export interface TokenAnswer {
  /** who asked: the principal when the credentials held, else the username given (or 'anonymous') */
  actor: string;
  actorKind: string;
  /** the personal or robot token given as the password, if any */
  tokenId: string;
  /** what the issued token grants (`repository:team/app:pull`), empty when none was issued */
  granted: string[];
  status: number;
  source: string;
  userAgent: string;
  /** ms since the epoch, when the request began */
  at: number;
  durationMicros: number;
}

/** What handle() found, for the onResponse hook: the principal and what the token grants. */
const answers = new WeakMap<FastifyRequest, { principal: Principal; granted: TokenAccess[] }>();

class ScopeError extends Error {}

/** Registry-wide scopes: the catalog, and the management API's administrator routes. */
const registryScopes = ['catalog', 'admin'];

/** `repository:<name>:<actions>` or `registry:catalog:*` / `registry:admin:manage`; names are checked like /v2 names. */
export function parseScope(scope: string): TokenAccess {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) throw new ScopeError(`invalid scope ${JSON.stringify(scope.slice(0, 200))}`);
  const type = scope.slice(0, first);
  const name = scope.slice(first + 1, last);
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter(Boolean);
  if (type === 'repository') {
    if (!isRepositoryName(name)) throw new ScopeError(`invalid repository name in scope ${JSON.stringify(scope.slice(0, 200))}`);
  } else if (!(type === 'registry' && registryScopes.includes(name))) throw new ScopeError(`unknown scope type in ${JSON.stringify(scope.slice(0, 200))}`);
  return { type, name, actions };
}

export function registerTokenRoute(app: FastifyInstance, deps: TokenRouteDeps): void {
  app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 }, (_req, body, done) =>
      done(null, new URLSearchParams(body as string)),
    );
    const observe = deps.observe;
    if (observe)
      scope.addHook('onResponse', (req, reply, done) => {
        observe(tokenAnswer(req, reply));
        done();
      });
    scope.get('/token', (req, reply) => handle(deps, req, reply, req.query as Record<string, string | string[]>, 'get'));
    scope.post('/token', (req, reply) => {
      const form = req.body instanceof URLSearchParams ? req.body : new URLSearchParams();
      return handle(deps, req, reply, Object.fromEntries([...form.keys()].map((k) => [k, form.getAll(k)])), 'post');
    });
  });
}

const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

async function handle(
  deps: TokenRouteDeps,
  req: FastifyRequest,
  reply: FastifyReply,
  params: Record<string, string | string[]>,
  via: 'get' | 'post',
): Promise<void> {
  const service = list(params.service)[0];
  if (service !== undefined && service !== deps.service)
    return fail(reply, 400, 'invalid_request', `this registry's service is ${deps.service}, not ${service.slice(0, 100)}`);
  let principal: Principal;
  let requested: TokenAccess[];
  try {
    if (via === 'post') {
      const grant = list(params.grant_type)[0];
      if (grant !== 'password') return fail(reply, 400, 'unsupported_grant_type', `grant_type ${String(grant).slice(0, 50)} is not supported; use password`);
      principal = await deps.authenticate(list(params.username)[0] ?? '', list(params.password)[0] ?? '', req.ip, req.headers['user-agent'] ?? '');
      requested = list(params.scope)
        .flatMap((s) => s.split(' '))
        .filter(Boolean)
        .map(parseScope);
    } else {
      if (parseAuthorization(req.headers.authorization).kind === 'bearer') {
        reply.header('www-authenticate', `Basic realm="${deps.service}"`);
        return fail(
          reply,
          401,
          'invalid_client',
          '/token takes a password or a personal or robot token as Basic credentials, or none; a Bearer token cannot be exchanged for another',
        );
      }
      principal = (await deps.controller.principal(req)).principal;
      requested = list(params.scope)
        .flatMap((s) => s.split(' '))
        .filter(Boolean)
        .map(parseScope);
    }
  } catch (err) {
    if (err instanceof ScopeError) return fail(reply, 400, 'invalid_scope', err.message);
    if (err instanceof AuthError) {
      if (err.status === 401) reply.header('www-authenticate', `Basic realm="${deps.service}"`);
      if (err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter));
      return fail(reply, err.status, err.status === 429 ? 'TOOMANYREQUESTS' : 'UNAUTHORIZED', err.message);
    }
    throw err;
  }
  const granted: TokenAccess[] = [];
  for (const r of requested) {
    if (r.type === 'registry') {
      const mayManage = principal.admin && (principal.scopes?.includes('manage') ?? true);
      granted.push({ ...r, actions: mayManage ? r.actions.filter((a) => a === '*' || a === 'manage') : [] });
    } else {
      const allowed = await deps.rbac.actions(principal, namespaceOf(r.name));
      granted.push({ ...r, actions: r.actions.filter((a) => (allowed as Set<string>).has(a)) });
    }
  }
  const claims: Record<string, unknown> = { sub: principal.name, pk: principal.kind, access: granted };
  if (principal.kind !== 'anonymous')
    Object.assign(claims, { pid: principal.id, adm: principal.admin || undefined, ns: principal.namespace, tid: principal.tokenId, scp: principal.scopes });
  const token = await deps.keys.sign(claims, deps.ttlSeconds, deps.service);
  answers.set(req, { principal, granted });
  const issuedAt = new Date().toISOString();
  await reply.header('cache-control', 'no-store').send({
    token,
    access_token: token,
    expires_in: deps.ttlSeconds,
    issued_at: issuedAt,
    ...(via === 'post' ? { scope: granted.map((g) => `${g.type}:${g.name}:${g.actions.join(',')}`).join(' ') } : {}),
  });
}

function tokenAnswer(req: FastifyRequest, reply: FastifyReply): TokenAnswer {
  const answer = answers.get(req);
  const p = answer?.principal;
  const elapsedMs = reply.elapsedTime;
  return {
    actor: p?.name ?? askedAs(req),
    actorKind: p?.kind ?? 'anonymous',
    tokenId: p?.tokenId ?? '',
    granted: answer ? answer.granted.filter((g) => g.actions.length > 0).map((g) => `${g.type}:${g.name}:${g.actions.join(',')}`) : [],
    status: reply.statusCode,
    source: req.ip,
    userAgent: req.headers['user-agent'] ?? '',
    at: Date.now() - Math.round(elapsedMs),
    durationMicros: Math.round(elapsedMs * 1000),
  };
}

/** The username a refused request gave (Basic, or the password grant's form), else 'anonymous'. */
function askedAs(req: FastifyRequest): string {
  const credentials = parseAuthorization(req.headers.authorization);
  const fromForm = req.body instanceof URLSearchParams ? req.body.get('username') : null;
  const name = credentials.kind === 'basic' ? credentials.username : (fromForm ?? '');
  return name === '' ? 'anonymous' : name.slice(0, 200);
}

async function fail(reply: FastifyReply, status: number, code: string, message: string): Promise<void> {
  // The Docker clients read the OCI error shape; OAuth2 clients read `error`.
  await reply.code(status).send({ errors: [{ code: code.toUpperCase(), message }], error: code, error_description: message });
}
