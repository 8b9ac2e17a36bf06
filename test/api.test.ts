/** The management API, /api/v1, answered in process through inject(): every endpoint, allowed and refused. */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiErrors } from '../src/api/errors.ts';
import { basic, request, testAdmin, type Reply } from './helpers/http.ts';
import { projectRoot, startInjected, type InProcessServer } from './helpers/server.ts';

let server: InProcessServer;

beforeAll(async () => {
  // Many refusals below are failed logins from 127.0.0.1; the default limit would lock the address.
  server = await startInjected({ config: { auth: { adminPassword: testAdmin.password, loginFailures: { max: 10_000, windowSeconds: 300 } } } });
});
afterAll(async () => {
  await server?.stop();
});

interface Call {
  body?: unknown;
  /** an Authorization header, or false for none; the test admin by default */
  as?: string | false;
  headers?: Record<string, string>;
}

function api(method: string, path: string, call: Call = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...call.headers };
  if (call.body !== undefined) headers['content-type'] ??= 'application/json';
  if (typeof call.as === 'string') headers.authorization = call.as;
  const body = call.body === undefined ? undefined : typeof call.body === 'string' ? call.body : JSON.stringify(call.body);
  return request(server.url, `/api/v1${path}`, { method, headers, body, ...(call.as === false ? { auth: false as const } : {}) });
}

const errorOf = (r: Reply) => r.json<{ error: { code: string; message: string } }>().error;

async function createUser(name: string, password = `${name}-password`, admin = false): Promise<string> {
  const r = await api('POST', '/users', { body: { name, password, admin } });
  expect(r.status, r.body.toString()).toBe(201);
  return basic(name, password);
}

async function createToken(as: string, body: Record<string, unknown> = {}): Promise<{ id: string; token: string; scopes: string[]; expiresAt: string | null }> {
  const r = await api('POST', '/tokens', { as, body: { name: 'test', ...body } });
  expect(r.status, r.body.toString()).toBe(201);
  return r.json();
}

async function createNamespace(ns: string): Promise<void> {
  const r = await api('PUT', `/namespaces/${ns}`, { body: {} });
  expect(r.status, r.body.toString()).toBe(200);
}

describe('authentication and errors', () => {
  it('asks anonymous callers to log in, with a challenge', async () => {
    const r = await api('GET', '/me', { as: false });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toMatch(/^Bearer realm="/);
    expect(errorOf(r).code).toBe('UNAUTHORIZED');
  });

  it('refuses wrong passwords with 401', async () => {
    const r = await api('GET', '/me', { as: basic('admin', 'not-the-password') });
    expect(r.status).toBe(401);
    expect(errorOf(r)).toEqual({ code: 'UNAUTHORIZED', message: 'invalid username or password' });
  });

  it('answers who the caller is', async () => {
    const r = await api('GET', '/me');
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ name: 'admin', kind: 'user', admin: true, teams: [] });
  });

  it('accepts a Bearer token from /token', async () => {
    const t = await request(server.url, '/token?service=custody');
    expect(t.status).toBe(200);
    const r = await api('GET', '/me', { as: `Bearer ${t.json<{ token: string }>().token}` });
    expect(r.status).toBe(200);
    expect(r.json<{ name: string }>().name).toBe('admin');
  });

  it('answers unknown routes, bad JSON, other media types and large bodies in the API error shape', async () => {
    const unknown = await api('GET', '/nothing-here');
    expect(unknown.status).toBe(404);
    expect(errorOf(unknown).code).toBe('NOT_FOUND');
    const bad = await api('POST', '/users', { body: '{"name":' });
    expect(bad.status).toBe(400);
    expect(errorOf(bad).code).toBe('INVALID');
    const text = await api('POST', '/users', { body: 'name=x', headers: { 'content-type': 'text/plain' } });
    expect(text.status).toBe(415);
    expect(errorOf(text).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    const large = await api('POST', '/users', { body: { name: 'large', password: 'x'.repeat(100_000) } });
    expect(large.status).toBe(413);
    expect(errorOf(large).code).toBe('TOO_LARGE');
  });

  it('documents every error code with its status in docs/api-v1.md', async () => {
    const doc = await readFile(`${projectRoot}/docs/api-v1.md`, 'utf8');
    const rows = [...doc.matchAll(/^\| ([A-Z_]+) \| (\d{3}) \| .+ \|$/gm)].map((m) => [m[1], Number(m[2])]);
    expect(rows).toEqual(Object.entries(apiErrors));
  });

  it('answers 429 when an address failed to log in too often', async () => {
    const limited = await startInjected({ config: { auth: { adminPassword: testAdmin.password, loginFailures: { max: 2, windowSeconds: 300 } } } });
    try {
      for (let i = 0; i < 2; i++)
        expect((await request(limited.url, '/api/v1/me', { headers: { authorization: basic('admin', 'wrong-password') } })).status).toBe(401);
      const r = await request(limited.url, '/api/v1/me');
      expect(r.status).toBe(429);
      expect(errorOf(r).code).toBe('TOO_MANY_REQUESTS');
    } finally {
      await limited.stop();
    }
  });
});

