/**
 * The /v2 dispatcher: a fastify plugin that takes every /v2 request, finds its route in the
 * table, names it for metrics and traces, validates the name, asks the access controller, and
 * calls the handler. Bodies are not parsed here: handlers stream `request.raw` themselves (blobs)
 * or read it bounded (manifests).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { refusalHeaders, type AccessController } from '../auth/access.ts';
import { nameRepository, nameRoute } from '../insight/requests.ts';
import type { V2Call } from '../insight/v2-events.ts';
import type { Match, RegistryContext } from './context.ts';
import { OciError } from './errors.ts';
import { checkName } from './names.ts';
import { routes, type Method, type Route } from './routes.ts';

/** `observe` adds hooks to the /v2 routes only (usage events, src/insight/v2-events.ts). */
export function registerV2(app: FastifyInstance, ctx: RegistryContext, access: AccessController, observe?: (v2: FastifyInstance) => void): void {
  app.register(async (v2) => {
    v2.removeAllContentTypeParsers();
    v2.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));
    observe?.(v2);
    const handle = (req: FastifyRequest, reply: FastifyReply) => dispatch(ctx, access, req, reply);
    const methods: Method[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];
    v2.route({ method: methods, url: '/v2', handler: handle });
    v2.route({ method: methods, url: '/v2/*', handler: handle });
  });
}

async function dispatch(ctx: RegistryContext, access: AccessController, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  reply.header('docker-distribution-api-version', 'registry/2.0');
  const url = req.raw.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  const { route, found } = findRoute(path);
  const operation = route.methods[req.method as Method];
  nameRoute(req, route.template);
  const match = matchOf(route, found, query);
  if (route.named) nameRepository(req, match.name, operation?.transfer);
  if (!operation) {
    reply.header('allow', Object.keys(route.methods).join(', '));
    throw new OciError('UNSUPPORTED', `${req.method} is not supported on ${path}`);
  }
  // the client's address now: once the client has closed the connection, the socket forgets it
  req.v2 = { route: route.id, match, reply, source: req.ip } satisfies V2Call;
  const decision = await access.authorize(req, operation.access(match));
  if (!decision.granted) {
    if (decision.principal) req.principal = decision.principal;
    reply.headers(refusalHeaders(decision));
    throw new OciError(decision.status === 401 ? 'UNAUTHORIZED' : decision.status === 429 ? 'TOOMANYREQUESTS' : 'DENIED', decision.message, {
      status: decision.status,
    });
  }
  req.principal = decision.principal;
  if (decision.refused.length > 0) operation.refused?.(match);
  await operation.handle(ctx, req, reply, match);
  if (operation.audit) {
    const target = `${match.name}${match.ref ? `@${match.ref}` : ''}`;
    await ctx.audit?.record({ actor: decision.principal.name, source: req.ip, action: operation.audit, target, outcome: 'success' });
  }
}

function findRoute(path: string): { route: Route; found: RegExpExecArray } {
  for (const route of routes) {
    const found = route.pattern.exec(path);
    if (found) return { route, found };
  }
  throw new OciError('NAME_UNKNOWN', `no registry API at ${path.slice(0, 300)}`, { status: 404 });
}

/** The name and reference of a matched path, checked (NAME_INVALID when they break the grammar). */
function matchOf(route: Route, found: RegExpExecArray, query: URLSearchParams): Match {
  const name = route.named ? checkName(decodeSlashes(found[1] ?? '')) : '';
  return { name, ref: decodeReference(found[2] ?? ''), query };
}

/**
 * Some clients (@azure/container-registry) escape the '/' of a repository name, as the reference
 * registry accepts: `%2F` becomes '/', and nothing else is decoded, so anything else escaped (`%2e`,
 * NUL) fails the name grammar. Access checks see the decoded name.
 */
function decodeSlashes(name: string): string {
  return name.includes('%') ? name.replace(/%2f/gi, '/') : name;
}

/** Some clients escape the ':' of a digest; a reference never holds a '/' once decoded. */
function decodeReference(ref: string): string {
  if (!ref.includes('%')) return ref;
  let decoded: string;
  try {
    decoded = decodeURIComponent(ref);
  } catch {
    throw new OciError('NAME_INVALID', 'invalid percent-encoding in the path');
  }
  if (decoded.includes('/')) throw new OciError('NAME_INVALID', 'a reference may not contain an escaped /');
  return decoded;
}
