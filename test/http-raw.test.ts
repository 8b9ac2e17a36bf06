/**
 * Bytes no HTTP client would send, over raw sockets: every one gets an answer, in full, with
 * `Connection: close`, before the socket closes; CONNECT gets 405 like any unknown method.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from './helpers/http.ts';
import { startInProcess, type InProcessServer } from './helpers/server.ts';

let server: InProcessServer;
let port: number;
beforeAll(async () => {
  server = await startInProcess();
  port = Number(new URL(server.url).port);
});
afterAll(() => server?.stop());

/** Writes raw bytes, half-closes, and collects everything until the server closes the socket. */
function exchange(raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.on('close', () => resolve(got));
    socket.on('error', reject);
    socket.end(raw);
  });
}

function parsed(answer: string): { status: number; headers: string; body: string } {
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), headers: head.toLowerCase(), body };
}

describe('raw requests', () => {
  it('answers CONNECT with 405 on any target', async () => {
    for (const target of ['example.com:443', '/v2/', '127.0.0.1:5000']) {
      const r = parsed(await exchange(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
      expect(r.status, target).toBe(405);
      expect(r.headers).toContain('connection: close');
      expect(r.headers).toContain('allow: get, head, post, put, patch, delete');
      expect(JSON.parse(r.body)).toMatchObject({ errors: [{ code: 'UNSUPPORTED' }] });
    }
  });

  it('answers heads the parser refuses with 400 (431 when too large) and Connection: close', async () => {
    const heads: [string, number][] = [
      ['GET /v2/ HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n', 400],
      ['GET /v2/ HTTP/9.9\r\nHost: x\r\n\r\n', 400],
      ['FOO@ /v2/ HTTP/1.1\r\nHost: x\r\n\r\n', 400],
      ['POST /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
      ['GET /v2/ HTT', 400],
      ['\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03', 400],
      [`GET /v2/ HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
    ];
    for (const [raw, status] of heads) {
      const r = parsed(await exchange(raw));
      expect(r.status, JSON.stringify(raw.slice(0, 40))).toBe(status);
      expect(r.headers).toContain('connection: close');
      expect(JSON.parse(r.body)).toMatchObject({ errors: [{ code: 'UNSUPPORTED' }] });
    }
    expect((await request(server.url, '/healthz')).status).toBe(200);
  });
});

describe('the root', () => {
  it('says where the APIs and the docs are', async () => {
    const r = await request(server.url, '/', { auth: false });
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ service: 'custody', endpoints: { registry: '/v2/', management: '/api/v1/' }, docs: expect.stringContaining('docs/') });
  });
});