describe('users', () => {
  it('creates, lists and refuses duplicates and bad input', async () => {
    const r = await api('POST', '/users', { body: { name: 'alice', password: 'alice-password' } });
    expect(r.status).toBe(201);
    expect(r.json()).toMatchObject({ name: 'alice', admin: false });
    expect(Date.parse(r.json<{ createdAt: string }>().createdAt)).not.toBeNaN();
    expect((await api('POST', '/users', { body: { name: 'alice', password: 'alice-password' } })).status).toBe(409);
    expect(errorOf(await api('POST', '/users', { body: { name: 'alice' } })).message).toBe('user alice already exists');
    for (const body of [
      { name: 'Alice' },
      { name: '-x' },
      { name: 'a'.repeat(65) },
      { name: 'ok', password: 'short' },
      { name: 'ok', admin: 'yes' },
      { name: 'ok', extra: 1 },
      {},
    ]) {
      const bad = await api('POST', '/users', { body });
      expect(bad.status, JSON.stringify(body)).toBe(400);
      expect(errorOf(bad).code).toBe('INVALID');
    }
    const list = await api('GET', '/users');
    expect(list.status).toBe(200);
    const users = list.json<{ users: { name: string; admin: boolean; hasPassword: boolean }[] }>().users;
    expect(users.find((u) => u.name === 'alice')).toMatchObject({ admin: false, hasPassword: true });
    expect(JSON.stringify(users)).not.toMatch(/scrypt/);
  });

  it('keeps user management to registry administrators', async () => {
    const u1 = await createUser('user1');
    expect((await api('GET', '/me', { as: u1 })).json()).toEqual({ name: 'user1', kind: 'user', admin: false, teams: [] });
    expect((await api('GET', '/users', { as: u1 })).status).toBe(403);
    expect(errorOf(await api('POST', '/users', { as: u1, body: { name: 'x1' } })).code).toBe('DENIED');
    expect((await api('DELETE', '/users/alice', { as: u1 })).status).toBe(403);
    expect((await api('PUT', '/users/alice/password', { as: u1, body: { password: 'new-password' } })).status).toBe(403);
  });

  it('lets users change their own password with their password, not with a token', async () => {
    const old = await createUser('user2', 'old-password');
    expect((await api('PUT', '/users/user2/password', { as: old, body: { password: 'short' } })).status).toBe(400);
    const token = await createToken(old);
    expect((await api('PUT', '/users/user2/password', { as: basic('user2', token.token), body: { password: 'token-password' } })).status).toBe(403);
    expect((await api('PUT', '/users/user2/password', { as: old, body: { password: 'new-password' } })).status).toBe(204);
    expect((await api('GET', '/me', { as: old })).status).toBe(401);
    expect((await api('GET', '/me', { as: basic('user2', 'new-password') })).status).toBe(200);
    // An administrator sets anyone's.
    expect((await api('PUT', '/users/user2/password', { body: { password: 'admin-set-password' } })).status).toBe(204);
    expect((await api('GET', '/me', { as: basic('user2', 'admin-set-password') })).status).toBe(200);
    expect((await api('PUT', '/users/nobody/password', { body: { password: 'whatever-password' } })).status).toBe(404);
  });

  it('deleting a user stops its password and its tokens at once', async () => {
    const pw = await createUser('user3');
    const token = await createToken(pw);
    const viaToken = basic('user3', token.token);
    expect((await api('GET', '/me', { as: viaToken })).status).toBe(200);
    expect((await api('GET', '/me', { as: pw })).status).toBe(200);
    expect((await api('DELETE', '/users/user3')).status).toBe(204);
    expect((await api('GET', '/me', { as: pw })).status).toBe(401);
    expect((await api('GET', '/me', { as: viaToken })).status).toBe(401);
    expect((await api('DELETE', '/users/user3')).status).toBe(404);
    expect((await api('DELETE', '/users/Bad!')).status).toBe(400);
  });

  it('will not delete the last registry administrator', async () => {
    const r = await api('DELETE', '/users/admin');
    expect(r.status).toBe(409);
    expect(errorOf(r).code).toBe('CONFLICT');
    const other = await createUser('admin2', 'admin2-password', true);
    expect((await api('GET', '/users', { as: other })).status).toBe(200);
    expect((await api('DELETE', '/users/admin2')).status).toBe(204);
  });
});

