/**
 * Every /v2 route, asked by every kind of caller, with Basic credentials and with a Bearer token
 * from /token: the table says who is let through; everyone else must get 401 or 403 and change
 * nothing. Namespace `team` holds the image; the robot belongs to namespace `other`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, pushBlob, request, sha256, testAdmin, types, type Reply } from './helpers/http.ts';
import { bearerToken, createRobot, createUser, startWithAccounts, type AccountsServer } from './helpers/accounts.ts';

type Who = 'anonymous' | 'reader' | 'writer' | 'maintainer' | 'nsadmin' | 'admin' | 'robot';
const everyone: Who[] = ['anonymous', 'reader', 'writer', 'maintainer', 'nsadmin', 'admin', 'robot'];
const loggedIn: Who[] = everyone.filter((w) => w !== 'anonymous');
const readers: Who[] = ['reader', 'writer', 'maintainer', 'nsadmin', 'admin'];
const writers: Who[] = ['writer', 'maintainer', 'nsadmin', 'admin'];
const deleters: Who[] = ['maintainer', 'nsadmin', 'admin'];

let server: AccountsServer;
let offset = 0;
/** The server's clock: moved past the one-second role cache instead of sleeping. */
const now = () => Date.now() + offset;
const passwords: Record<Exclude<Who, 'anonymous'>, { username: string; password: string }> = {} as never;
let image: { config: string; layer: string; manifest: string; body: string };

beforeAll(async () => {
  server = await startWithAccounts({}, { now }, { listen: false });
  const a = server.accounts;
  for (const [who, role] of [
    ['reader', 'reader'],
    ['writer', 'writer'],
    ['maintainer', 'maintainer'],
  ] as const) {
    await createUser(a, who, `${who}-password`, { team: role });
    passwords[who] = { username: who, password: `${who}-password` };
  }
  // The namespace admin gets its role through a team, as namespaces are owned by teams.
  const owner = await createUser(a, 'owner', 'owner-password');
  const team = await a.createTeam('platform');
  await a.addMember(team.id, owner);
  await a.setGrant({ namespace: 'team', kind: 'team', principal: team.id, role: 'admin' });
  passwords.nsadmin = { username: 'owner', password: 'owner-password' };
  passwords.admin = testAdmin;
  const robot = await createRobot(a, 'other', 'ci', 'writer');
  passwords.robot = { username: robot.name, password: robot.token };

  const config = await pushBlob(server.url, 'team/app', JSON.stringify({ architecture: 'amd64', os: 'linux' }));
  const layer = await pushBlob(server.url, 'team/app', 'layer bytes');
  const body = manifestOf(config, layer);
  const put = await request(server.url, '/v2/team/app/manifests/v1', { method: 'PUT', body, headers: { 'content-type': types.manifest } });
  expect(put.status).toBe(201);
  image = { config, layer, manifest: sha256(body), body };
});
afterAll(() => server?.stop());

function manifestOf(config: string, layer: string): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: types.manifest,
    config: { mediaType: types.config, digest: config, size: JSON.stringify({ architecture: 'amd64', os: 'linux' }).length },
    layers: [{ mediaType: types.layer, digest: layer, size: 'layer bytes'.length }],
  });
}

interface Row {
  route: string;
  /** the scopes a client would ask /token for */
  scopes: string[];
  call: (auth: Record<string, string>, who: Who) => Promise<Reply>;
  allowed: Who[];
}

const as = (auth: Record<string, string>, path: string, options: { method?: string; body?: string; headers?: Record<string, string> } = {}) =>
  request(server.url, path, { ...options, headers: { ...options.headers, ...auth }, auth: false });

/** Starts an upload as the admin, for the routes that continue one. */
async function adminUpload(): Promise<string> {
  const r = await request(server.url, '/v2/team/app/blobs/uploads/', { method: 'POST' });
  return r.headers.location as string;
}

