/**
 * The token flow and what must not get through it: wrong passwords (then rate limited), bad
 * scopes, expired, foreign, tampered and out-of-scope JWTs, revoked tokens, deleted users,
 * robots outside their namespace. Plus key rotation, per-identity rate limits and the audit log.
 */
import { generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyRing } from '../src/auth/keys.ts';
import { RateLimiter } from '../src/auth/rate-limit.ts';
import { basic, pushBlob, request, sha256, testAdmin } from './helpers/http.ts';
import { bearerToken, createRobot, createUser, createUserToken, startWithAccounts, type AccountsServer } from './helpers/accounts.ts';

let server: AccountsServer;
let offset = 0;
/** The server's clock: tests move it past its one-second caches instead of sleeping. */
const now = () => Date.now() + offset;
const later = (ms: number) => void (offset += ms);
let readerId: string;
let layer: string;
const reader = { username: 'reader', password: 'reader-password' };
const writer = { username: 'writer', password: 'writer-password' };

beforeAll(async () => {
  server = await startWithAccounts(
    { auth: { adminPassword: testAdmin.password, loginFailures: { max: 3, maxPerAddress: 100, windowSeconds: 60 } } },
    { now },
    { listen: false },
  );
  readerId = await createUser(server.accounts, reader.username, reader.password, { team: 'reader' });
  await createUser(server.accounts, writer.username, writer.password, { team: 'writer' });
  layer = await pushBlob(server.url, 'team/app', 'some layer');
});
afterAll(() => server?.stop());

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` }, auth: false as const });
const claimsOf = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split('.')[1] as string, 'base64url').toString()) as {
    sub: string;
    access: { type: string; name: string; actions: string[] }[];
    exp: number;
  };
const pull = (token: string, path = `/v2/team/app/blobs/${layer}`) => request(server.url, path, bearer(token));

describe('GET and POST /token', () => {
  it('grants the intersection of what was asked and what is allowed', async () => {
    const r = await request(server.url, '/token?service=custody&scope=repository:team/app:pull,push,delete&scope=repository:other/x:pull', {
      headers: { authorization: basic(reader.username, reader.password) },
      auth: false,
    });
    expect(r.status).toBe(200);
    const body = r.json<{ token: string; access_token: string; expires_in: number; issued_at: string }>();
    expect(body.access_token).toBe(body.token);
    expect(body.expires_in).toBe(300);
    expect(claimsOf(body.token).access).toEqual([
      { type: 'repository', name: 'team/app', actions: ['pull'] },
      { type: 'repository', name: 'other/x', actions: [] },
    ]);
    expect((await pull(body.token)).status).toBe(200);
  });

  it('answers the login requests docker sends (account, client_id, offline_token)', async () => {
    // `docker login` cannot run here (no Docker engine); these are the requests it makes.
    const base = await request(server.url, '/v2/', { auth: false });
    expect(base.status).toBe(401);
    const realm = /realm="([^"]+)"/.exec(String(base.headers['www-authenticate']))?.[1];
    expect(realm).toBe(`${server.url}/token`);
    const r = await request(server.url, '/token?account=writer&client_id=docker&offline_token=true&service=custody', {
      headers: { authorization: basic(writer.username, writer.password) },
      auth: false,
    });
    expect(r.status).toBe(200);
    const token = r.json<{ token: string }>().token;
    expect((await request(server.url, '/v2/', bearer(token))).status).toBe(200);
  });

  it('takes the OAuth2 password grant as a form, and refuses other grants', async () => {
    const form = new URLSearchParams({
      grant_type: 'password',
      username: writer.username,
      password: writer.password,
      service: 'custody',
      scope: 'repository:team/app:pull,push',
      client_id: 'test',
    });
    const r = await request(server.url, '/token', {
      method: 'POST',
      body: form.toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      auth: false,
    });
    expect(r.status).toBe(200);
    expect(claimsOf(r.json<{ access_token: string }>().access_token).access[0]?.actions).toEqual(['pull', 'push']);
    const refresh = await request(server.url, '/token', {
      method: 'POST',
      body: 'grant_type=refresh_token&refresh_token=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      auth: false,
    });
    expect(refresh.status).toBe(400);
    expect(refresh.json<{ error: string }>().error).toBe('unsupported_grant_type');
  });

  it('refuses scopes with path tricks or unknown types with 400', async () => {
    for (const scope of [
      'repository:../etc/passwd:pull',
      'repository:team/../admin:pull',
      'repository:Team/App:pull',
      'repository:team%2Fapp:pull',
      'bogus:thing:pull',
      'repository',
    ]) {
      const r = await request(server.url, `/token?service=custody&scope=${encodeURIComponent(scope)}`, {
        headers: { authorization: basic(reader.username, reader.password) },
        auth: false,
      });
      expect(r.status, scope).toBe(400);
      expect(r.json<{ error: string }>().error).toBe('invalid_scope');
    }
  });

  it('refuses a wrong password with 401 and a clear message, then rate limits the account', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await request(server.url, '/token?service=custody', { headers: { authorization: basic('victim', 'guess') }, auth: false });
      expect(r.status).toBe(401);
      expect(r.json<{ errors: { message: string }[] }>().errors[0]?.message).toBe('invalid username or password');
    }
    const limited = await request(server.url, '/token?service=custody', { headers: { authorization: basic('victim', 'guess') }, auth: false });
    expect(limited.status).toBe(429);
    expect(limited.json<{ errors: { message: string }[] }>().errors[0]?.message).toMatch(/too many failed logins/);
    const failures = await server.accounts.query({ action: 'login', actor: 'victim', limit: 10 });
    expect(failures.map((e) => e.outcome)).toEqual(['failure', 'failure', 'failure']);
    // The right password from this address waits too (another address would get in).
    expect((await request(server.url, '/v2/', { headers: { authorization: basic('victim', 'right') }, auth: false })).status).toBe(429);
  });
});

describe('Bearer tokens on the management API', () => {
  it("lets an administrator's token with registry:admin:manage use the admin routes, and nobody else's", async () => {
    const admin = await bearerToken(server.url, ['registry:admin:manage'], testAdmin);
    expect(claimsOf(admin).access).toEqual([{ type: 'registry', name: 'admin', actions: ['manage'] }]);
    expect((await request(server.url, '/api/v1/users', bearer(admin))).status).toBe(200);
    const notAdmin = await bearerToken(server.url, ['registry:admin:manage'], writer);
    expect(claimsOf(notAdmin).access[0]?.actions).toEqual([]);
    expect((await request(server.url, '/api/v1/users', bearer(notAdmin))).status).toBe(401);
  });
});

describe('JWTs that must not work', () => {
  it('refuses an expired token', async () => {
    // signed by a ring whose clock is an hour behind: the token ran out long ago
    const keys = new KeyRing(server.accounts, { tokenTtlSeconds: 300, now: () => Date.now() - 3_600_000 });
    const jwt = await keys.sign(
      { sub: reader.username, pk: 'user', pid: readerId, access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] },
      300,
      'custody',
    );
    const r = await pull(jwt);
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toContain('error="invalid_token"');
    expect(r.json<{ errors: { message: string }[] }>().errors[0]?.message).toMatch(/exp/);
  });

  it('refuses a token for another scope with a challenge for the right one', async () => {
    const token = await bearerToken(server.url, ['repository:team/app:pull'], reader);
    const r = await request(server.url, '/v2/team/other/tags/list', bearer(token));
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toContain('scope="repository:team/other:pull",error="insufficient_scope"');
  });

  it('says which action a token lacks, to an admin too, and keeps the challenge for a wider token', async () => {
    const token = await bearerToken(server.url, ['repository:team/app:pull,push'], testAdmin);
    const r = await request(server.url, `/v2/team/app/blobs/${layer}`, { method: 'DELETE', ...bearer(token) });
    expect(r.status).toBe(401);
    expect(r.json<{ errors: { message: string }[] }>().errors[0]?.message).toBe('the token grants pull,push on team/app; this request needs delete');
    expect(r.headers['www-authenticate']).toContain('scope="repository:team/app:delete",error="insufficient_scope"');
  });

  it('refuses a tampered token and one signed by a foreign key', async () => {
    const token = await bearerToken(server.url, ['repository:team/app:pull'], reader);
    const [header, , signature] = token.split('.');
    const claims = claimsOf(token);
    claims.access = [{ type: 'repository', name: 'team/app', actions: ['pull', 'push', 'delete'] }];
    const tampered = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
    expect((await request(server.url, '/v2/team/app/blobs/uploads/', { method: 'POST', ...bearer(tampered) })).status).toBe(401);

    const { privateKey } = await generateKeyPair('ES256');
    const { kid } = JSON.parse(Buffer.from(header as string, 'base64url').toString()) as { kid: string };
    const foreign = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: 'ES256', kid })
      .setIssuer('custody')
      .setAudience('custody')
      .setExpirationTime('5m')
      .sign(privateKey);
    expect((await pull(foreign)).status).toBe(401);
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;
    expect((await pull(unsigned)).status).toBe(401);
  });

  it('stops a revoked personal token at once with Basic, and its JWTs within a second', async () => {
    const { token, tokenId } = await createUserToken(server.accounts, readerId);
    const jwt = await bearerToken(server.url, ['repository:team/app:pull'], { username: reader.username, password: token });
    expect((await pull(jwt)).status).toBe(200);
    expect((await request(server.url, `/v2/team/app/blobs/${layer}`, { headers: { authorization: basic(reader.username, token) }, auth: false })).status).toBe(
      200,
    );
    await server.accounts.deleteToken(tokenId);
    expect((await request(server.url, `/v2/team/app/blobs/${layer}`, { headers: { authorization: basic(reader.username, token) }, auth: false })).status).toBe(
      401,
    );
    later(1100);
    const r = await pull(jwt);
    expect(r.status).toBe(401);
    expect(r.json<{ errors: { message: string }[] }>().errors[0]?.message).toMatch(/no longer exists/);
  });

  it('refuses an expired personal token, and narrows a token to its scopes', async () => {
    const expired = await createUserToken(server.accounts, readerId, { expiresAt: Date.now() - 1000 });
    expect(
      (await request(server.url, `/v2/team/app/blobs/${layer}`, { headers: { authorization: basic(reader.username, expired.token) }, auth: false })).status,
    ).toBe(401);
    const writerId = (await server.accounts.getUser({ name: writer.username }))!.id;
    const pullOnly = await createUserToken(server.accounts, writerId, { scopes: ['pull'] });
    const auth = { authorization: basic(writer.username, pullOnly.token) };
    expect((await request(server.url, `/v2/team/app/blobs/${layer}`, { headers: auth, auth: false })).status).toBe(200);
    expect((await request(server.url, '/v2/team/app/blobs/uploads/', { method: 'POST', headers: auth, auth: false })).status).toBe(403);
  });

  it('stops a deleted user', async () => {
    const id = await createUser(server.accounts, 'leaver', 'leaver-password', { team: 'reader' });
    const jwt = await bearerToken(server.url, ['repository:team/app:pull'], { username: 'leaver', password: 'leaver-password' });
    expect((await pull(jwt)).status).toBe(200);
    await server.accounts.deleteUser(id);
    expect(
      (await request(server.url, `/v2/team/app/blobs/${layer}`, { headers: { authorization: basic('leaver', 'leaver-password') }, auth: false })).status,
    ).toBe(401);
    later(1100);
    expect((await pull(jwt)).status).toBe(401);
  });

  it('keeps a robot inside its namespace', async () => {
    const robot = await createRobot(server.accounts, 'ci', 'builder', 'writer');
    const token = await bearerToken(server.url, ['repository:ci/app:pull,push', 'repository:team/app:pull'], { username: robot.name, password: robot.token });
    expect(claimsOf(token).access).toEqual([
      { type: 'repository', name: 'ci/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'team/app', actions: [] },
    ]);
    expect((await pull(token)).status).toBe(401);
    const data = 'robot bytes';
    expect((await request(server.url, `/v2/ci/app/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: data, ...bearer(token) })).status).toBe(201);
    // A robot's token names the robot: another user name with it is refused.
    expect((await request(server.url, '/v2/', { headers: { authorization: basic('admin', robot.token) }, auth: false })).status).toBe(401);
  });
});

