/**
 * trustedProxies: X-Forwarded-For, -Proto and -Host are believed from the proxies listed, and
 * from nobody else. The server runs as a process (`npm run build` first) trusting 127.0.0.2/31;
 * the test talks to it from 127.0.0.2 (a proxy) and from 127.0.0.1 (anyone else). A believed
 * address is the one the request log, the audit log and the login throttle see; believed
 * -Proto/-Host make the realm of challenges.
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { basic, request, type RequestOptions } from './helpers/http.ts';
import { startProcess, tempDir, type ProcessServer } from './helpers/server.ts';

const proxy = '127.0.0.2';
const stranger = '127.0.0.1';

describe('trustedProxies', () => {
  let server: ProcessServer;
  let work: string;

  beforeAll(async () => {
    work = await tempDir('custody-proxies-');
    const config = path.join(work, 'custody.yaml');
    await writeFile(config, 'trustedProxies: [127.0.0.2/31]\nauth:\n  loginFailures:\n    max: 2\n');
    server = await startProcess({ args: ['--config', config] });
  });
  afterAll(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const from = (address: string, headers: Record<string, string>, options: RequestOptions = {}) =>
    request(server.url, '/v2/', { from: address, ...options, headers: { ...headers, ...options.headers } });

  type Logged = { msg?: string; remote?: string; clientRequestId?: string; status?: number };
  async function logged(clientRequestId: string): Promise<Logged> {
    return vi.waitFor(
      () => {
        const line = server
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Logged)
          .find((e) => e.msg === 'request' && e.clientRequestId === clientRequestId);
        if (!line) throw new Error(`no request logged with ${clientRequestId}`);
        return line;
      },
      { timeout: 5000, interval: 50 },
    );
  }

  async function loginEvents(): Promise<{ actor: string; source: string; outcome: string }[]> {
    const r = await request(server.url, '/api/v1/audit?action=login&limit=200');
    return r.json<{ events: { actor: string; source: string; outcome: string }[] }>().events;
  }

  it('the realm follows X-Forwarded-Proto and -Host from a proxy, not from anyone else', async () => {
    const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'registry.example.com' };
    const viaProxy = await from(proxy, forwarded, { auth: false });
    expect(viaProxy.status).toBe(401);
    expect(viaProxy.headers['www-authenticate']).toBe('Bearer realm="https://registry.example.com/token",service="custody"');
    const direct = await from(stranger, forwarded, { auth: false });
    expect(direct.status).toBe(401);
    expect(direct.headers['www-authenticate']).toBe(`Bearer realm="http://${server.host}/token",service="custody"`);
  });

  it('the request log shows the forwarded address from a proxy, and the peer otherwise', async () => {
    await from(proxy, { 'x-forwarded-for': '203.0.113.10', 'x-request-id': 'via-proxy' });
    expect(await logged('via-proxy')).toMatchObject({ remote: '203.0.113.10', status: 200 });
    await from(stranger, { 'x-forwarded-for': '203.0.113.10', 'x-request-id': 'direct' });
    expect(await logged('direct')).toMatchObject({ remote: stranger, status: 200 });
    // An address the client put in front of the proxy's is not believed: only what the proxy added.
    await from(proxy, { 'x-forwarded-for': '198.51.100.99, 203.0.113.11', 'x-request-id': 'prepended' });
    expect(await logged('prepended')).toMatchObject({ remote: '203.0.113.11' });
  });

  it('the audit log and the login throttle count the forwarded address from a proxy only', async () => {
    const wrong = { authorization: basic('admin', 'not-the-password') };
    const right = {}; // the test admin's own credentials (the default of request())
    // Wrong passwords for admin from 203.0.113.20, through the proxy, until that address is held
    // back (after two failures each attempt waits 1 s, then 2, 4 …: a slow machine needs more).
    let failures = 0;
    let status = 401;
    while (status === 401 && failures < 12) {
      status = (await from(proxy, { 'x-forwarded-for': '203.0.113.20' }, { headers: wrong })).status;
      if (status === 401) failures++;
    }
    expect(status).toBe(429);
    expect(failures).toBeGreaterThanOrEqual(2);
    // … and no other: another client behind the same proxy logs in, and so does a client that
    // only claims to be 203.0.113.20 (the header is not believed from it).
    expect((await from(proxy, { 'x-forwarded-for': '203.0.113.21' }, { headers: right })).status).toBe(200);
    expect((await from(stranger, { 'x-forwarded-for': '203.0.113.20' }, { headers: right })).status).toBe(200);

    // From anyone else the header is ignored: the failure is the peer's.
    expect((await from(stranger, { 'x-forwarded-for': '203.0.113.30' }, { headers: wrong })).status).toBe(401);
    await vi.waitFor(async () => {
      const sources = (await loginEvents()).filter((e) => e.outcome === 'failure').map((e) => e.source);
      expect(sources.sort()).toEqual([stranger, ...Array<string>(failures).fill('203.0.113.20')].sort());
    });
  });
});
