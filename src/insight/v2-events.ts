/**
 * Usage events of the Distribution API, from outside the handlers: hooks on the /v2 routes read
 * what the dispatcher left on the request once it matched a route (`req.v2`: the route, the name
 * and reference, the reply), who asked, and the response, and hand the recorder one event.
 *
 * - pull: manifest GET and HEAD, blob GET and HEAD;
 * - push: manifest PUT, a blob upload's finishing PUT, a monolithic POST or a mount;
 * - delete: manifest or tag DELETE, blob DELETE.
 *
 * Bytes are what went out for a pull (a blob's body as the socket took it, counted by the copy
 * in src/oci/blobs.ts; a manifest's body once the response finished; 0 for HEAD) and what was
 * stored for a push (the manifest, or the blob the upload assembled; 0 for a mount). A request
 * the client abandons is recorded when the connection closes, with result 'aborted' and the bytes
 * sent until then: fastify's onResponse comes only for responses that finish, onRequestAbort for
 * the others. A 401 to a request without credentials is the token flow's challenge, not a refusal,
 * and is not recorded.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EventObject, EventResult, EventType, UsageEvent } from '../meta/insight.ts';
import { namespaceOf } from '../reference.ts';

/** What the /v2 dispatcher leaves on a request once it has matched its route (src/oci/dispatch.ts). */
export interface V2Call {
  /** the route's id in src/oci/routes.ts */
  route: string;
  match: {
    name: string;
    ref: string;
    query: URLSearchParams;
    /** a blob's body bytes that went out, or the size of what a push stored */
    bytes?: number;
  };
  reply: FastifyReply;
  /**
   * the client's address (req.ip), read when the route matched: a response that ends after the
   * client closed the connection (a blob it read to the end and hung up on) has a socket that no
   * longer knows its peer, and req.ip is then undefined
   */
  source: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    v2?: V2Call;
  }
}

export interface EventSink {
  record(event: UsageEvent): void;
}

const noDetail: Record<string, unknown> = Object.freeze({});
const maxUserAgent = 512;

/** Adds the hooks to the /v2 plugin (registerV2's `observe`). */
export function recordV2Events(v2: FastifyInstance, sink: EventSink): void {
  v2.addHook('onResponse', (req, _reply, done) => {
    const call = req.v2;
    if (call) {
      req.v2 = undefined;
      const event = v2Event(req, call, false);
      if (event) sink.record(event);
    }
    done();
  });
  v2.addHook('onRequestAbort', (req, done) => {
    const call = req.v2;
    if (call) {
      req.v2 = undefined;
      const event = v2Event(req, call, true);
      if (event) sink.record(event);
    }
    done();
  });
}

/** The event a matched /v2 request makes, if it is one that is recorded. */
export function v2Event(req: FastifyRequest, call: V2Call, aborted: boolean): UsageEvent | undefined {
  const { route, match, reply } = call;
  const method = req.method;
  const ref = match.ref;
  const byDigest = ref.includes(':');
  let type: EventType;
  let object: EventObject;
  switch (route) {
    case 'manifest':
      type = method === 'GET' || method === 'HEAD' ? 'pull' : method === 'PUT' ? 'push' : 'delete';
      object = type === 'delete' && !byDigest ? 'tag' : 'manifest';
      break;
    case 'blob':
      type = method === 'DELETE' ? 'delete' : 'pull';
      object = 'blob';
      break;
    case 'upload':
      if (method !== 'PUT') return undefined;
      type = 'push';
      object = 'blob';
      break;
    case 'upload-start':
      type = 'push';
      object = 'blob';
      break;
    default:
      return undefined;
  }
  const raw = reply.raw;
  // A client may hang up the moment it has a blob's last byte, before the response's 'finish'
  // (before the copy even returned to end it): fastify then calls onRequestAbort, but the pull
  // was whole, every byte's write having completed.
  if (aborted && route === 'blob' && req.method === 'GET' && match.bytes !== undefined && match.bytes === Number(reply.getHeader('content-length') ?? -1))
    aborted = false;
  const status = aborted && !raw.headersSent ? 0 : reply.statusCode;
  // an upload that starts (202) is no push yet; its finishing PUT is
  if (route === 'upload-start' && status === 202) return undefined;
  if (status === 401 && req.headers.authorization === undefined) return undefined;
  const ok = status > 0 && status < 400;
  const result: EventResult = aborted ? 'aborted' : status === 401 || status === 403 || status === 429 ? 'denied' : ok ? 'ok' : 'error';

  let digest: string;
  let mediaType = '';
  let bytes = 0;
  let detail = noDetail;
  if (object === 'blob') {
    digest = route === 'blob' ? ref : (match.query.get('digest') ?? match.query.get('mount') ?? '');
    bytes = match.bytes ?? 0;
    if (route === 'upload-start' && status === 201 && match.query.get('mount') !== null) detail = { mountedFrom: match.query.get('from') ?? '' };
  } else {
    const served = ok ? reply.getHeader('docker-content-digest') : undefined;
    digest = typeof served === 'string' ? served : byDigest ? ref : '';
    if (type === 'pull') {
      if (ok) mediaType = String(reply.getHeader('content-type') ?? '');
      if (method === 'GET' && ok && raw.writableFinished) bytes = Number(reply.getHeader('content-length') ?? 0);
    } else if (type === 'push') {
      mediaType = req.headers['content-type'] ?? '';
      bytes = match.bytes ?? 0;
    }
  }
  const principal = req.principal;
  const userAgent = req.headers['user-agent'] ?? '';
  const elapsedMs = reply.elapsedTime;
  return {
    id: '',
    at: Date.now() - Math.round(elapsedMs),
    type,
    object,
    namespace: namespaceOf(match.name),
    repository: match.name,
    digest,
    tag: object !== 'blob' && !byDigest ? ref : '',
    mediaType,
    actor: principal?.name ?? 'anonymous',
    actorKind: principal?.kind ?? 'anonymous',
    tokenId: principal?.tokenId ?? '',
    bytes,
    userAgent: userAgent.length > maxUserAgent ? userAgent.slice(0, maxUserAgent) : userAgent,
    source: call.source,
    durationMicros: Math.round(elapsedMs * 1000),
    status,
    result,
    detail,
  };
}