describe('teams', () => {
  it('creates teams, manages members and lists them', async () => {
    const member = await createUser('member1');
    expect((await api('POST', '/teams', { body: { name: 'devs' } })).status).toBe(201);
    expect((await api('POST', '/teams', { body: { name: 'devs' } })).status).toBe(409);
    expect((await api('POST', '/teams', { body: { name: 'Devs!' } })).status).toBe(400);
    expect((await api('PUT', '/teams/devs/members/member1')).status).toBe(204);
    expect((await api('PUT', '/teams/devs/members/member1')).status).toBe(204);
    expect((await api('PUT', '/teams/devs/members/nobody')).status).toBe(404);
    expect((await api('PUT', '/teams/nobody/members/member1')).status).toBe(404);
    const list = await api('GET', '/teams');
    expect(list.json<{ teams: unknown[] }>().teams).toContainEqual({ name: 'devs', members: ['member1'] });
    expect((await api('GET', '/me', { as: member })).json<{ teams: string[] }>().teams).toEqual(['devs']);
    expect((await api('GET', '/teams', { as: member })).status).toBe(403);
    expect((await api('PUT', '/teams/devs/members/alice', { as: member })).status).toBe(403);
    expect((await api('DELETE', '/teams/devs/members/member1')).status).toBe(204);
    expect((await api('DELETE', '/teams/devs/members/member1')).status).toBe(404);
    expect((await api('DELETE', '/teams/devs')).status).toBe(204);
    expect((await api('DELETE', '/teams/devs')).status).toBe(404);
  });
});

