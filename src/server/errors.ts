/** The one place that writes errors: OCI JSON, with the status from src/oci/errors.ts. */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OciError, ociErrorBody } from '../oci/errors.ts';

/** Errors that mean the client went away mid-request; nobody is left to answer. */
const disconnects = new Set(['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'ABORT_ERR', 'EPIPE']);

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof OciError) {
      if (err.status >= 500) req.log.error({ err }, err.message);
      return send(reply, err.status, err.code, err.message, err.detail);
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
  return reply.code(status).header('content-type', 'application/json').send(ociErrorBody(code, message, detail));
}

/** Requests fastify refuses before routing (a malformed URL, say) get the same JSON shape. */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  send(reply, err.statusCode && err.statusCode < 500 ? err.statusCode : 400, 'NAME_INVALID', err.message);
}
