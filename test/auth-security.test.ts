/**
 * What an attacker holding ordinary accounts tried, and must not get: a JWT traded at /token for
 * a wider, longer one; a token that mints a longer-lived one; a rotated-out key that keeps
 * verifying; a lockout that denies a user everywhere; an anonymous JWT that counts as a login.
 * Time is the server's injected clock, moved by the tests: nothing here sleeps.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { importJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyRing } from '../src/auth/keys.ts';
import { bearerToken, createRobot, createUser, createUserToken, startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { basic, request, testAdmin } from './helpers/http.ts';

let server: AccountsServer;
let offset = 0;
const now = () => Date.now() + offset;
const ttl = 300;
const alice = { username: 'alice', password: 'alice-password' };

const config = { auth: { adminPassword: testAdmin.password, tokenTtlSeconds: ttl, loginFailures: { max: 10, maxPerAddress: 1000, windowSeconds: 300 } } };
beforeAll(async () => {
  server = await startWithAccounts(config, { now }, { listen: false });
  await createUser(server.accounts, alice.username, alice.password, { team: 'reader' });
});
afterAll(() => server?.stop());

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` }, auth: false as const });
const asBasic = (username: string, password: string, from?: string) => ({
  headers: { authorization: basic(username, password) },
  auth: false as const,
  ...(from ? { from } : {}),
});
const errorOf = (r: { json<T>(): T }) => r.json<{ errors?: { message: string }[]; error?: { message: string } }>();

describe('/token takes no Bearer token', () => {
  it("refuses an admin's pull-only JWT asked for registry:admin:manage", async () => {
    const pullOnly = await bearerToken(server.url, ['repository:team/app:pull'], testAdmin);
    const r = await request(server.url, '/token?service=custody&scope=registry:admin:manage', bearer(pullOnly));
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toMatch(/^Basic /);
    expect(errorOf(r).errors?.[0]?.message).toMatch(/Bearer token cannot be exchanged/);
  });

  it('refuses a JWT presented after its owner’s password was reset', async () => {
    const id = await createUser(server.accounts, 'reset-me', 'old-password');
    const jwt = await bearerToken(server.url, ['repository:reset-me/app:pull'], { username: 'reset-me', password: 'old-password' });
    const reset = await request(server.url, '/api/v1/users/reset-me/password', {
      method: 'PUT',
      body: JSON.stringify({ password: 'new-password' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(reset.status).toBe(204);
    expect(id).toBeTruthy();
    expect((await request(server.url, '/token?service=custody&scope=repository:reset-me/app:pull', bearer(jwt))).status).toBe(401);
    expect((await request(server.url, '/token?service=custody', asBasic('reset-me', 'old-password'))).status).toBe(401);
  });
});

describe('token lifetimes', () => {
  it('makes a token created with a token expire no later than its creator', async () => {
    const adminId = (await server.accounts.getUser({ name: 'admin' }))!.id;
    const inADay = now() + 86_400_000;
    const creator = await createUserToken(server.accounts, adminId, { expiresAt: inADay });
    const post = (body: object) =>
      request(server.url, '/api/v1/tokens', {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json', authorization: basic('admin', creator.token) },
      });
    const unbounded = await post({ name: 'child' });
    expect(unbounded.status).toBe(201);
    expect(unbounded.json<{ expiresAt: string }>().expiresAt).toBe(new Date(inADay).toISOString());
    const longer = await post({ name: 'longer', expiresInDays: 30 });
    expect(longer.status).toBe(403);
    expect(longer.json<{ error: { message: string } }>().error.message).toMatch(/may not expire later/);
    expect(
      (await request(server.url, '/api/v1/namespaces/team', { method: 'PUT', body: '{}', headers: { 'content-type': 'application/json' } })).status,
    ).toBeLessThan(300);
    const robot = await request(server.url, '/api/v1/namespaces/team/robots', {
      method: 'POST',
      body: JSON.stringify({ name: 'bot' }),
      headers: { 'content-type': 'application/json', authorization: basic('admin', creator.token) },
    });
    expect(robot.status).toBe(201);
    const robotToken = await request(server.url, '/api/v1/namespaces/team/robots/bot/tokens', {
      method: 'POST',
      body: JSON.stringify({ name: 't' }),
      headers: { 'content-type': 'application/json', authorization: basic('admin', creator.token) },
    });
    expect(robotToken.status).toBe(201);
    expect(robotToken.json<{ expiresAt: string }>().expiresAt).toBe(new Date(inADay).toISOString());
  });

  it('signs every JWT with an exp within the token lifetime, and refuses one without exp or with a later one', async () => {
    const jwt = await bearerToken(server.url, ['repository:team/app:pull'], alice);
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1] as string, 'base64url').toString()) as { exp: number; iat: number };
    expect(claims.exp - claims.iat).toBe(ttl);

    const active = (await server.accounts.signingKeys()).find((k) => k.active)!;
    const key = await importJWK(JSON.parse(active.privateJwk) as object, 'ES256');
    const aliceId = (await server.accounts.getUser({ name: 'alice' }))!.id;
    const base = () =>
      new SignJWT({ sub: 'alice', pk: 'user', pid: aliceId, access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] })
        .setProtectedHeader({ alg: 'ES256', kid: active.kid })
        .setIssuer('custody')
        .setAudience('custody')
        .setIssuedAt();
    const good = await base().setExpirationTime('60s').sign(key);
    const noExp = await base().sign(key);
    const tooLong = await base().setExpirationTime('2h').sign(key);
    expect((await request(server.url, '/v2/team/app/tags/list', bearer(good))).status).toBe(404);
    for (const [what, token, reason] of [
      ['no exp', noExp, /"exp" claim/],
      ['2 h', tooLong, /further out than a token may live/],
    ] as const) {
      const r = await request(server.url, '/v2/team/app/tags/list', bearer(token));
      expect(r.status, what).toBe(401);
      expect(errorOf(r).errors?.[0]?.message, what).toMatch(reason);
    }
    // A ring asked for a longer lifetime than its own still signs within it.
    const ring = new KeyRing(server.accounts, { tokenTtlSeconds: ttl });
    const capped = JSON.parse(Buffer.from((await ring.sign({}, 86_400, 'custody')).split('.')[1] as string, 'base64url').toString()) as {
      exp: number;
      iat: number;
    };
    expect(capped.exp - capped.iat).toBe(ttl);
  });
});

describe('key rotation', () => {
  it('retires the replaced key once the longest token lifetime has passed', async () => {
    const old = (await server.accounts.signingKeys()).find((k) => k.active)!;
    const oldKey = await importJWK(JSON.parse(old.privateJwk) as object, 'ES256');
    const aliceId = (await server.accounts.getUser({ name: 'alice' }))!.id;
    const signedWithOld = () =>
      new SignJWT({ sub: 'alice', pk: 'user', pid: aliceId, access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] })
        .setProtectedHeader({ alg: 'ES256', kid: old.kid })
        .setIssuer('custody')
        .setAudience('custody')
        .setIssuedAt(Math.floor(now() / 1000))
        .setExpirationTime(Math.floor(now() / 1000) + 60)
        .sign(oldKey);
    const rotated = await request(server.url, '/api/v1/keys/rotate', { method: 'POST' });
    expect(rotated.status).toBe(200);
    offset += (ttl - 30) * 1000;
    expect((await request(server.url, '/v2/team/app/tags/list', bearer(await signedWithOld()))).status).toBe(404);
    offset += (30 + 10 + 60 + 1) * 1000; // past the lifetime, the clock tolerance and a replica's reload
    const refused = await request(server.url, '/v2/team/app/tags/list', bearer(await signedWithOld()));
    expect(refused.status).toBe(401);
    expect(errorOf(refused).errors?.[0]?.message).toMatch(/retired signing key/);
    // the next reload deletes it from the store
    await bearerToken(server.url, ['repository:team/app:pull'], alice);
    expect((await server.accounts.signingKeys()).map((k) => k.kid)).not.toContain(old.kid);
    expect((await request(server.url, '/v2/team/app/tags/list', bearer(await bearerToken(server.url, ['repository:team/app:pull'], alice)))).status).toBe(404);
  });

  it('keeps the data directory and the database readable by their owner only', async () => {
    expect((await stat(server.dataDir)).mode & 0o777).toBe(0o700);
    for (const f of ['custody.db', 'custody.db-wal']) expect((await stat(path.join(server.dataDir, f))).mode & 0o777, f).toBe(0o600);
  });
});

describe('failed logins from client addresses (a listening server: addresses come from its sockets)', () => {
  let listening: AccountsServer;
  beforeAll(async () => {
    listening = await startWithAccounts(config, { now });
  });
  afterAll(() => listening?.stop());

  it('throttles one account at one address with backoff, and lets its password in from elsewhere and its tokens everywhere', async () => {
    const server = listening;
    const victimId = await createUser(server.accounts, 'victim', 'victim-password', { team: 'reader' });
    const token = await createUserToken(server.accounts, victimId, { scopes: ['pull'] });
    const robot = await createRobot(server.accounts, 'team', 'victim-bot', 'reader');
    const attempt = (password: string, from?: string) => request(server.url, '/v2/', asBasic('victim', password, from));
    for (let i = 0; i < 10; i++) expect((await attempt('guess')).status).toBe(401);
    const throttled = await attempt('guess');
    expect(throttled.status).toBe(429);
    expect(throttled.headers['retry-after']).toBe('1');
    // the right password from this address waits too; from another address it works
    expect((await attempt('victim-password')).status).toBe(429);
    expect((await attempt('victim-password', '127.0.0.2')).status).toBe(200);
    // a correct token is never throttled
    expect((await attempt(token.token)).status).toBe(200);
    expect((await request(server.url, '/v2/', asBasic(robot.name, robot.token))).status).toBe(200);
    // /token answers the same, with Retry-After
    const viaToken = await request(server.url, '/token?service=custody', asBasic('victim', 'guess'));
    expect([viaToken.status, viaToken.headers['retry-after']]).toEqual([429, '1']);
    // after the wait one more guess is let through, and the next wait doubles
    offset += 1000;
    expect((await attempt('guess')).status).toBe(401);
    expect((await attempt('guess')).headers['retry-after']).toBe('2');
    offset += 2000;
    expect((await attempt('guess')).status).toBe(401);
    expect((await attempt('guess')).headers['retry-after']).toBe('4');
  });
});

describe('failed logins', () => {
  it('lets a registry admin clear the failed logins', async () => {
    await createUser(server.accounts, 'locked', 'locked-password');
    for (let i = 0; i < 10; i++) await request(server.url, '/v2/', asBasic('locked', 'guess'));
    expect((await request(server.url, '/v2/', asBasic('locked', 'locked-password'))).status).toBe(429);
    const notAdmin = await request(server.url, '/api/v1/users/locked/unlock', { method: 'POST', ...asBasic(alice.username, alice.password) });
    expect(notAdmin.status).toBe(403);
    const unlocked = await request(server.url, '/api/v1/users/locked/unlock', { method: 'POST' });
    expect(unlocked.status).toBe(200);
    expect(unlocked.json()).toEqual({ name: 'locked', cleared: 10 });
    expect((await request(server.url, '/v2/', asBasic('locked', 'locked-password'))).status).toBe(200);
    expect((await request(server.url, '/api/v1/users/nobody/unlock', { method: 'POST' })).status).toBe(404);
  });
});

describe('anonymous', () => {
  it('is not logged in with an anonymous JWT', async () => {
    const anonymousJwt = await bearerToken(server.url, []);
    const me = await request(server.url, '/api/v1/me', bearer(anonymousJwt));
    expect(me.status).toBe(401);
    expect(me.json<{ error: { message: string } }>().error.message).toBe('authentication required');
    // /v2/ still answers an anonymous JWT, as distribution does: it is how clients check their token
    expect((await request(server.url, '/v2/', bearer(anonymousJwt))).status).toBe(200);
  });
});

describe('request ids', () => {
  it("answers with its own request id, not the client's", async () => {
    const r = await request(server.url, '/v2/', { headers: { 'x-request-id': 'forged-by-the-client' } });
    expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});