describe('namespaces and grants', () => {
  it('lets registry administrators create namespaces and their admins change them', async () => {
    const owner = await createUser('owner1');
    expect((await api('PUT', '/namespaces/proj1', { as: owner, body: {} })).status).toBe(403);
    const created = await api('PUT', '/namespaces/proj1', { body: { anonymousRead: false } });
    expect(created.status).toBe(200);
    expect(created.json()).toMatchObject({ name: 'proj1', anonymousRead: false });
    expect((await api('PUT', '/namespaces/Bad_NS', { body: {} })).status).toBe(400);
    expect((await api('PUT', '/namespaces/a--b', {})).status).toBe(200);
    expect((await api('PUT', '/namespaces/proj1', { body: { anonymousRead: 'yes' } })).status).toBe(400);
    expect((await api('GET', '/namespaces/missing')).status).toBe(404);
    expect((await api('PUT', '/namespaces/proj1', { as: owner, body: { anonymousRead: true } })).status).toBe(403);
    expect((await api('GET', '/namespaces/proj1', { as: owner })).status).toBe(403);

    expect((await api('PUT', '/namespaces/proj1/grants/user/owner1', { body: { role: 'admin' } })).status).toBe(204);
    const changed = await api('PUT', '/namespaces/proj1', { as: owner, body: { anonymousRead: true } });
    expect(changed.status).toBe(200);
    expect(changed.json()).toMatchObject({ name: 'proj1', anonymousRead: true });
    const shown = await api('GET', '/namespaces/proj1', { as: owner });
    expect(shown.status).toBe(200);
    expect(shown.json()).toMatchObject({ name: 'proj1', anonymousRead: true, grants: [{ kind: 'user', name: 'owner1', role: 'admin' }] });
    // Anonymous pull is now allowed, so everyone logged in sees it listed; admins see every namespace.
    const all = (await api('GET', '/namespaces')).json<{ namespaces: { name: string }[] }>().namespaces.map((n) => n.name);
    expect(all).toEqual(expect.arrayContaining(['proj1', 'a--b']));
    const mine = (await api('GET', '/namespaces', { as: owner })).json<{ namespaces: { name: string }[] }>().namespaces.map((n) => n.name);
    expect(mine).toContain('proj1');
    expect(mine).not.toContain('a--b');
  });

  it('sets and removes grants for users, teams and robots', async () => {
    await createNamespace('proj2');
    await createNamespace('other2');
    const reader = await createUser('reader2');
    expect((await api('POST', '/teams', { body: { name: 'team2' } })).status).toBe(201);
    expect((await api('POST', '/namespaces/proj2/robots', { body: { name: 'ci' } })).status).toBe(201);
    expect((await api('POST', '/namespaces/other2/robots', { body: { name: 'ci' } })).status).toBe(201);

    expect((await api('PUT', '/namespaces/proj2/grants/user/reader2', { body: { role: 'reader' } })).status).toBe(204);
    expect((await api('PUT', '/namespaces/proj2/grants/team/team2', { body: { role: 'writer' } })).status).toBe(204);
    expect((await api('PUT', '/namespaces/proj2/grants/robot/ci', { body: { role: 'maintainer' } })).status).toBe(204);
    expect((await api('PUT', '/namespaces/proj2/grants/robot/proj2+ci', { body: { role: 'writer' } })).status).toBe(204);
    const foreign = await api('PUT', '/namespaces/proj2/grants/robot/other2+ci', { body: { role: 'reader' } });
    expect(foreign.status).toBe(400);
    expect(errorOf(foreign).message).toMatch(/own namespace/);
    expect((await api('PUT', '/namespaces/proj2/grants/user/reader2', { body: { role: 'owner' } })).status).toBe(400);
    expect((await api('PUT', '/namespaces/proj2/grants/user/reader2', {})).status).toBe(400);
    expect((await api('PUT', '/namespaces/proj2/grants/group/reader2', { body: { role: 'reader' } })).status).toBe(400);
    expect((await api('PUT', '/namespaces/proj2/grants/user/nobody', { body: { role: 'reader' } })).status).toBe(404);
    expect((await api('PUT', '/namespaces/nothing/grants/user/reader2', { body: { role: 'reader' } })).status).toBe(404);
    // A reader may not manage the namespace.
    expect((await api('PUT', '/namespaces/proj2/grants/user/reader2', { as: reader, body: { role: 'admin' } })).status).toBe(403);

    const grants = (await api('GET', '/namespaces/proj2')).json<{ grants: unknown[] }>().grants;
    expect(grants).toEqual([
      { kind: 'robot', name: 'proj2+ci', role: 'writer' },
      { kind: 'team', name: 'team2', role: 'writer' },
      { kind: 'user', name: 'reader2', role: 'reader' },
    ]);
    const visible = async () => (await api('GET', '/namespaces', { as: reader })).json<{ namespaces: { name: string }[] }>().namespaces.map((n) => n.name);
    expect(await visible()).toContain('proj2');
    expect(await visible()).not.toContain('other2');

    expect((await api('DELETE', '/namespaces/proj2/grants/user/reader2')).status).toBe(204);
    expect((await api('DELETE', '/namespaces/proj2/grants/user/reader2')).status).toBe(404);
    expect((await api('DELETE', '/namespaces/proj2/grants/team/team2')).status).toBe(204);
    expect((await api('DELETE', '/namespaces/proj2/grants/robot/ci')).status).toBe(204);
    expect((await api('GET', '/namespaces/proj2')).json<{ grants: unknown[] }>().grants).toEqual([]);
    expect(await visible()).not.toContain('proj2');
  });

  it('grants apply to /v2 at once', async () => {
    await createNamespace('proj3');
    const dev = await createUser('dev3');
    const tags = () => request(server.url, '/v2/proj3/app/tags/list', { headers: { authorization: dev } });
    expect((await tags()).status).toBe(403);
    expect((await api('PUT', '/namespaces/proj3/grants/user/dev3', { body: { role: 'reader' } })).status).toBe(204);
    expect((await tags()).status).toBe(404);
    expect((await api('DELETE', '/namespaces/proj3/grants/user/dev3')).status).toBe(204);
    expect((await tags()).status).toBe(403);
  });
});

