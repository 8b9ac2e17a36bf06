/**
 * v2Event on its own, for the endings a listening server reaches only by timing: a client that
 * hangs up once it has a blob's last byte, before the response's 'finish', makes fastify call
 * onRequestAbort; the pull was whole all the same.
 */
import { describe, expect, it } from 'vitest';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { v2Event, type V2Call } from '../../src/insight/v2-events.ts';

const digest = `sha256:${'a'.repeat(64)}`;

function blobGet(sent: number, size: number, method = 'GET'): { req: FastifyRequest; call: V2Call } {
  const headers: Record<string, string> = { 'content-length': String(size) };
  const reply = {
    statusCode: 200,
    elapsedTime: 3,
    raw: { headersSent: true, writableFinished: false },
    getHeader: (name: string) => headers[name],
  } as unknown as FastifyReply;
  const req = { method, headers: { 'user-agent': 'podman' }, ip: undefined } as unknown as FastifyRequest;
  return { req, call: { route: 'blob', match: { name: 'team/app', ref: digest, query: new URLSearchParams(), bytes: sent }, reply, source: '10.0.0.7' } };
}

describe('v2Event', () => {
  it('records a blob GET whose every byte went out as ok, though the client hung up before the response finished', () => {
    const { req, call } = blobGet(221, 221);
    expect(v2Event(req, call, true)).toMatchObject({ type: 'pull', object: 'blob', result: 'ok', status: 200, bytes: 221 });
  });

  it('records one the client left before the last byte as aborted, with what went out', () => {
    const { req, call } = blobGet(100, 221);
    expect(v2Event(req, call, true)).toMatchObject({ result: 'aborted', status: 200, bytes: 100 });
  });

  it('takes the address read when the route matched, not the socket the client has closed', () => {
    const { req, call } = blobGet(221, 221);
    expect(v2Event(req, call, false)).toMatchObject({ source: '10.0.0.7', userAgent: 'podman' });
  });
});
