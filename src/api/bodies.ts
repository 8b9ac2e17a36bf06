/**
 * How /api/v1 reads request bodies: only for callers whose credentials hold, and only JSON that
 * nests at most maxJsonDepth levels. Every /api/v1 route that takes a body needs at least a
 * logged-in caller (docs/api-v1.md), so asking who the caller is before reading the body refuses
 * nobody the routes would have served, and an anonymous client can no longer make the server read
 * and parse a megabyte it was always going to refuse.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { refusalHeaders, type Decision } from '../auth/access.ts';
import { AuthError } from '../auth/authenticate.ts';
import { maxJsonDepth, nestsDeeperThan } from '../json-limits.ts';
import type { ApiContext } from './context.ts';
import { ApiError, codeOf, invalid } from './errors.ts';

/** Whether fastify will read a body for this request (it never reads one for GET or HEAD). */
function carriesBody(req: FastifyRequest): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * An onRequest hook: for a request with a body, the caller must be someone (valid credentials, not
 * anonymous), or the answer is the 401 the route would have given, with the controller's
 * challenge, before a byte of the body is parsed. The route still decides what that caller may do.
 */
export function authenticateBeforeBody(ctx: ApiContext): (req: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const controller = ctx.auth.controller;
  return async (req, reply) => {
    if (!carriesBody(req)) return;
    let refusal: Extract<Decision, { granted: false }> | undefined;
    try {
      // an anonymous JWT from /token is no login either
      if ((await controller.principal(req)).principal.kind === 'anonymous')
        refusal = { granted: false, status: 401, message: 'authentication required', challenge: controller.challenge(req, []) };
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      refusal = {
        granted: false,
        status: err.status,
        message: err.message,
        ...(err.status === 401 ? { challenge: controller.challenge(req, [], err.bearerError) } : {}),
        ...(err.retryAfter === undefined ? {} : { retryAfter: err.retryAfter }),
      };
    }
    if (refusal) {
      reply.headers(refusalHeaders(refusal));
      throw new ApiError(codeOf(refusal.status), refusal.message);
    }
  };
}

/** application/json, refused when it nests deeper than maxJsonDepth (checked before JSON.parse). */
export function installJsonParser(api: FastifyInstance, bodyLimit: number): void {
  const parseJson = api.getDefaultJsonParser('error', 'error');
  api.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit }, (req, body: string, done) => {
    if (nestsDeeperThan(body, maxJsonDepth)) {
      done(invalid(`the body nests too deeply (more than ${maxJsonDepth} levels of objects and arrays)`), undefined);
      return;
    }
    void parseJson(req, body, done);
  });
}