describe('signing keys', () => {
  it('keeps verifying tokens signed before a rotation', async () => {
    const before = await bearerToken(server.url, ['repository:team/app:pull'], reader);
    const keys = new KeyRing(server.accounts, { tokenTtlSeconds: 300 });
    const kid = await keys.rotate();
    later(1100); // the server reloads keys when it meets an unknown key id, at most once a second
    const after = await bearerToken(server.url, ['repository:team/app:pull'], reader);
    const kidOf = (t: string) => (JSON.parse(Buffer.from(t.split('.')[0] as string, 'base64url').toString()) as { kid: string }).kid;
    expect(kidOf(before)).not.toBe(kid);
    expect((await pull(before)).status).toBe(200);
    expect((await pull(after)).status).toBe(200);
  });
});

describe('rate limits and audit', () => {
  it('answers 429 past the per-identity request rate, and lets the next request through once the bucket refills', async () => {
    let at = Date.now();
    // a clock that stands still unless moved: the bucket refills only when the test says so
    const limited = await startWithAccounts({ auth: { adminPassword: testAdmin.password, requestsPerSecond: 2 } }, { now: () => at }, { listen: false });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await request(limited.url, '/v2/')).status);
      // a burst of twice the rate, then nothing
      expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
      at += 500; // half a second at 2 per second: one request's token
      expect((await request(limited.url, '/v2/')).status).toBe(200);
      const refused = await request(limited.url, '/v2/');
      expect([refused.status, refused.headers['retry-after']]).toEqual([429, '1']);
    } finally {
      await limited.stop();
    }
  });

  it("says in Retry-After how long until the bucket holds a request's token again", () => {
    let at = 0;
    const bucket = new RateLimiter(0.25, undefined, () => at); // one request every 4 s, a burst of one
    expect(bucket.take('user:1')).toEqual({ allowed: true });
    expect(bucket.take('user:1')).toEqual({ allowed: false, retryAfter: 4 });
    at += 1000;
    expect(bucket.take('user:1')).toEqual({ allowed: false, retryAfter: 3 });
    at += 3000;
    expect(bucket.take('user:1')).toEqual({ allowed: true });
  });
});

