/**
 * Every request, measured from outside the handlers: one onRequest hook (the first the app runs)
 * starts the clock and, with tracing on, the server span, and the response's 'close' event (which
 * comes for aborted responses too, unlike fastify's onResponse) records the route, method and
 * status, the duration and the bytes the connection moved.
 *
 * A route is named by its template, never by its URL: fastify's routeOptions.url for the routes
 * it matches (`/api/v1/namespaces/:ns`), and for /v2, whose dispatcher matches paths itself, the
 * template it names with nameRoute (`/v2/:name/manifests/:reference`).
 */
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Metrics } from './metrics.ts';
import type { Tracing } from './tracing.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** the route's template, set by a router that matches paths itself (the /v2 dispatcher) */
    routeTemplate: string | undefined;
    /** the repository a /v2 request names, once its name is checked */
    repository: string | undefined;
    /** whether the request's bytes are a pull (sent) or a push (received) of its repository */
    transfer: 'pull' | 'push' | undefined;
  }
}

/** What a request did, as the metrics record it. */
export interface Completed {
  route: string;
  method: string;
  status: number;
  seconds: number;
  bytesIn: number;
  bytesOut: number;
  repository: string | undefined;
  transfer: 'pull' | 'push' | undefined;
}

/** The /v2 dispatcher names the route it matched. */
export function nameRoute(req: FastifyRequest, template: string): void {
  req.routeTemplate = template;
}

export function nameRepository(req: FastifyRequest, repository: string, transfer: 'pull' | 'push' | undefined): void {
  req.repository = repository;
  req.transfer = transfer;
}

/** The route of a request: its template, or `unmatched` for a request no route took (a 404). */
export function routeOf(req: FastifyRequest): string {
  return req.routeTemplate ?? req.routeOptions.url ?? 'unmatched';
}

const counted = Symbol('custody.bytesCounted');
type CountedSocket = Socket & { [counted]?: { read: number; written: number } };

/**
 * The bytes a connection moved since its previous request ended: headers included, and for an
 * aborted response only what was handed to the connection. Requests without a real socket
 * (fastify's inject()) move none.
 */
function bytesSince(socket: CountedSocket | null | undefined): { read: number; written: number } {
  if (!socket || typeof socket.bytesRead !== 'number') return { read: 0, written: 0 };
  const read = socket.bytesRead;
  const written = socket.bytesWritten;
  const last = socket[counted];
  socket[counted] = { read, written };
  return last ? { read: read - last.read, written: written - last.written } : { read, written };
}

/** Installs the hook; with neither metrics nor tracing, only the request fields are declared. */
export function observeRequests(app: FastifyInstance, parts: { metrics?: Metrics; tracing?: Tracing }): void {
  app.decorateRequest('routeTemplate', undefined);
  app.decorateRequest('repository', undefined);
  app.decorateRequest('transfer', undefined);
  const { metrics, tracing } = parts;
  if (!metrics && !tracing) return;
  app.addHook('onRequest', (req, reply, done) => {
    const started = performance.now();
    const span = tracing?.startRequest(req);
    metrics?.requestStarted();
    reply.raw.once('close', () => {
      const finished = complete(req, reply, started);
      metrics?.requestDone(finished);
      if (span) tracing?.endRequest(span, finished);
    });
    if (span && tracing) tracing.within(span, done);
    else done();
  });
}

function complete(req: FastifyRequest, reply: FastifyReply, started: number): Completed {
  const bytes = bytesSince(req.raw.socket);
  return {
    route: routeOf(req),
    method: req.method,
    status: reply.raw.statusCode,
    seconds: (performance.now() - started) / 1000,
    bytesIn: bytes.read,
    bytesOut: bytes.written,
    repository: req.repository,
    transfer: req.transfer,
  };
}