describe('robots', () => {
  it('creates robots, their tokens, and deletes them', async () => {
    await createNamespace('proj4');
    const nsAdmin = await createUser('nsadmin4');
    const outsider = await createUser('outsider4');
    expect((await api('PUT', '/namespaces/proj4/grants/user/nsadmin4', { body: { role: 'admin' } })).status).toBe(204);

    const created = await api('POST', '/namespaces/proj4/robots', { as: nsAdmin, body: { name: 'deploy' } });
    expect(created.status).toBe(201);
    expect(created.json()).toMatchObject({ name: 'proj4+deploy', namespace: 'proj4' });
    expect((await api('POST', '/namespaces/proj4/robots', { as: nsAdmin, body: { name: 'deploy' } })).status).toBe(409);
    expect((await api('POST', '/namespaces/proj4/robots', { as: nsAdmin, body: { name: 'Deploy+1' } })).status).toBe(400);
    expect((await api('POST', '/namespaces/proj4/robots', { as: outsider, body: { name: 'x' } })).status).toBe(403);
    expect((await api('POST', '/namespaces/nothing/robots', { body: { name: 'x' } })).status).toBe(404);
    const list = await api('GET', '/namespaces/proj4/robots', { as: nsAdmin });
    expect(list.json<{ robots: { name: string }[] }>().robots.map((r) => r.name)).toEqual(['proj4+deploy']);
    expect((await api('GET', '/namespaces/proj4/robots', { as: outsider })).status).toBe(403);

    const token = await api('POST', '/namespaces/proj4/robots/deploy/tokens', {
      as: nsAdmin,
      body: { name: 'ci', scopes: ['pull', 'push'], expiresInDays: 30 },
    });
    expect(token.status).toBe(201);
    const t = token.json<{ id: string; token: string; scopes: string[]; expiresAt: string }>();
    expect(t.scopes).toEqual(['pull', 'push']);
    expect(Date.parse(t.expiresAt) - Date.now()).toBeGreaterThan(29 * 86_400_000);
    expect((await api('POST', '/namespaces/proj4/robots/nobody/tokens', { as: nsAdmin, body: { name: 'ci' } })).status).toBe(404);
    expect((await api('POST', '/namespaces/proj4/robots/deploy/tokens', { as: nsAdmin, body: { name: 'ci', scopes: ['fly'] } })).status).toBe(400);

    const robot = basic('proj4+deploy', t.token);
    const me = await api('GET', '/me', { as: robot });
    expect(me.json()).toEqual({
      name: 'proj4+deploy',
      kind: 'robot',
      admin: false,
      teams: [],
      namespace: 'proj4',
      token: { id: t.id, scopes: ['pull', 'push'] },
    });
    expect((await api('POST', '/tokens', { as: robot, body: { name: 'mine' } })).status).toBe(403);
    expect((await api('GET', '/tokens', { as: robot })).json<{ tokens: { id: string }[] }>().tokens.map((x) => x.id)).toEqual([t.id]);

    const tokens = await api('GET', '/namespaces/proj4/robots/deploy/tokens', { as: nsAdmin });
    expect(tokens.json<{ tokens: unknown[] }>().tokens).toEqual([
      { id: t.id, name: 'ci', scopes: ['pull', 'push'], expiresAt: t.expiresAt, lastUsedAt: expect.any(String), createdAt: expect.any(String) },
    ]);
    expect(tokens.body.toString()).not.toContain(t.token.slice(-20));

    // Another robot's token id under this robot is not found.
    expect((await api('DELETE', `/namespaces/proj4/robots/deploy/tokens/0123456789abcdef`, { as: nsAdmin })).status).toBe(404);
    expect((await api('DELETE', `/namespaces/proj4/robots/deploy/tokens/${t.id}`, { as: nsAdmin })).status).toBe(204);
    expect((await api('GET', '/me', { as: robot })).status).toBe(401);

    const second = await api('POST', '/namespaces/proj4/robots/deploy/tokens', { as: nsAdmin, body: { name: 'ci2' } });
    const robot2 = basic('proj4+deploy', second.json<{ token: string }>().token);
    expect((await api('GET', '/me', { as: robot2 })).status).toBe(200);
    expect((await api('DELETE', '/namespaces/proj4/robots/deploy', { as: outsider })).status).toBe(403);
    expect((await api('DELETE', '/namespaces/proj4/robots/deploy', { as: nsAdmin })).status).toBe(204);
    expect((await api('DELETE', '/namespaces/proj4/robots/deploy', { as: nsAdmin })).status).toBe(404);
    expect((await api('GET', '/me', { as: robot2 })).status).toBe(401);
  });
});

