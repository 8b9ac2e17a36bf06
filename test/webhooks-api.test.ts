/**
 * /api/v1/namespaces/<ns>/webhooks: managing webhooks (the secret shown once, changes audited),
 * bad input answered 400, who may do what, and what a receiver on 127.0.0.1 gets for pushes,
 * pulls and deletes made through /v2, filtered by type and repository pattern, and the log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, imageManifest, putManifest, request, testAdmin, type Reply } from './helpers/http.ts';
import { createRobot, createUser, startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { signed, startReceiver, type Receiver } from './helpers/receiver.ts';

let server: AccountsServer;
let receiver: Receiver;

/** An API call as the test admin, or with `auth` (an Authorization header), or anonymous (`auth: null`). */
const json = (method: string, path: string, body?: unknown, auth?: string | null): Promise<Reply> =>
  request(server.url, `/api/v1${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(auth ? { authorization: auth } : {}) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(auth === undefined ? {} : { auth: false as const }),
  });

interface View {
  id: string;
  url: string;
  types: string[];
  repositories: string[];
  mode: string;
  queued: number;
  secret?: string;
}

/** Polls until `check` holds, at most 10 s. */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  receiver = await startReceiver();
  server = await startWithAccounts(
    { insight: { events: { flushMs: 50 }, webhooks: { allowPrivateNetworks: true, pollSeconds: 0.05, backoff: { initialSeconds: 0.05, maxSeconds: 0.2 } } } },
    {},
    { listen: false },
  );
  for (const ns of ['team', 'other']) expect((await json('PUT', `/namespaces/${ns}`, {})).status).toBe(200);
});
afterAll(async () => {
  await server?.stop();
  await receiver?.stop();
});

describe('managing webhooks', () => {
  it('creates with a generated secret shown once, lists, shows, changes, rotates and deletes, each change audited', async () => {
    const created = await json('POST', '/namespaces/team/webhooks', { url: 'https://hooks.example.com/a?key=1', types: ['delete'] });
    expect(created.status).toBe(201);
    const hook = created.json<View>();
    expect(hook).toMatchObject({ url: 'https://hooks.example.com/a?key=1', types: ['delete'], repositories: ['team/**'], mode: 'structured', queued: 0 });
    expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    // a given secret is not echoed
    const own = await json('POST', '/namespaces/team/webhooks', {
      url: 'https://hooks.example.com/b',
      secret: 'my-own-secret-1234',
      types: ['push'],
      mode: 'binary',
    });
    expect(own.status).toBe(201);
    expect(own.json<View>().secret).toBeUndefined();
    expect(own.body.toString()).not.toContain('my-own-secret-1234');

    const listed = (await json('GET', '/namespaces/team/webhooks')).json<{ webhooks: View[] }>().webhooks;
    expect(listed.map((w) => w.id)).toEqual([hook.id, own.json<View>().id]);
    expect(JSON.stringify(listed)).not.toMatch(/secret/);
    const shown = await json('GET', `/namespaces/team/webhooks/${hook.id}`);
    expect(shown.status).toBe(200);
    expect(shown.json<View>().secret).toBeUndefined();
    expect((await json('GET', `/namespaces/other/webhooks/${hook.id}`)).status).toBe(404);

    const changed = await json('PATCH', `/namespaces/team/webhooks/${hook.id}`, {
      types: ['push', 'pull'],
      repositories: ['team/app*', 'team/app*'],
      description: 'ci',
    });
    expect(changed.status).toBe(200);
    expect(changed.json<View>()).toMatchObject({ types: ['push', 'pull'], repositories: ['team/app*'], url: 'https://hooks.example.com/a?key=1' });
    expect(changed.json<View>().secret).toBeUndefined();
    const rotated = await json('PATCH', `/namespaces/team/webhooks/${hook.id}`, { rotateSecret: true });
    expect(rotated.json<View>().secret).toMatch(/^whsec_/);
    expect(rotated.json<View>().secret).not.toBe(hook.secret);
    expect((await server.meta.webhooks.getWebhook(hook.id))?.secret).toBe(rotated.json<View>().secret);

    expect((await json('DELETE', `/namespaces/team/webhooks/${hook.id}`)).status).toBe(204);
    expect((await json('DELETE', `/namespaces/team/webhooks/${hook.id}`)).status).toBe(404);
    expect((await json('DELETE', `/namespaces/team/webhooks/${own.json<View>().id}`)).status).toBe(204);

    const audit = (await json('GET', '/audit?action=webhook')).json<{ events: { action: string; target: string; detail: Record<string, unknown> }[] }>().events;
    const actions = (await Promise.all(['webhook.create', 'webhook.update', 'webhook.delete'].map((a) => json('GET', `/audit?action=${a}`)))).map(
      (r) => r.json<{ events: { target: string; detail: Record<string, unknown> }[] }>().events,
    );
    void audit;
    expect(actions.map((a) => a.length)).toEqual([2, 2, 2]);
    expect(actions[0]?.find((e) => e.target === hook.id)?.detail).toMatchObject({
      namespace: 'team',
      origin: 'https://hooks.example.com',
      generatedSecret: true,
    });
    // the URL's query (possibly a key) and the secret stay out of the audit log
    expect(JSON.stringify(actions)).not.toMatch(/key=1|whsec_|my-own-secret/);
    expect(actions[1]?.map((e) => e.detail.secretChanged).sort()).toEqual([false, true]);
  });

  it('answers bad input with a 400 that says what is wrong', async () => {
    const bad: [unknown, RegExp][] = [
      [{ url: 'ftp://hooks.example.com/', types: ['push'] }, /http:\/\/ or https:\/\//],
      [{ url: 'not a url', types: ['push'] }, /not a URL/],
      [{ url: 'https://me:pw@hooks.example.com/', types: ['push'] }, /no user or password/],
      [{ url: 'https://hooks.example.com/', types: ['pushed'] }, /an event type is push, pull, delete/],
      [{ url: 'https://hooks.example.com/', types: [] }, /at least one event type/],
      [{ url: 'https://hooks.example.com/', types: ['push', 'push'] }, /named once/],
      [{ url: 'https://hooks.example.com/' }, /\(types\)/],
      [{ url: 'https://hooks.example.com/', types: ['push'], repositories: ['other/**'] }, /starts with the webhook's namespace/],
      [{ url: 'https://hooks.example.com/', types: ['push'], repositories: ['team/a**'] }, /'\*\*' stands alone/],
      [{ url: 'https://hooks.example.com/', types: ['push'], repositories: ['team/(x|y)'] }, /a pattern uses/],
      [{ url: 'https://hooks.example.com/', types: ['push'], repositories: [] }, /at least one repository pattern/],
      [{ url: 'https://hooks.example.com/', types: ['push'], mode: 'both' }, /structured or binary/],
      [{ url: 'https://hooks.example.com/', types: ['push'], secret: 'short' }, /at least 16/],
      [{ url: 'https://hooks.example.com/', types: ['push'], extra: 1 }, /invalid webhook/],
      [{ url: 'https://hooks.example.com/', types: 'push' }, /\(types\)/],
    ];
    for (const [body, message] of bad) {
      const r = await json('POST', '/namespaces/team/webhooks', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json<{ error: { code: string; message: string } }>().error.message, JSON.stringify(body)).toMatch(message);
    }
    const hook = (await json('POST', '/namespaces/team/webhooks', { url: 'https://hooks.example.com/', types: ['delete'] })).json<View>();
    for (const [body, message] of [
      [{ url: 'gopher://x/' }, /http:\/\/ or https:\/\//],
      [{ secret: 'x', rotateSecret: true }, /invalid webhook change/],
      [{ secret: 'a-long-enough-secret', rotateSecret: true }, /not both/],
      [{ rotateSecret: false }, /invalid webhook change/],
      [{ types: ['login'] }, /an event type is/],
    ] as const) {
      const r = await json('PATCH', `/namespaces/team/webhooks/${hook.id}`, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json<{ error: { message: string } }>().error.message).toMatch(message);
    }
    expect((await json('GET', '/namespaces/team/webhooks/not-an-id')).status).toBe(404);
    expect((await json('GET', '/namespaces/nosuch/webhooks')).status).toBe(404);
    expect((await json('GET', '/namespaces/Bad_NS!/webhooks')).status).toBe(400);
    expect((await json('GET', `/namespaces/team/webhooks/${hook.id}/deliveries?limit=0`)).status).toBe(400);
    expect((await json('GET', `/namespaces/team/webhooks/${hook.id}/deliveries?before=x`)).status).toBe(400);
    await json('DELETE', `/namespaces/team/webhooks/${hook.id}`);
  });

  it('refuses loopback, private and link-local URLs unless insight.webhooks.allowPrivateNetworks is set', async () => {
    const strict = await startWithAccounts({}, {}, { listen: false });
    try {
      await request(strict.url, '/api/v1/namespaces/team', { method: 'PUT', body: '{}', headers: { 'content-type': 'application/json' } });
      for (const url of ['http://127.0.0.1:8080/', 'http://localhost/', 'http://[::1]/', 'http://169.254.169.254/latest', 'http://10.0.0.5/']) {
        const r = await request(strict.url, '/api/v1/namespaces/team/webhooks', {
          method: 'POST',
          body: JSON.stringify({ url, types: ['push'] }),
          headers: { 'content-type': 'application/json' },
        });
        expect(r.status, url).toBe(400);
        expect(r.json<{ error: { message: string } }>().error.message).toMatch(/insight\.webhooks\.allowPrivateNetworks/);
      }
    } finally {
      await strict.stop();
    }
    expect((await json('POST', '/namespaces/team/webhooks', { url: 'http://127.0.0.1:8080/', types: ['delete'] })).status).toBe(201);
    for (const w of await server.meta.webhooks.listWebhooks('team')) await server.meta.webhooks.deleteWebhook(w.id);
  });
});

describe('who may manage webhooks', () => {
  type Who = 'anonymous' | 'reader' | 'writer' | 'maintainer' | 'nsadmin' | 'otheradmin' | 'robot' | 'admin';
  const auth: Partial<Record<Who, string>> = {};
  let hookId = '';
  beforeAll(async () => {
    const a = server.accounts;
    for (const role of ['reader', 'writer', 'maintainer'] as const) {
      await createUser(a, role, `${role}-password`, { team: role });
      auth[role] = basic(role, `${role}-password`);
    }
    await createUser(a, 'owner', 'owner-password', { team: 'admin' });
    auth.nsadmin = basic('owner', 'owner-password');
    await createUser(a, 'stranger', 'stranger-password', { other: 'admin' });
    auth.otheradmin = basic('stranger', 'stranger-password');
    const robot = await createRobot(a, 'team', 'ci', 'writer');
    auth.robot = basic(robot.name, robot.token);
    auth.admin = basic(testAdmin.username, testAdmin.password);
    hookId = (await json('POST', '/namespaces/team/webhooks', { url: 'https://hooks.example.com/', types: ['delete'] })).json<View>().id;
  });

  const routes: { name: string; call: (auth: string | null) => Promise<Reply>; ok: number }[] = [
    { name: 'list', call: (a) => json('GET', '/namespaces/team/webhooks', undefined, a), ok: 200 },
    { name: 'show', call: (a) => json('GET', `/namespaces/team/webhooks/${hookId}`, undefined, a), ok: 200 },
    { name: 'deliveries', call: (a) => json('GET', `/namespaces/team/webhooks/${hookId}/deliveries`, undefined, a), ok: 200 },
    { name: 'change', call: (a) => json('PATCH', `/namespaces/team/webhooks/${hookId}`, { description: 'x' }, a), ok: 200 },
    { name: 'create', call: (a) => json('POST', '/namespaces/team/webhooks', { url: 'https://hooks.example.com/', types: ['delete'] }, a), ok: 201 },
  ];
  const allowed: Who[] = ['nsadmin', 'admin'];

  for (const route of routes)
    it(`${route.name}: namespace admins and registry admins only`, async () => {
      for (const who of ['anonymous', 'reader', 'writer', 'maintainer', 'otheradmin', 'robot', 'nsadmin', 'admin'] as Who[]) {
        const r = await route.call(who === 'anonymous' ? null : (auth[who] ?? null));
        const want = allowed.includes(who) ? route.ok : who === 'anonymous' ? 401 : 403;
        expect(r.status, `${route.name} as ${who}`).toBe(want);
      }
    });

  it('delete: namespace admins and registry admins only, and nothing changes for the others', async () => {
    for (const who of ['reader', 'writer', 'maintainer', 'otheradmin', 'robot'] as Who[])
      expect((await json('DELETE', `/namespaces/team/webhooks/${hookId}`, undefined, auth[who] ?? null)).status, who).toBe(403);
    expect((await request(server.url, `/api/v1/namespaces/team/webhooks/${hookId}`, { method: 'DELETE', auth: false })).status).toBe(401);
    expect(await server.meta.webhooks.getWebhook(hookId)).toBeDefined();
    expect((await json('DELETE', `/namespaces/team/webhooks/${hookId}`, undefined, auth.nsadmin ?? null)).status).toBe(204);
    for (const w of await server.meta.webhooks.listWebhooks('team')) await server.meta.webhooks.deleteWebhook(w.id);
  });
});

describe('events through /v2 arrive as CloudEvents', () => {
  it('a push, a pull and a delete reach the webhooks whose type and repository filters take them, signed, and show in the log', async () => {
    const make = async (body: Record<string, unknown>) => (await json('POST', '/namespaces/team/webhooks', { url: receiver.url, ...body })).json<View>();
    const everything = await make({ types: ['push', 'pull', 'delete'] });
    const appPushes = await make({ types: ['push'], repositories: ['team/app'], mode: 'binary' });
    const image = await imageManifest(server.url, 'team/app', ['layer one']);
    expect((await putManifest(server.url, 'team/app', 'v1', image.body)).status).toBe(201);
    const web = await imageManifest(server.url, 'team/web', ['layer web']);
    expect((await putManifest(server.url, 'team/web', 'v1', web.body)).status).toBe(201);
    expect((await request(server.url, '/v2/team/app/manifests/v1')).status).toBe(200);
    expect((await request(server.url, '/v2/team/app/manifests/v1', { method: 'DELETE' })).status).toBe(202);
    const other = await imageManifest(server.url, 'other/app', ['layer other']);
    expect((await putManifest(server.url, 'other/app', 'v1', other.body)).status).toBe(201);

    const to = (id: string) => receiver.received.filter((r) => r.headers['custody-webhook-id'] === id);
    const isDelete = (r: { event: { type: string } }) => r.event.type === 'dev.custody.delete';
    await until(() => to(everything.id).some(isDelete), 'the delete to arrive');
    await until(async () => (await server.meta.webhooks.queued()).size === 0, 'the queues to drain');

    const all = to(everything.id);
    const secretOf = async (id: string) => (await server.meta.webhooks.getWebhook(id))!.secret;
    expect(all.every((r) => r.status === 204)).toBe(true);
    for (const r of all) expect(signed(r, await secretOf(everything.id))).toBe(true);
    // every event of team, and none of other
    expect(all.every((r) => String(r.event.source).endsWith('/team/app') || String(r.event.source).endsWith('/team/web'))).toBe(true);
    const manifestPush = all.find((r) => r.event.type === 'dev.custody.push' && r.event.data?.object === 'manifest' && r.event.data?.repository === 'team/app');
    expect(manifestPush?.event).toMatchObject({ specversion: '1.0', subject: 'v1', datacontenttype: 'application/json' });
    expect(manifestPush?.event.data).toMatchObject({ digest: image.digest, tag: 'v1', actor: 'admin', result: 'ok', namespace: 'team' });
    const pull = all.find((r) => r.event.type === 'dev.custody.pull' && r.event.data?.object === 'manifest');
    expect(pull?.event.data).toMatchObject({ repository: 'team/app', tag: 'v1', status: 200 });
    expect(pull?.event.time).toBe(new Date(String(pull?.event.data?.time)).toISOString());
    expect(all.filter(isDelete)).toHaveLength(1);
    // the same events, once each, as the store recorded them
    const recorded = (await server.meta.insight.eventsAfter(undefined, 1000, { namespaces: ['team'], types: ['push', 'pull', 'delete'] })).filter(
      (e) => e.result === 'ok',
    );
    expect(all.map((r) => r.event.id).sort()).toEqual(recorded.map((e) => e.id).sort());
    // in the order recorded, per repository: the manifest's push after its blobs', the delete last
    const appOrder = all.filter((r) => r.event.data?.repository === 'team/app').map((r) => `${String(r.event.data?.type)}:${String(r.event.data?.object)}`);
    expect(appOrder.at(-1)).toBe('delete:tag');
    expect(appOrder.indexOf('push:manifest')).toBeGreaterThan(appOrder.lastIndexOf('push:blob'));

    const only = to(appPushes.id);
    expect(only.length).toBeGreaterThan(0);
    expect(only.every((r) => r.event.type === 'dev.custody.push' && r.event.data?.repository === 'team/app')).toBe(true);
    expect(only.every((r) => typeof r.headers['ce-id'] === 'string')).toBe(true);
    expect(only.map((r) => r.event.id).sort()).toEqual(
      recorded
        .filter((e) => e.type === 'push' && e.repository === 'team/app')
        .map((e) => e.id)
        .sort(),
    );

    const log = (await json('GET', `/namespaces/team/webhooks/${everything.id}/deliveries?limit=2`)).json<{
      deliveries: { eventId: string; type: string; attempt: number; outcome: string; status: number; at: string; durationMs: number }[];
      next?: number;
    }>();
    expect(log.deliveries).toHaveLength(2);
    expect(log.next).toBeDefined();
    const rest = (await json('GET', `/namespaces/team/webhooks/${everything.id}/deliveries?limit=500&before=${log.next}`)).json<typeof log>();
    const entries = [...log.deliveries, ...rest.deliveries];
    expect(entries.map((d) => d.eventId).sort()).toEqual(all.map((r) => r.event.id).sort());
    expect(entries.every((d) => d.attempt === 1 && d.outcome === 'delivered' && d.status === 204 && d.durationMs >= 0)).toBe(true);
    expect(entries.filter((d) => d.type === 'delete')).toHaveLength(1);
  });

  it('a failing receiver shows in the log with the status and the start of its answer, then the retry that succeeded', async () => {
    const hook = (await json('POST', '/namespaces/team/webhooks', { url: receiver.url, types: ['delete'] })).json<View>();
    let failures = 2;
    receiver.answer = (r) => (r.headers['custody-webhook-id'] === hook.id && failures-- > 0 ? 503 : 204);
    const image = await imageManifest(server.url, 'team/logged', ['logged layer']);
    await putManifest(server.url, 'team/logged', 'v1', image.body);
    await request(server.url, '/v2/team/logged/manifests/v1', { method: 'DELETE' });
    await until(() => receiver.accepted().some((r) => r.headers['custody-webhook-id'] === hook.id), 'the delete to be delivered');
    receiver.answer = () => 204;
    const log = (await json('GET', `/namespaces/team/webhooks/${hook.id}/deliveries`)).json<{
      deliveries: { attempt: number; outcome: string; status: number; error: string; response: string }[];
    }>().deliveries;
    expect(log.map((d) => [d.attempt, d.outcome, d.status])).toEqual([
      [3, 'delivered', 204],
      [2, 'failed', 503],
      [1, 'failed', 503],
    ]);
    expect(log[1]).toMatchObject({ error: 'HTTP 503', response: 'refused with 503' });
    const headers = receiver.received.filter((r) => r.headers['custody-webhook-id'] === hook.id).map((r) => r.headers['custody-delivery-attempt']);
    expect(headers).toEqual(['1', '2', '3']);
  });
});
