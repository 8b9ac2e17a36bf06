/** The one place that writes errors: OCI JSON, with the status from src/oci/errors.ts. */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OciError, ociErrorBody } from '../oci/errors.ts';
import { StorageUnavailableError } from '../storage/blobstore.ts';

/** Errors that mean the client went away mid-request; nobody is left to answer. */
const disconnects = new Set(['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'ABORT_ERR', 'EPIPE']);

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof OciError) {
      if (err.status >= 500) req.log.error({ err }, err.message);
      return send(reply, err.status, err.code, err.message, err.detail);
    }
    if (err instanceof StorageUnavailableError) {
      // The blob store (S3) is unreachable, throttling or misconfigured, after its own retries:
      // the client may try again later; nothing partial was made visible.
      req.log.warn({ err }, err.message);
      reply.header('retry-after', String(err.retryAfterSeconds));
      return send(reply, 503, 'UNAVAILABLE', `storage is unavailable: ${err.message}`);
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (req.raw.destroyed || (code !== undefined && disconnects.has(code))) {
      req.log.info({ code }, 'client disconnected before the request was complete');
      return send(reply, 400, 'BLOB_UPLOAD_INVALID', 'the request body ended early');
    }
    const status = (err as FastifyError).statusCode;
    if (status !== undefined && status >= 400 && status < 500) return send(reply, status, 'UNSUPPORTED', err.message);
    req.log.error({ err }, 'unexpected error');
    return send(reply, 500, 'UNKNOWN', 'internal server error');
  });
  app.setNotFoundHandler((req, reply) => send(reply, 404, 'NAME_UNKNOWN', `no route ${req.method} ${req.url.split('?')[0]?.slice(0, 300)}`));
}

function send(reply: FastifyReply, status: number, code: string, message: string, detail?: unknown): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'application/json')
    .send(ociErrorBody(code, message, detail));
}

/** Requests fastify refuses before routing (a malformed URL, say) get the same JSON shape. */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  send(reply, err.statusCode && err.statusCode < 500 ? err.statusCode : 400, 'NAME_INVALID', err.message);
}

/**
 * A request head node's parser refuses (or one too large, or too slow) gets its answer written in
 * full before the socket closes: fastify's default destroys the socket right after writing, which
 * can drop the answer, and sends no `Connection: close`.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const [status, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'the request head is larger than the server accepts']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'the request head took too long to arrive']
        : [400, `the request head cannot be parsed (${err.code ?? 'malformed'})`];
  answerAndClose(socket, status, 'UNSUPPORTED', message);
}

/** CONNECT is no registry method: 405, like any other unknown method, instead of a dropped socket. */
export function answerConnect(_req: IncomingMessage, socket: Duplex): void {
  answerAndClose(socket, 405, 'UNSUPPORTED', 'CONNECT is not supported: this is a registry, not a proxy', 'Allow: GET, HEAD, POST, PUT, PATCH, DELETE\r\n');
}

function answerAndClose(socket: Duplex, status: number, code: string, message: string, extraHeaders = ''): void {
  const body = ociErrorBody(code, message);
  const head =
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}Connection: close\r\n\r\n`;
  // end(), not destroy(): the answer is flushed, then the socket closes; a peer that never reads
  // is cut off after a few seconds.
  socket.end(head + body);
  setTimeout(() => socket.destroy(), 5000).unref();
}
