/**
 * Logging in with real clients: `skopeo login` and `podman login` against the token flow, wrong
 * passwords refused, readers that may pull but not push, writers and robots that may push (a
 * robot only in its namespace), and `skopeo logout`. Accounts are made directly in the metadata
 * store the in-process server uses; the audit log and the raw requests show what the clients did.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { hashPassword } from '../../src/auth/passwords.ts';
import { newTokenSecret } from '../../src/auth/secrets.ts';
import type { AuditEvent } from '../../src/meta/accounts.ts';
import type { MetaStore } from '../../src/meta/metastore.ts';
import { openMetaStore } from '../../src/meta/open.ts';
import { haveClient, run } from '../helpers/clients.ts';
import { request, testAdmin } from '../helpers/http.ts';
import { imageLayout } from '../helpers/layout.ts';
import { startInProcess, tempDir, type InProcessServer } from '../helpers/server.ts';

const available = (await haveClient('skopeo')) && (await haveClient('podman'));

/** What the clients print when the registry refuses their credentials with a 401. */
const refusedLogin = /invalid username\/password/;
/** What skopeo prints when the registry (or the token it got) does not allow an operation. */
const refusedAccess = /denied: requested access to the resource is denied/;

describe.runIf(available)('logging in with skopeo and podman', () => {
  let server: InProcessServer;
  let meta: MetaStore;
  let work: string;
  /** every request the server received: method, path, the scheme and user of its credentials, and the status it got */
  const seen: { method: string; url: string; scheme?: string; user?: string; status?: number }[] = [];
  const users = { reader: 'reader-password', writer: 'writer-password', leaver: 'leaver-password' };
  let robot: { name: string; token: string };

  const tls = ['--src-tls-verify=false', '--dest-tls-verify=false'];
  /** Each identity keeps its credentials in its own auth file. */
  const authFile = (who: string) => path.join(work, `auth-${who}.json`);
  const skopeo = (who: string, ...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { REGISTRY_AUTH_FILE: authFile(who) });
  const podman = (who: string, ...args: string[]) =>
    run(
      'podman',
      [
        '--root',
        path.join(work, 'podman', 'root'),
        '--runroot',
        path.join(work, 'podman', 'run'),
        '--storage-driver',
        'vfs',
        '--cgroup-manager',
        'cgroupfs',
        '--events-backend',
        'file',
        ...args,
      ],
      {
        XDG_RUNTIME_DIR: path.join(work, 'xdg'),
        REGISTRY_AUTH_FILE: authFile(who),
      },
    );
  const login = (who: string, username: string, password: string) => skopeo(who, 'login', '--tls-verify=false', '-u', username, '-p', password, server.host);
  const savedAuths = async (who: string) => (JSON.parse(await readFile(authFile(who), 'utf8')) as { auths: Record<string, { auth: string }> }).auths;

  /** Audit events, waited for: the server writes an event after it has answered. */
  async function audited(match: Partial<AuditEvent>): Promise<AuditEvent> {
    return vi.waitFor(
      async () => {
        const events = await meta.accounts.query({ action: match.action, actor: match.actor, limit: 200 });
        const found = events.find((e) => Object.entries(match).every(([k, v]) => e[k as keyof AuditEvent] === v));
        if (!found)
          throw new Error(`no audit event ${JSON.stringify(match)} among ${JSON.stringify(events.map((e) => [e.actor, e.action, e.target, e.outcome]))}`);
        return found;
      },
      { timeout: 5000, interval: 50 },
    );
  }

  /** An admin-pushed image in a fresh repository, to read from. */
  async function seed(repo: string): Promise<{ digest: string }> {
    const src = path.join(work, `seed-${repo.replaceAll('/', '-')}`);
    const manifest = await imageLayout(src, 'v1');
    await skopeo('admin', 'copy', ...tls, `oci:${src}:v1`, `docker://${server.host}/${repo}:v1`);
    return manifest;
  }

  beforeAll(async () => {
    work = await tempDir('custody-login-');
    meta = await openMetaStore(path.join(work, 'custody.db'));
    server = await startInProcess({ dataDir: work, parts: { meta } });
    // Watch the raw requests beside fastify's own handler (which answers them).
    server.app.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const [scheme, value] = (req.headers.authorization ?? '').split(' ');
      const user = scheme?.toLowerCase() === 'basic' && value ? Buffer.from(value, 'base64').toString().split(':')[0] : undefined;
      const entry: (typeof seen)[number] = { method: req.method ?? '', url: req.url ?? '', scheme: scheme ? scheme.toLowerCase() : undefined, user };
      seen.push(entry);
      res.once('finish', () => (entry.status = res.statusCode));
    });

    await meta.accounts.upsertNamespace('team', {});
    for (const [name, password] of Object.entries(users)) {
      const user = await meta.accounts.createUser({ name, passwordHash: await hashPassword(password), admin: false });
      await meta.accounts.setGrant({ namespace: 'team', kind: 'user', principal: user.id, role: name === 'reader' || name === 'leaver' ? 'reader' : 'writer' });
    }
    const bot = await meta.accounts.createRobot('team', 'ci');
    await meta.accounts.setGrant({ namespace: 'team', kind: 'robot', principal: bot.id, role: 'writer' });
    const secret = newTokenSecret();
    await meta.accounts.createToken({
      id: secret.id,
      ownerKind: 'robot',
      ownerId: bot.id,
      name: 'ci',
      secretHash: secret.hash,
      scopes: ['pull', 'push'],
      expiresAt: null,
    });
    robot = { name: bot.name, token: secret.token };

    await login('admin', testAdmin.username, testAdmin.password);
  });
  afterAll(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('skopeo login: the right password is accepted through /token, a wrong one refused', async () => {
    const from = seen.length;
    expect(await login('skopeo-writer', 'writer', users.writer)).toMatch(/Login Succeeded/);
    expect(Buffer.from((await savedAuths('skopeo-writer'))[server.host]?.auth ?? '', 'base64').toString()).toBe(`writer:${users.writer}`);
    // The Docker token flow: challenged on /v2/, a token from GET /token with Basic, /v2/ with it.
    const flow = seen.slice(from);
    const challenged = flow.findIndex((r) => r.url === '/v2/' && r.scheme === undefined && r.status === 401);
    const token = flow.findIndex((r) => r.method === 'GET' && r.url.startsWith('/token?') && r.scheme === 'basic' && r.user === 'writer' && r.status === 200);
    const bearer = flow.findIndex((r) => r.url === '/v2/' && r.scheme === 'bearer' && r.status === 200);
    expect(challenged).toBeGreaterThanOrEqual(0);
    expect(token).toBeGreaterThan(challenged);
    expect(bearer).toBeGreaterThan(token);
    expect(flow.filter((r) => r.url.startsWith('/v2') && r.scheme === 'basic')).toEqual([]);
    await audited({ action: 'login', actor: 'writer', outcome: 'success' });

    await expect(login('skopeo-wrong', 'writer', 'not-the-password')).rejects.toThrow(refusedLogin);
    await audited({ action: 'login', actor: 'writer', outcome: 'failure' });
    // Nothing was saved for the refused login.
    const saved = await readFile(authFile('skopeo-wrong'), 'utf8').catch(() => '{"auths":{}}');
    expect((JSON.parse(saved) as { auths: Record<string, unknown> }).auths[server.host]).toBeUndefined();
  });

  it('podman login: the right password is accepted, a wrong one refused', async () => {
    const from = seen.length;
    expect(await podman('podman-admin', 'login', '--tls-verify=false', '-u', testAdmin.username, '-p', testAdmin.password, server.host)).toMatch(
      /Login Succeeded/,
    );
    expect(Buffer.from((await savedAuths('podman-admin'))[server.host]?.auth ?? '', 'base64').toString()).toBe(`${testAdmin.username}:${testAdmin.password}`);
    expect(seen.slice(from)).toContainEqual(expect.objectContaining({ method: 'GET', scheme: 'basic', user: 'admin', status: 200 }));
    expect(
      seen
        .slice(from)
        .filter((r) => r.user === 'admin')
        .every((r) => r.url.startsWith('/token?')),
    ).toBe(true);
    await audited({ action: 'login', actor: 'admin', outcome: 'success' });

    await expect(podman('podman-wrong', 'login', '--tls-verify=false', '-u', testAdmin.username, '-p', 'not-the-password', server.host)).rejects.toThrow(
      refusedLogin,
    );
    await audited({ action: 'login', actor: 'admin', outcome: 'failure' });
  });

  it('a reader pulls from its namespace but may not push there; a writer may', async () => {
    const readable = await seed('team/readable');
    await login('reader', 'reader', users.reader);
    const inspect = JSON.parse(await skopeo('reader', 'inspect', '--tls-verify=false', `docker://${server.host}/team/readable:v1`)) as { Digest: string };
    expect(inspect.Digest).toBe(readable.digest);
    const back = path.join(work, 'reader-back');
    await skopeo('reader', 'copy', ...tls, `docker://${server.host}/team/readable:v1`, `oci:${back}:v1`);
    expect((JSON.parse(await readFile(path.join(back, 'index.json'), 'utf8')) as { manifests: { digest: string }[] }).manifests[0]?.digest).toBe(
      readable.digest,
    );

    const src = path.join(work, 'reader-push');
    await imageLayout(src, 'v1');
    await expect(skopeo('reader', 'copy', ...tls, `oci:${src}:v1`, `docker://${server.host}/team/readable:v2`)).rejects.toThrow(refusedAccess);
    await expect(skopeo('reader', 'copy', ...tls, `oci:${src}:v1`, `docker://${server.host}/team/reader-new:v1`)).rejects.toThrow(refusedAccess);
    expect((await request(server.url, '/v2/team/readable/tags/list')).json()).toEqual({ name: 'team/readable', tags: ['v1'] });
    expect((await request(server.url, '/v2/team/reader-new/tags/list')).status).toBe(404);

    await login('writer', 'writer', users.writer);
    const pushed = await imageLayout(path.join(work, 'writer-push'), 'v1');
    await skopeo('writer', 'copy', ...tls, `oci:${path.join(work, 'writer-push')}:v1`, `docker://${server.host}/team/written:v1`);
    const got = await request(server.url, '/v2/team/written/manifests/v1', { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(got.headers['docker-content-digest']).toBe(pushed.digest);
    // A writer of team is nobody elsewhere.
    await expect(skopeo('writer', 'copy', ...tls, `oci:${path.join(work, 'writer-push')}:v1`, `docker://${server.host}/other/written:v1`)).rejects.toThrow(
      refusedAccess,
    );

    await audited({ action: 'push', actor: 'writer', target: 'team/written@v1', outcome: 'success' });
    const readerPushes = await meta.accounts.query({ actor: 'reader', action: 'push', limit: 10 });
    expect(readerPushes).toEqual([]);
  });

  it('a robot logs in with its token and pushes in its namespace only', async () => {
    expect(await login('robot', robot.name, robot.token)).toMatch(/Login Succeeded/);
    await audited({ action: 'login', actor: robot.name, outcome: 'success' });
    const src = path.join(work, 'robot-push');
    const manifest = await imageLayout(src, 'v1');
    await skopeo('robot', 'copy', ...tls, `oci:${src}:v1`, `docker://${server.host}/team/robotapp:v1`);
    const got = await request(server.url, '/v2/team/robotapp/manifests/v1', {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(got.headers['docker-content-digest']).toBe(manifest.digest);
    await audited({ action: 'push', actor: robot.name, target: 'team/robotapp@v1', outcome: 'success' });

    await expect(skopeo('robot', 'copy', ...tls, `oci:${src}:v1`, `docker://${server.host}/other/x:v1`)).rejects.toThrow(refusedAccess);
    expect((await request(server.url, '/v2/other/x/tags/list')).status).toBe(404);
    // A wrong token is a wrong password.
    await expect(login('robot-wrong', robot.name, robot.token.slice(0, -1) + (robot.token.endsWith('A') ? 'B' : 'A'))).rejects.toThrow(refusedLogin);
  });

  it('skopeo logout forgets the credentials, and the registry then refuses', async () => {
    const repo = 'team/logout';
    const { digest } = await seed(repo);
    await login('leaver', 'leaver', users.leaver);
    expect((JSON.parse(await skopeo('leaver', 'inspect', '--tls-verify=false', `docker://${server.host}/${repo}:v1`)) as { Digest: string }).Digest).toBe(
      digest,
    );

    expect(await skopeo('leaver', 'logout', server.host)).toMatch(/Removed login credentials/);
    expect((await savedAuths('leaver'))[server.host]).toBeUndefined();
    await expect(skopeo('leaver', 'inspect', '--tls-verify=false', `docker://${server.host}/${repo}:v1`)).rejects.toThrow(refusedAccess);
    await expect(skopeo('leaver', 'logout', server.host)).rejects.toThrow(/not logged into/);
  });
});
