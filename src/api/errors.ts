/**
 * The one table of /api/v1 error codes, and the one place that writes them:
 * `{"error":{"code":"…","message":"…"}}` with the code's status. Handlers throw an ApiError;
 * fastify's own refusals (bad JSON, a body too large) and unexpected errors get the same shape.
 */
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { z } from 'zod';

export const apiErrors = {
  INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  TOO_MANY_REQUESTS: 429,
  INTERNAL: 500,
} as const;

export type ApiCode = keyof typeof apiErrors;

export class ApiError extends Error {
  readonly code: ApiCode;

  constructor(code: ApiCode, message: string) {
    super(message);
    this.code = code;
  }

  get status(): number {
    return apiErrors[this.code];
  }
}

export const invalid = (message: string) => new ApiError('INVALID', message);
export const notFound = (message: string) => new ApiError('NOT_FOUND', message);
export const conflict = (message: string) => new ApiError('CONFLICT', message);
export const denied = (message: string) => new ApiError('DENIED', message);

/** The code for a status the access controller answered with. */
export function codeOf(status: number): ApiCode {
  const found = (Object.keys(apiErrors) as ApiCode[]).find((code) => apiErrors[code] === status);
  return found ?? (status >= 500 ? 'INTERNAL' : 'INVALID');
}

/** Parses untrusted input with a schema; the first problem becomes a 400. */
export function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue && issue.path.length > 0 ? ` (${issue.path.map(String).join('.')})` : '';
  throw invalid(`invalid ${what}${where}: ${issue?.message ?? 'malformed'}`);
}

export function sendError(reply: FastifyReply, code: ApiCode, message: string): FastifyReply {
  return reply.code(apiErrors[code]).header('content-type', 'application/json; charset=utf-8').send({ error: { code, message } });
}

/** Error and not-found handlers for the /api/v1 scope (they replace the OCI ones there). */
export function installApiErrors(api: FastifyInstance): void {
  api.setErrorHandler((err: FastifyError | Error, req, reply) => {
    if (err instanceof ApiError) return sendError(reply, err.code, err.message);
    const status = (err as FastifyError).statusCode;
    if (status !== undefined && status >= 400 && status < 500) return sendError(reply, codeOf(status), err.message);
    req.log.error({ err }, 'unexpected error');
    return sendError(reply, 'INTERNAL', 'internal server error');
  });
  api.setNotFoundHandler((req, reply) => sendError(reply, 'NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]?.slice(0, 300)}`));
}