const rows: Row[] = [
  { route: 'GET /v2/', scopes: [], call: (h) => as(h, '/v2/'), allowed: loggedIn },
  { route: 'GET /v2/_catalog', scopes: ['registry:catalog:*'], call: (h) => as(h, '/v2/_catalog'), allowed: ['admin'] },
  { route: 'GET tags/list', scopes: ['repository:team/app:pull'], call: (h) => as(h, '/v2/team/app/tags/list'), allowed: readers },
  {
    route: 'GET manifest',
    scopes: ['repository:team/app:pull'],
    call: (h) => as(h, '/v2/team/app/manifests/v1', { headers: { accept: types.manifest } }),
    allowed: readers,
  },
  {
    route: 'HEAD manifest',
    scopes: ['repository:team/app:pull'],
    call: (h) => as(h, `/v2/team/app/manifests/${image.manifest}`, { method: 'HEAD' }),
    allowed: readers,
  },
  { route: 'GET blob', scopes: ['repository:team/app:pull'], call: (h) => as(h, `/v2/team/app/blobs/${image.layer}`), allowed: readers },
  { route: 'HEAD blob', scopes: ['repository:team/app:pull'], call: (h) => as(h, `/v2/team/app/blobs/${image.layer}`, { method: 'HEAD' }), allowed: readers },
  { route: 'GET referrers', scopes: ['repository:team/app:pull'], call: (h) => as(h, `/v2/team/app/referrers/${image.manifest}`), allowed: readers },
  { route: 'POST upload', scopes: ['repository:team/app:pull,push'], call: (h) => as(h, '/v2/team/app/blobs/uploads/', { method: 'POST' }), allowed: writers },
  {
    route: 'POST upload ?digest=',
    scopes: ['repository:team/app:pull,push'],
    call: (h, who) => {
      const data = `monolithic from ${who}`;
      return as(h, `/v2/team/app/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: data });
    },
    allowed: writers,
  },
  { route: 'GET upload', scopes: ['repository:team/app:pull,push'], call: async (h) => as(h, await adminUpload()), allowed: writers },
  {
    route: 'PATCH upload',
    scopes: ['repository:team/app:pull,push'],
    call: async (h) => as(h, await adminUpload(), { method: 'PATCH', body: 'chunk' }),
    allowed: writers,
  },
  {
    route: 'PUT upload',
    scopes: ['repository:team/app:pull,push'],
    call: async (h, who) => as(h, `${await adminUpload()}?digest=${sha256(`put from ${who}`)}`, { method: 'PUT', body: `put from ${who}` }),
    allowed: writers,
  },
  { route: 'DELETE upload', scopes: ['repository:team/app:pull,push'], call: async (h) => as(h, await adminUpload(), { method: 'DELETE' }), allowed: writers },
  {
    route: 'PUT manifest',
    scopes: ['repository:team/app:pull,push'],
    call: (h, who) => as(h, `/v2/team/app/manifests/by-${who}`, { method: 'PUT', body: image.body, headers: { 'content-type': types.manifest } }),
    allowed: writers,
  },
  {
    route: 'DELETE manifest (tag)',
    scopes: ['repository:team/app:delete'],
    call: async (h, who) => {
      const put = await request(server.url, `/v2/team/app/manifests/del-${who}`, {
        method: 'PUT',
        body: image.body,
        headers: { 'content-type': types.manifest },
      });
      expect(put.status).toBe(201);
      return as(h, `/v2/team/app/manifests/del-${who}`, { method: 'DELETE' });
    },
    allowed: deleters,
  },
  {
    route: 'DELETE blob',
    scopes: ['repository:team/app:delete'],
    call: async (h, who) => as(h, `/v2/team/app/blobs/${await pushBlob(server.url, 'team/app', `to delete by ${who}`)}`, { method: 'DELETE' }),
    allowed: deleters,
  },
];

async function credentialsFor(who: Who, via: 'basic' | 'bearer', scopes: string[]): Promise<Record<string, string>> {
  if (who === 'anonymous') return via === 'basic' ? {} : { authorization: `Bearer ${await bearerToken(server.url, scopes)}` };
  const c = passwords[who];
  if (via === 'basic') return { authorization: basic(c.username, c.password) };
  return { authorization: `Bearer ${await bearerToken(server.url, scopes, c)}` };
}

describe.each(['basic', 'bearer'] as const)('every /v2 route as every caller, with %s credentials', (via) => {
  it('lets through exactly the callers the table allows', async () => {
    const outcome: string[] = [];
    const expected: string[] = [];
    for (const row of rows) {
      for (const who of everyone) {
        const r = await row.call(await credentialsFor(who, via, row.scopes), who);
        const allowedHere = row.allowed.includes(who) || (via === 'bearer' && who === 'anonymous' && row.route === 'GET /v2/');
        expected.push(`${row.route} as ${who}: ${allowedHere ? 'allowed' : 'denied'}`);
        outcome.push(`${row.route} as ${who}: ${r.status === 401 || r.status === 403 ? 'denied' : 'allowed'}`);
        const denied = r.status === 401 || r.status === 403;
        if (denied && r.body.length > 0) expect(r.json<{ errors: { code: string }[] }>().errors[0]?.code).toMatch(/^(UNAUTHORIZED|DENIED)$/);
        if (!denied) expect(r.status, `${row.route} as ${who}: ${r.body.toString().slice(0, 200)}`).toBeLessThan(400);
      }
    }
    expect(outcome).toEqual(expected);
  });
});

/** Requests as the test admin, to prepare what a row acts on. */
const asAdmin = (path: string, method = 'POST', body?: unknown) =>
  request(server.url, path, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
  });
const json = (auth: Record<string, string>, path: string, method: string, body?: unknown) =>
  as(auth, path, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
  });

interface ApiRow {
  route: string;
  call: (auth: Record<string, string>, who: Who) => Promise<Reply>;
  allowed: Who[];
  /** statuses that mean "refused" besides 401 and 403 (someone else's token is hidden: 404) */
  hidden?: boolean;
}

const managers: Who[] = ['nsadmin', 'admin'];
const users: Who[] = ['reader', 'writer', 'maintainer', 'nsadmin', 'admin'];

const apiRows: ApiRow[] = [
  { route: 'GET /api/v1/me', call: (h) => as(h, '/api/v1/me'), allowed: loggedIn },
  { route: 'GET /api/v1/users', call: (h) => as(h, '/api/v1/users'), allowed: ['admin'] },
  {
    route: 'POST /api/v1/users',
    call: (h, who) => json(h, '/api/v1/users', 'POST', { name: `made-by-${who}`, password: 'a-long-password' }),
    allowed: ['admin'],
  },
  {
    route: 'DELETE /api/v1/users/:name',
    call: async (h, who) => {
      await asAdmin('/api/v1/users', 'POST', { name: `gone-${who}`, password: 'a-long-password' });
      return as(h, `/api/v1/users/gone-${who}`, { method: 'DELETE' });
    },
    allowed: ['admin'],
  },
  {
    route: 'PUT /api/v1/users/:name/password (someone else)',
    call: (h) => json(h, '/api/v1/users/bystander/password', 'PUT', { password: 'bystander-password' }),
    allowed: ['admin'],
  },
  { route: 'GET /api/v1/teams', call: (h) => as(h, '/api/v1/teams'), allowed: ['admin'] },
  { route: 'POST /api/v1/teams', call: (h, who) => json(h, '/api/v1/teams', 'POST', { name: `team-by-${who}` }), allowed: ['admin'] },
  {
    route: 'DELETE /api/v1/teams/:name',
    call: async (h, who) => {
      await asAdmin('/api/v1/teams', 'POST', { name: `doomed-${who}` });
      return as(h, `/api/v1/teams/doomed-${who}`, { method: 'DELETE' });
    },
    allowed: ['admin'],
  },
  { route: 'PUT /api/v1/teams/:name/members/:user', call: (h) => as(h, '/api/v1/teams/platform/members/reader', { method: 'PUT' }), allowed: ['admin'] },
  { route: 'DELETE /api/v1/teams/:name/members/:user', call: (h) => as(h, '/api/v1/teams/platform/members/reader', { method: 'DELETE' }), allowed: ['admin'] },
  { route: 'GET /api/v1/namespaces', call: (h) => as(h, '/api/v1/namespaces'), allowed: loggedIn },
  { route: 'GET /api/v1/namespaces/:ns', call: (h) => as(h, '/api/v1/namespaces/team'), allowed: managers },
  { route: 'PUT /api/v1/namespaces/:ns', call: (h) => json(h, '/api/v1/namespaces/team', 'PUT', { anonymousRead: false }), allowed: managers },
  {
    route: 'PUT /api/v1/namespaces/:ns/grants/:kind/:name',
    call: (h) => json(h, '/api/v1/namespaces/team/grants/user/reader', 'PUT', { role: 'reader' }),
    allowed: managers,
  },
  {
    route: 'DELETE /api/v1/namespaces/:ns/grants/:kind/:name',
    call: async (h, who) => {
      await asAdmin('/api/v1/users', 'POST', { name: `granted-${who}`, password: 'a-long-password' });
      await asAdmin(`/api/v1/namespaces/team/grants/user/granted-${who}`, 'PUT', { role: 'reader' });
      return as(h, `/api/v1/namespaces/team/grants/user/granted-${who}`, { method: 'DELETE' });
    },
    allowed: managers,
  },
  { route: 'GET /api/v1/namespaces/:ns/robots', call: (h) => as(h, '/api/v1/namespaces/team/robots'), allowed: managers },
  {
    route: 'POST /api/v1/namespaces/:ns/robots',
    call: (h, who) => json(h, '/api/v1/namespaces/team/robots', 'POST', { name: `bot-${who}` }),
    allowed: managers,
  },
  {
    route: 'DELETE /api/v1/namespaces/:ns/robots/:name',
    call: async (h, who) => {
      await asAdmin('/api/v1/namespaces/team/robots', 'POST', { name: `old-${who}` });
      return as(h, `/api/v1/namespaces/team/robots/old-${who}`, { method: 'DELETE' });
    },
    allowed: managers,
  },
  { route: 'GET /api/v1/namespaces/:ns/robots/:name/tokens', call: (h) => as(h, '/api/v1/namespaces/team/robots/builder/tokens'), allowed: managers },
  {
    route: 'POST /api/v1/namespaces/:ns/robots/:name/tokens',
    call: (h, who) => json(h, '/api/v1/namespaces/team/robots/builder/tokens', 'POST', { name: `t-${who}` }),
    allowed: managers,
  },
  {
    route: 'DELETE /api/v1/namespaces/:ns/robots/:name/tokens/:id',
    call: async (h, who) => {
      const made = await asAdmin('/api/v1/namespaces/team/robots/builder/tokens', 'POST', { name: `del-${who}` });
      return as(h, `/api/v1/namespaces/team/robots/builder/tokens/${made.json<{ id: string }>().id}`, { method: 'DELETE' });
    },
    allowed: managers,
  },
  { route: 'GET /api/v1/tokens', call: (h) => as(h, '/api/v1/tokens'), allowed: loggedIn },
  { route: 'POST /api/v1/tokens', call: (h, who) => json(h, '/api/v1/tokens', 'POST', { name: `mine-${who}` }), allowed: users },
  {
    route: "DELETE /api/v1/tokens/:id (the admin's)",
    call: async (h, who) => {
      const made = await asAdmin('/api/v1/tokens', 'POST', { name: `admins-${who}` });
      return as(h, `/api/v1/tokens/${made.json<{ id: string }>().id}`, { method: 'DELETE' });
    },
    allowed: ['admin'],
    hidden: true,
  },
  { route: 'POST /api/v1/keys/rotate', call: (h) => as(h, '/api/v1/keys/rotate', { method: 'POST' }), allowed: ['admin'] },
  { route: 'GET /api/v1/audit', call: (h) => as(h, '/api/v1/audit'), allowed: ['admin'] },
  { route: 'GET /api/v1/namespaces/:ns/trust', call: (h) => as(h, '/api/v1/namespaces/team/trust'), allowed: managers },
  { route: 'PUT /api/v1/namespaces/:ns/trust', call: (h) => json(h, '/api/v1/namespaces/team/trust', 'PUT', {}), allowed: managers },
  { route: 'DELETE /api/v1/namespaces/:ns/trust', call: (h) => as(h, '/api/v1/namespaces/team/trust', { method: 'DELETE' }), allowed: managers },
  {
    route: 'GET /api/v1/repositories/<name>/artifacts/<digest>',
    call: (h) => as(h, `/api/v1/repositories/team/app/artifacts/${image.manifest}`),
    allowed: readers,
  },
  {
    route: 'GET /api/v1/repositories/<name>/artifacts/<digest>/components',
    call: (h) => as(h, `/api/v1/repositories/team/app/artifacts/${image.manifest}/components`),
    allowed: readers,
  },
  { route: 'GET /api/v1/namespaces/:ns/tuf', call: (h) => as(h, '/api/v1/namespaces/team/tuf'), allowed: readers },
  {
    route: 'POST /api/v1/namespaces/:ns/tuf/rotate',
    call: (h) => json(h, '/api/v1/namespaces/team/tuf/rotate', 'POST', { role: 'timestamp' }),
    allowed: managers,
  },
  { route: 'GET /tuf/:ns/root.json', call: (h) => as(h, '/tuf/team/root.json'), allowed: readers },
  { route: 'GET /tuf/:ns/timestamp.json', call: (h) => as(h, '/tuf/team/timestamp.json'), allowed: readers },
  // cost: a namespace's admins read its figures and set its budget; everything else is the registry admin's
  { route: 'GET /api/v1/cost', call: (h) => as(h, '/api/v1/cost'), allowed: ['admin'] },
  { route: 'GET /api/v1/cost?namespace=team', call: (h) => as(h, '/api/v1/cost?namespace=team&by=repository'), allowed: managers },
  { route: 'GET /api/v1/cost?namespace=other', call: (h) => as(h, '/api/v1/cost?namespace=other'), allowed: ['admin'] },
  { route: 'GET /api/v1/cost/export', call: (h) => as(h, '/api/v1/cost/export?format=focus'), allowed: ['admin'] },
  { route: 'GET /api/v1/cost/export?namespace=team', call: (h) => as(h, '/api/v1/cost/export?namespace=team'), allowed: managers },
  { route: 'GET /api/v1/budgets', call: (h) => as(h, '/api/v1/budgets'), allowed: ['admin'] },
  {
    route: 'PUT /api/v1/budgets/namespace/:name',
    call: (h) => json(h, '/api/v1/budgets/namespace/team', 'PUT', { monthly: 100, soft: 50 }),
    allowed: managers,
  },
  {
    route: 'GET /api/v1/budgets/namespace/:name',
    call: async (h) => {
      await asAdmin('/api/v1/budgets/namespace/team', 'PUT', { monthly: 100 });
      return as(h, '/api/v1/budgets/namespace/team');
    },
    allowed: managers,
  },
  {
    route: 'DELETE /api/v1/budgets/namespace/:name',
    call: async (h) => {
      await asAdmin('/api/v1/budgets/namespace/team', 'PUT', { monthly: 100 });
      return as(h, '/api/v1/budgets/namespace/team', { method: 'DELETE' });
    },
    allowed: managers,
  },
  { route: 'PUT /api/v1/budgets/namespace/:name (other)', call: (h) => json(h, '/api/v1/budgets/namespace/other', 'PUT', { monthly: 1 }), allowed: ['admin'] },
  { route: 'PUT /api/v1/budgets/team/:name', call: (h) => json(h, '/api/v1/budgets/team/platform', 'PUT', { monthly: 100 }), allowed: ['admin'] },
  {
    route: 'GET /api/v1/budgets/team/:name',
    call: async (h) => {
      await asAdmin('/api/v1/budgets/team/platform', 'PUT', { monthly: 100 });
      return as(h, '/api/v1/budgets/team/platform');
    },
    allowed: ['admin'],
  },
  {
    route: 'DELETE /api/v1/budgets/team/:name',
    call: async (h) => {
      await asAdmin('/api/v1/budgets/team/platform', 'PUT', { monthly: 100 });
      return as(h, '/api/v1/budgets/team/platform', { method: 'DELETE' });
    },
    allowed: ['admin'],
  },
];

describe('every /api/v1 route as every caller', () => {
  beforeAll(async () => {
    await server.accounts.upsertNamespace('team', {});
    await createUser(server.accounts, 'bystander', 'bystander-password');
    expect((await asAdmin('/api/v1/namespaces/team/robots', 'POST', { name: 'builder' })).status).toBe(201);
  });

  it('lets through exactly the callers the table allows', async () => {
    const outcome: string[] = [];
    const expected: string[] = [];
    for (const row of apiRows) {
      for (const who of everyone) {
        const r = await row.call(await credentialsFor(who, 'basic', []), who);
        const denied = r.status === 401 || r.status === 403 || (row.hidden === true && r.status === 404);
        expected.push(`${row.route} as ${who}: ${row.allowed.includes(who) ? 'allowed' : 'denied'}`);
        outcome.push(`${row.route} as ${who}: ${denied ? 'denied' : 'allowed'}`);
        if (!denied) expect(r.status, `${row.route} as ${who}: ${r.body.toString().slice(0, 200)}`).toBeLessThan(400);
      }
    }
    expect(outcome).toEqual(expected);
  });
});

describe('denials change nothing', () => {
  it('keeps the tags, manifests and blobs that refused callers tried to change', async () => {
    const tags = await request(server.url, '/v2/team/app/tags/list');
    const names = tags.json<{ tags: string[] }>().tags;
    for (const who of ['anonymous', 'reader', 'robot']) expect(names).not.toContain(`by-${who}`);
    for (const who of ['anonymous', 'reader', 'writer', 'robot']) expect(names).toContain(`del-${who}`);
    expect((await request(server.url, `/v2/team/app/blobs/${sha256('monolithic from reader')}`)).status).toBe(404);
  });
});

describe('cross-repository mount', () => {
  it('mounts only when the caller may pull the source; otherwise it starts a plain upload', async () => {
    const secret = await pushBlob(server.url, 'private/src', 'secret layer');
    const writer = { authorization: basic('writer', 'writer-password') };
    const refused = await as(writer, `/v2/team/app/blobs/uploads/?mount=${secret}&from=private/src`, { method: 'POST' });
    expect(refused.status).toBe(202);
    expect((await request(server.url, `/v2/team/app/blobs/${secret}`, { method: 'HEAD' })).status).toBe(404);
    const mounted = await request(server.url, `/v2/team/app/blobs/uploads/?mount=${secret}&from=private/src`, { method: 'POST' });
    expect(mounted.status).toBe(201);
  });
});

describe('challenges', () => {
  it('tells an anonymous client where to get a token and for which scope', async () => {
    const r = await request(server.url, '/v2/team/app/tags/list', { auth: false });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe(`Bearer realm="${server.url}/token",service="custody",scope="repository:team/app:pull"`);
  });

  it('lets anonymous clients pull from a namespace that allows anonymous read, and nothing more', async () => {
    await server.accounts.upsertNamespace('public', { anonymousRead: true });
    const digest = await pushBlob(server.url, 'public/tool', 'public bytes');
    offset += 1100; // the role cache holds answers for a second
    expect((await request(server.url, `/v2/public/tool/blobs/${digest}`, { auth: false })).status).toBe(200);
    expect((await request(server.url, '/v2/public/tool/blobs/uploads/', { method: 'POST', auth: false })).status).toBe(401);
    const token = await bearerToken(server.url, ['repository:public/tool:pull,push']);
    const r = await request(server.url, `/v2/public/tool/blobs/${digest}`, { headers: { authorization: `Bearer ${token}` }, auth: false });
    expect(r.status).toBe(200);
  });
});
