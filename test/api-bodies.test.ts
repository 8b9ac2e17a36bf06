/**
 * /api/v1 asks who the caller is before it reads a body, and refuses JSON that nests deeper than
 * 64 levels before parsing it. Before the fix, 40 anonymous 1 MiB nested bodies were each parsed
 * (JSON.parse) and only then answered 401, and an admin's trust document with an 800 KB nested
 * trustedRoot was a 500 (a stack overflow in JSON.stringify).
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { basic, request, type Reply } from './helpers/http.ts';
import { startInjected, startInProcess, tempDir, type InProcessServer } from './helpers/server.ts';

const json = { 'content-type': 'application/json' };
const errorOf = (r: Reply) => r.json<{ error: { code: string; message: string } }>().error;
/** A trust document `size` bytes long whose trustedRoot nests about size/2 levels deep. */
const nestedTrust = (size: number) => {
  const head = '{"sigstore":{"trustedRoot":{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":';
  const levels = Math.floor((size - head.length - 3) / 2);
  return `${head}${'['.repeat(levels)}${']'.repeat(levels)}}}}`;
};

async function withNamespace(server: InProcessServer): Promise<InProcessServer> {
  expect((await request(server.url, '/api/v1/namespaces/x', { method: 'PUT', body: '{}', headers: json })).status).toBe(200);
  return server;
}

describe('/api/v1 request bodies sent over a socket', () => {
  // A listening server: the 401 goes out while the client is still sending a body the server never reads.
  let server: InProcessServer;
  beforeAll(async () => {
    server = await withNamespace(await startInProcess());
  });
  afterAll(async () => {
    // The server is still reading and dropping the 40 MiB it answered 401 to; once read, those
    // connections would sit idle for keepAliveTimeout (5 s) before close() lets go of them.
    server.app.server.closeAllConnections();
    await server.stop();
  });

  it('answers 401 to anonymous 1 MiB nested bodies without parsing them, and keeps serving', async () => {
    const body = nestedTrust(1024 * 1024 - 1);
    const parse = vi.spyOn(JSON, 'parse');
    try {
      const sent: Promise<Reply>[] = [];
      const health: Promise<Reply>[] = [];
      for (let i = 0; i < 40; i++) {
        sent.push(request(server.url, '/api/v1/namespaces/x/trust', { method: 'PUT', body, headers: json, auth: false }));
        health.push(request(server.url, '/healthz', { auth: false }));
      }
      const replies = await Promise.all(sent);
      for (const r of replies) {
        expect(r.status).toBe(401);
        expect(errorOf(r)).toEqual({ code: 'UNAUTHORIZED', message: 'authentication required' });
        expect(r.headers['www-authenticate']).toMatch(`Bearer realm="${server.url}/token",service="custody"`);
      }
      expect((await Promise.all(health)).map((r) => r.status)).toEqual(Array(40).fill(200));
      // not one of the megabytes reached JSON.parse
      expect(parse.mock.calls.filter(([text]) => typeof text === 'string' && text.length > 100_000)).toHaveLength(0);
    } finally {
      parse.mockRestore();
    }
  });
});

describe('/api/v1 request bodies', () => {
  let server: InProcessServer;
  beforeAll(async () => {
    server = await withNamespace(await startInjected());
  });
  afterAll(async () => server.stop());

  it('answers 401 before the body to wrong, malformed and invalid credentials', async () => {
    const body = nestedTrust(64 * 1024 - 1);
    const put = (authorization: string) => request(server.url, '/api/v1/teams', { method: 'POST', body, headers: { ...json, authorization }, auth: false });
    const wrong = await put(basic('admin', 'not the password'));
    expect(wrong.status).toBe(401);
    expect(errorOf(wrong).message).toBe('invalid username or password');
    expect(wrong.headers['www-authenticate']).toMatch(/^Bearer realm="/);
    expect((await put('Digest x')).status).toBe(401);
    const jwt = await put('Bearer not.a.jwt');
    expect(jwt.status).toBe(401);
    expect(jwt.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  it('refuses an authenticated body that nests deeper than 64 levels with a 400', async () => {
    const team = (name: string) => request(server.url, '/api/v1/teams', { method: 'POST', body: `{"name":${name}}`, headers: json });
    const tooDeep = await team(`${'['.repeat(64)}${']'.repeat(64)}`);
    expect(tooDeep.status).toBe(400);
    expect(errorOf(tooDeep)).toEqual({ code: 'INVALID', message: 'the body nests too deeply (more than 64 levels of objects and arrays)' });
    // 64 levels are read, and judged by the route's schema as before; brackets inside strings do not count
    const deepest = await team(`${'['.repeat(63)}${']'.repeat(63)}`);
    expect(deepest.status).toBe(400);
    expect(errorOf(deepest).message).toMatch(/^invalid team \(name\)/);
    expect((await team(JSON.stringify('[{'.repeat(100)))).status).toBe(400);
    expect(errorOf(await team(JSON.stringify('[{'.repeat(100)))).message).toMatch(/^invalid team \(name\)/);
    expect((await team('"devs"')).status).toBe(201);
  });

  it('refuses a trust document with an 800 KB nested trustedRoot with a 400, not a 500', async () => {
    const r = await request(server.url, '/api/v1/namespaces/x/trust', { method: 'PUT', body: nestedTrust(800_000), headers: json });
    expect(r.status).toBe(400);
    expect(errorOf(r).message).toMatch(/nests too deeply/);
    const view = await request(server.url, '/api/v1/namespaces/x/trust');
    expect(view.status).toBe(200);
    expect(view.json<{ source: string }>().source).toBe('none');
  });
});

describe('trust files named by the configuration', () => {
  it('stop the start with a clear message when they nest too deeply', async () => {
    const dir = await tempDir();
    const root = path.join(dir, 'trusted_root.json');
    await writeFile(root, `{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":${'['.repeat(400_000)}${']'.repeat(400_000)}}`);
    await expect(startInjected({ config: { trust: { sigstoreTrustedRoot: root } } })).rejects.toThrow(
      `trust.sigstoreTrustedRoot: ${root} nests too deeply (more than 64 levels of objects and arrays)`,
    );
    const policy = path.join(dir, 'trustpolicy.json');
    await writeFile(policy, `{"version":"1.0","trustPolicies":${'['.repeat(100)}${']'.repeat(100)}}`);
    await expect(startInjected({ config: { trust: { namespaces: { shop: { notary: { trustPolicy: policy } } } } } })).rejects.toThrow(
      /trust\.namespaces\.shop\.notary\.trustPolicy: .* nests too deeply/,
    );
    await rm(dir, { recursive: true, force: true });
  });
});