describe('what the client address decides (a listening server: addresses come from its sockets)', () => {
  let own: AccountsServer;
  beforeAll(async () => {
    own = await startWithAccounts({ auth: { adminPassword: testAdmin.password, loginFailures: { max: 3, maxPerAddress: 4, windowSeconds: 60 } } });
  });
  afterAll(() => own?.stop());

  it('records pushes and deletes with the actor and address', async () => {
    const body = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] });
    expect(
      (
        await request(own.url, '/v2/team/audited/manifests/v1', {
          method: 'PUT',
          body,
          headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' },
        })
      ).status,
    ).toBe(201);
    expect((await request(own.url, '/v2/team/audited/manifests/v1', { method: 'DELETE' })).status).toBe(202);
    const events = await own.accounts.query({ target: 'team/audited@v1', limit: 10 });
    expect(events.map((e) => [e.action, e.actor, e.source, e.outcome])).toEqual([
      ['delete', 'admin', '127.0.0.1', 'success'],
      ['push', 'admin', '127.0.0.1', 'success'],
    ]);
  });

  it('rate limits an address that guesses at many accounts', async () => {
    const statuses: number[] = [];
    for (const name of ['a1', 'a2', 'a3', 'a4', 'a5'])
      statuses.push((await request(own.url, '/v2/', { headers: { authorization: basic(name, 'guess') }, auth: false })).status);
    expect(statuses).toEqual([401, 401, 401, 401, 429]);
    expect((await request(own.url, '/v2/')).status).toBe(429);
  });
});