describe('personal tokens', () => {
  it('shows the secret once and never lists it', async () => {
    const owner = await createUser('tok1');
    const r = await api('POST', '/tokens', { as: owner, body: { name: 'laptop' } });
    expect(r.status).toBe(201);
    const t = r.json<{ id: string; name: string; token: string; scopes: string[]; expiresAt: null }>();
    expect(t).toMatchObject({ name: 'laptop', scopes: ['pull', 'push', 'delete', 'manage'], expiresAt: null });
    // The secret is everything after `cst_<id>_`: it may itself hold '_' (base64url).
    expect(t.token.startsWith(`cst_${t.id}_`)).toBe(true);
    const secret = t.token.slice(`cst_${t.id}_`.length);
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const list = await api('GET', '/tokens', { as: owner });
    expect(list.status).toBe(200);
    expect(list.json()).toEqual({
      tokens: [{ id: t.id, name: 'laptop', scopes: ['pull', 'push', 'delete', 'manage'], expiresAt: null, lastUsedAt: null, createdAt: expect.any(String) }],
    });
    expect(list.body.toString()).not.toContain(secret);
    expect(list.body.toString()).not.toMatch(/hash/i);
    // Another user sees only their own.
    const other = await createUser('tok1other');
    expect((await api('GET', '/tokens', { as: other })).json()).toEqual({ tokens: [] });
  });

  it('validates token requests', async () => {
    const owner = await createUser('tok2');
    for (const body of [
      {},
      { name: '' },
      { name: 'x', scopes: [] },
      { name: 'x', scopes: ['admin'] },
      { name: 'x', expiresInDays: 0 },
      { name: 'x', expiresInDays: 3651 },
      { name: 'x', expiresInDays: 1.5 },
      { name: 'has space' },
    ]) {
      const bad = await api('POST', '/tokens', { as: owner, body });
      expect(bad.status, JSON.stringify(body)).toBe(400);
    }
    expect((await api('DELETE', '/tokens/not-an-id', { as: owner })).status).toBe(400);
    expect((await api('DELETE', '/tokens/0123456789abcdef', { as: owner })).status).toBe(404);
  });

  it('revoking a token makes the next request with it fail', async () => {
    const owner = await createUser('tok3');
    const t = await createToken(owner, { expiresInDays: 1 });
    const viaToken = basic('tok3', t.token);
    expect((await api('GET', '/me', { as: viaToken })).json()).toMatchObject({ name: 'tok3', token: { id: t.id } });
    // Bearer JWTs obtained with the token stop too.
    const jwt = (await request(server.url, '/token?service=custody', { headers: { authorization: viaToken } })).json<{ token: string }>().token;
    expect((await api('GET', '/me', { as: `Bearer ${jwt}` })).status).toBe(200);
    expect((await api('DELETE', `/tokens/${t.id}`, { as: owner })).status).toBe(204);
    const after = await api('GET', '/me', { as: viaToken });
    expect(after.status).toBe(401);
    expect((await api('GET', '/me', { as: `Bearer ${jwt}` })).status).toBe(401);
    expect((await api('DELETE', `/tokens/${t.id}`, { as: owner })).status).toBe(404);
  });

  it("keeps other people's tokens out of reach, except for registry administrators", async () => {
    const owner = await createUser('tok4');
    const stranger = await createUser('tok4stranger');
    const t = await createToken(owner);
    expect((await api('DELETE', `/tokens/${t.id}`, { as: stranger })).status).toBe(404);
    expect((await api('GET', '/me', { as: basic('tok4', t.token) })).status).toBe(200);
    expect((await api('DELETE', `/tokens/${t.id}`)).status).toBe(204);
    expect((await api('GET', '/me', { as: basic('tok4', t.token) })).status).toBe(401);
  });

  it('narrows what a token may do to its scopes', async () => {
    const pull = await createToken(basic(testAdmin.username, testAdmin.password), { scopes: ['pull'] });
    const viaPull = basic('admin', pull.token);
    expect((await api('GET', '/me', { as: viaPull })).status).toBe(200);
    expect((await api('GET', '/users', { as: viaPull })).status).toBe(403);
    const mint = await api('POST', '/tokens', { as: viaPull, body: { name: 'wider' } });
    expect(mint.status).toBe(403);
    expect((await api('DELETE', `/tokens/${pull.id}`, { as: viaPull })).status).toBe(403);
    // A token with manage may make a token, but not one wider than itself.
    const manage = await createToken(basic(testAdmin.username, testAdmin.password), { scopes: ['pull', 'manage'] });
    const viaManage = basic('admin', manage.token);
    expect((await api('POST', '/tokens', { as: viaManage, body: { name: 'wider', scopes: ['push'] } })).status).toBe(403);
    expect((await api('POST', '/tokens', { as: viaManage, body: { name: 'narrower', scopes: ['pull'] } })).status).toBe(201);
    expect((await api('DELETE', `/tokens/${pull.id}`, { as: viaManage })).status).toBe(204);
  });

  it('does not make tokens from a Bearer JWT', async () => {
    const jwt = (await request(server.url, '/token?service=custody')).json<{ token: string }>().token;
    expect((await api('POST', '/tokens', { as: `Bearer ${jwt}`, body: { name: 'x' } })).status).toBe(403);
  });
});

