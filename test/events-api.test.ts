/**
 * GET /api/v1/events and /api/v1/usage/rollups: filters, pages, who sees what (registry
 * administrators everything, a namespace's readers their namespace, anonymous nothing), and bad
 * queries refused with a 400 that names the parameter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventId, hourMs, type UsageEvent } from '../src/meta/insight.ts';
import { createUser, startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { basic, request, type Reply } from './helpers/http.ts';

let server: AccountsServer;
const t0 = Date.UTC(2025, 2, 3, 9, 0, 0);

function event(at: number, extra: Partial<UsageEvent>): UsageEvent {
  return {
    id: eventId(at),
    at,
    type: 'pull',
    object: 'manifest',
    namespace: 'team',
    repository: 'team/app',
    digest: `sha256:${'b'.repeat(64)}`,
    tag: 'v1',
    mediaType: '',
    actor: 'alice',
    actorKind: 'user',
    tokenId: '',
    bytes: 10,
    userAgent: 'skopeo/1.13',
    source: '10.0.0.1',
    durationMicros: 500,
    status: 200,
    result: 'ok',
    detail: {},
    ...extra,
  };
}

beforeAll(async () => {
  // events off: the test seeds them, and its own requests make none
  server = await startWithAccounts({ insight: { events: { enabled: false } } }, {}, { listen: false });
  await createUser(server.accounts, 'reader', 'reader-password', { team: 'reader' });
  await createUser(server.accounts, 'outsider', 'outsider-password', { other: 'reader' });
  await server.meta.insight.recordEvents([
    ...Array.from({ length: 12 }, (_, i) => event(t0 + i * 60_000, { bytes: i })),
    event(t0 + 30_000, { type: 'push', object: 'blob', repository: 'team/lib', tag: '', bytes: 1000 }),
    event(t0 + 40_000, { namespace: 'other', repository: 'other/x', bytes: 7 }),
    event(t0 + 50_000, { type: 'login', object: '', namespace: '', repository: '', digest: '', tag: '', actor: 'admin', bytes: 0 }),
    event(t0 + 2 * hourMs, { bytes: 5 }),
  ]);
});
afterAll(() => server.stop());

const as = (user: string, password: string) => ({ headers: { authorization: basic(user, password) } });
const reader = as('reader', 'reader-password');
type Page = { events: { id: string; time: string; type: string; repository: string; bytes: number; actor: string }[]; next: string | null };
const page = (r: Reply) => r.json<Page>();
const errorOf = (r: Reply) => r.json<{ error: { code: string; message: string } }>().error;

describe('GET /api/v1/events', () => {
  it('lists everything newest first for a registry administrator, in pages that neither skip nor repeat', async () => {
    const seen: string[] = [];
    let before: string | null = null;
    do {
      const r = await request(server.url, `/api/v1/events?limit=5${before ? `&before=${before}` : ''}`);
      expect(r.status).toBe(200);
      const p = page(r);
      seen.push(...p.events.map((e) => e.id));
      before = p.next;
    } while (before);
    expect(seen).toHaveLength(16);
    expect([...seen].sort().reverse()).toEqual(seen);
    const first = page(await request(server.url, '/api/v1/events?limit=1')).events[0];
    expect(first).toMatchObject({ time: new Date(t0 + 2 * hourMs).toISOString(), type: 'pull', repository: 'team/app', bytes: 5, actor: 'alice' });
  });

  it('filters by type, namespace, repository and time', async () => {
    const get = async (q: string) => page(await request(server.url, `/api/v1/events?${q}`)).events;
    expect((await get('type=push,login')).map((e) => e.type)).toEqual(['login', 'push']);
    expect((await get('namespace=other')).map((e) => e.repository)).toEqual(['other/x']);
    expect(await get('repository=team/lib')).toHaveLength(1);
    const since = new Date(t0 + 10 * 60_000).toISOString();
    const until = new Date(t0 + hourMs).toISOString();
    expect((await get(`namespace=team&type=pull&since=${since}&until=${until}`)).map((e) => e.bytes)).toEqual([11, 10]);
    expect(await get(`since=${t0 + 2 * hourMs}`)).toHaveLength(1);
  });

  it("shows a namespace's readers their namespace only, and nothing registry-wide; anonymous nothing", async () => {
    const own = await request(server.url, '/api/v1/events?namespace=team&limit=100', reader);
    expect(own.status).toBe(200);
    expect(page(own).events).toHaveLength(14);
    expect(page(own).events.every((e) => e.repository.startsWith('team/'))).toBe(true);
    expect((await request(server.url, '/api/v1/events?repository=team/lib', reader)).status).toBe(200);
    expect((await request(server.url, '/api/v1/events?namespace=other', reader)).status).toBe(403);
    expect((await request(server.url, '/api/v1/events?repository=other/x', reader)).status).toBe(403);
    // everything (registry-wide events too) is for administrators
    expect((await request(server.url, '/api/v1/events', reader)).status).toBe(403);
    expect((await request(server.url, '/api/v1/events?namespace=team', as('outsider', 'outsider-password'))).status).toBe(403);
    expect((await request(server.url, '/api/v1/events?namespace=team', { auth: false })).status).toBe(401);
  });

  it('refuses bad queries with a 400 that names the parameter', async () => {
    for (const [q, where] of [
      ['type=pulls', 'type'],
      ['type=', 'type'],
      ['limit=0', 'limit'],
      ['limit=501', 'limit'],
      ['since=yesterday', 'since'],
      ['before=abc', 'before'],
      ['namespace=Team', 'namespace'],
      ['repository=team//x', 'repository'],
      ['colour=red', ''],
    ] as const) {
      const r = await request(server.url, `/api/v1/events?${q}`);
      expect(r.status, q).toBe(400);
      expect(errorOf(r).code).toBe('INVALID');
      if (where) expect(errorOf(r).message).toContain(`(${where})`);
    }
    const mismatch = await request(server.url, '/api/v1/events?namespace=team&repository=other/x');
    expect(mismatch.status).toBe(400);
    expect(errorOf(mismatch).message).toMatch(/not in namespace team/);
  });
});

describe('GET /api/v1/usage/rollups', () => {
  type Rollups = {
    period: string;
    rollups: { start: string; namespace: string; repository: string; type: string; count: number; bytes: number }[];
    truncated: boolean;
  };
  const window = `since=${new Date(t0 - hourMs).toISOString()}&until=${new Date(t0 + 3 * hourMs).toISOString()}`;

  it('answers counts and bytes per hour and per day, as the events were written', async () => {
    const hours = (await request(server.url, `/api/v1/usage/rollups?period=hour&namespace=team&${window}`)).json<Rollups>();
    expect(hours.rollups.map((r) => [r.start, r.repository, r.type, r.count, r.bytes])).toEqual([
      [new Date(t0).toISOString(), 'team/app', 'pull', 12, 66],
      [new Date(t0).toISOString(), 'team/lib', 'push', 1, 1000],
      [new Date(t0 + 2 * hourMs).toISOString(), 'team/app', 'pull', 1, 5],
    ]);
    expect(hours.truncated).toBe(false);
    const days = (await request(server.url, `/api/v1/usage/rollups?period=day&${window}`)).json<Rollups>();
    expect(days.rollups.map((r) => [r.namespace, r.type, r.count])).toEqual([
      ['', 'login', 1],
      ['other', 'pull', 1],
      ['team', 'pull', 13],
      ['team', 'push', 1],
    ]);
  });

  it('lets readers see their namespace, and refuses bad periods', async () => {
    expect((await request(server.url, `/api/v1/usage/rollups?period=day&namespace=team&${window}`, reader)).status).toBe(200);
    expect((await request(server.url, `/api/v1/usage/rollups?period=day&${window}`, reader)).status).toBe(403);
    const bad = await request(server.url, '/api/v1/usage/rollups?period=week');
    expect(bad.status).toBe(400);
    expect(errorOf(bad).message).toContain('(period)');
    expect((await request(server.url, '/api/v1/usage/rollups')).status).toBe(400);
  });
});
