/**
 * Who may read a namespace's TUF repository: whoever may pull from the namespace. Every /tuf
 * route asks the access controller; refusals are its 401 challenge or 403, as JSON.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerToken, createUser } from './helpers/accounts.ts';
import { basic, request, type Reply } from './helpers/http.ts';
import { pushImage, startTufServer, tufClient, type TufServer } from './helpers/tuf.ts';

let server: TufServer;
let target: string;
const readerAuth = basic('reader', 'reader-password');
const strangerAuth = basic('stranger', 'stranger-password');

const errorOf = (r: Reply) => r.json<{ error: { code: string; message: string } }>().error;

beforeAll(async () => {
  server = await startTufServer({}, { listen: false });
  await createUser(server.meta.accounts, 'reader', 'reader-password', { team: 'reader' });
  await createUser(server.meta.accounts, 'stranger', 'stranger-password', { elsewhere: 'admin' });
  const image = await pushImage(server.url, 'team/app', '1.0', 'guarded');
  server.signed.sign('team/app', '1.0');
  target = `/tuf/team/targets/team/${image.digest.slice('sha256:'.length)}.app:1.0`;
});
afterAll(() => server?.stop());

describe('access to /tuf', () => {
  it('asks anonymous callers to log in, with the pull scope in the challenge', async () => {
    for (const path of ['/tuf/team/root.json', '/tuf/team/timestamp.json', '/tuf/team/1.root.json', target]) {
      const r = await request(server.url, path, { auth: false });
      expect(r.status, path).toBe(401);
      expect(r.headers['www-authenticate'], path).toMatch(/^Bearer realm=".*",service="custody",scope="repository:team:pull"$/);
      expect(errorOf(r).code).toBe('UNAUTHORIZED');
    }
    const c = await tufClient(server, 'team', { authorization: false });
    await expect(c.updater().refresh()).rejects.toThrow(/401/);
  });

  it('refuses a user without a role in the namespace with 403, before saying whether anything exists', async () => {
    for (const path of ['/tuf/team/root.json', target, '/tuf/nothing-here/root.json']) {
      const r = await request(server.url, path, { headers: { authorization: strangerAuth } });
      expect(r.status, path).toBe(403);
      expect(errorOf(r).code).toBe('DENIED');
    }
    expect((await request(server.url, '/api/v1/namespaces/team/tuf', { headers: { authorization: strangerAuth } })).status).toBe(403);
  });

  it('lets readers in, with Basic credentials or a Bearer token for the namespace', async () => {
    const c = await tufClient(server, 'team', { authorization: readerAuth });
    const updater = c.updater();
    await updater.refresh();
    expect(await updater.getTargetInfo('team/app:1.0')).toBeDefined();

    const token = await bearerToken(server.url, ['repository:team:pull'], { username: 'reader', password: 'reader-password' });
    const viaToken = await tufClient(server, 'team', { authorization: `Bearer ${token}` });
    await viaToken.updater().refresh();
    const wrongScope = await bearerToken(server.url, ['repository:team/app:pull'], { username: 'reader', password: 'reader-password' });
    expect((await request(server.url, '/tuf/team/timestamp.json', { headers: { authorization: `Bearer ${wrongScope}` } })).status).toBe(401);
  });

  it('lets anyone read a namespace with anonymous read', async () => {
    const set = await request(server.url, '/api/v1/namespaces/team', {
      method: 'PUT',
      body: JSON.stringify({ anonymousRead: true }),
      headers: { 'content-type': 'application/json' },
    });
    expect(set.status, set.body.toString()).toBe(200);
    const c = await tufClient(server, 'team', { authorization: false });
    const updater = c.updater();
    await updater.refresh();
    const info = await updater.getTargetInfo('team/app:1.0');
    await updater.downloadTarget(info!);
    expect((await request(server.url, target, { auth: false })).status).toBe(200);
    // Reading is all anonymous may do.
    expect(
      (
        await request(server.url, '/api/v1/namespaces/team/tuf/rotate', {
          method: 'POST',
          auth: false,
          body: '{"role":"root"}',
          headers: { 'content-type': 'application/json' },
        })
      ).status,
    ).toBe(401);
  });
});