describe('keys', () => {
  it('rotates the signing key; tokens signed before keep working', async () => {
    const jwt = (await request(server.url, '/token?service=custody')).json<{ token: string }>().token;
    const r = await api('POST', '/keys/rotate');
    expect(r.status).toBe(200);
    expect(r.json<{ kid: string }>().kid).toMatch(/^[0-9a-f-]{36}$/);
    expect((await api('GET', '/me', { as: `Bearer ${jwt}` })).status).toBe(200);
    const user = await createUser('keys1');
    expect((await api('POST', '/keys/rotate', { as: user })).status).toBe(403);
    expect((await api('POST', '/keys/rotate', { as: false })).status).toBe(401);
  });
});

describe('audit', () => {
  interface Event {
    id: number;
    time: string;
    actor: string;
    action: string;
    target: string;
    outcome: string;
    detail: Record<string, unknown>;
  }
  const events = async (query: string) => {
    const r = await api('GET', `/audit${query}`);
    expect(r.status, r.body.toString()).toBe(200);
    return r.json<{ events: Event[]; next: number | null }>();
  };

  it('returns the changes, filtered and paged', async () => {
    const start = new Date().toISOString();
    await createUser('aud1');
    await createUser('aud2');
    await createUser('aud3');
    expect((await api('POST', '/teams', { body: { name: 'audteam' } })).status).toBe(201);
    expect((await api('PUT', '/teams/audteam/members/aud1')).status).toBe(204);

    const created = await events(`?action=user.create&since=${encodeURIComponent(start)}`);
    expect(created.events.map((e) => e.target)).toEqual(['aud3', 'aud2', 'aud1']);
    expect(created.events[0]).toMatchObject({ actor: 'admin', action: 'user.create', outcome: 'success', detail: { admin: false } });
    expect(created.next).toBeNull();
    expect((await events('?action=team.member.add&target=audteam')).events[0]).toMatchObject({ detail: { user: 'aud1' } });
    expect((await events(`?actor=nobody`)).events).toEqual([]);
    expect((await events(`?since=${Date.now() + 60_000}`)).events).toEqual([]);
    expect((await events(`?until=${encodeURIComponent(start)}&action=user.create`)).events.map((e) => e.target)).not.toContain('aud1');

    const first = await events(`?since=${encodeURIComponent(start)}&limit=2`);
    expect(first.events).toHaveLength(2);
    expect(first.next).toBe(first.events[1]?.id);
    const second = await events(`?since=${encodeURIComponent(start)}&limit=2&before=${first.next}`);
    expect(second.events.length).toBeGreaterThan(0);
    expect(Math.max(...second.events.map((e) => e.id))).toBeLessThan(Math.min(...first.events.map((e) => e.id)));
    const all = await events(`?since=${encodeURIComponent(start)}`);
    expect(all.events.slice(0, 4).map((e) => e.id)).toEqual([...first.events, ...second.events].slice(0, 4).map((e) => e.id));
  });

  it('records every kind of change', async () => {
    const actions = new Set((await events('?limit=500')).events.map((e) => e.action));
    for (const action of [
      'user.create',
      'user.delete',
      'user.password',
      'team.create',
      'team.delete',
      'team.member.add',
      'team.member.remove',
      'namespace.create',
      'namespace.update',
      'grant.set',
      'grant.remove',
      'robot.create',
      'robot.delete',
      'token.create',
      'token.revoke',
      'keys.rotate',
    ]) {
      expect(actions, action).toContain(action);
    }
  });

  it('refuses bad queries and non-administrators', async () => {
    for (const q of ['?limit=0', '?limit=501', '?limit=x', '?since=yesterday', '?before=-1', '?color=red'])
      expect((await api('GET', `/audit${q}`)).status, q).toBe(400);
    const user = await createUser('aud4');
    expect((await api('GET', '/audit', { as: user })).status).toBe(403);
  });
});
