/**
 * Cost over a seeded month (November 2026, 30 days): images pushed over HTTP into three namespaces
 * that share blobs, storage sampled twice (the sampler, at chosen times), pulls and pushes seeded
 * as events with chosen client addresses, and the figures per namespace, team, label and
 * repository checked against what the price model and docs/lifecycle.md's fair split say. Then the
 * FOCUS export against the FOCUS column definitions, budgets and their announcements, a policy on
 * ns.costThisMonth, and bad input answered with 400.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dayMs, hourMs } from '../src/meta/insight.ts';
import { sampleStorage } from '../src/insight/cost/sampler.ts';
import { rollUpNetworkEgress } from '../src/insight/cost/egress.ts';
import { networkClassifier } from '../src/insight/cost/networks.ts';
import { checkBudgets } from '../src/insight/cost/budgets.ts';
import { createUser, startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { basic, imageManifest, putManifest, request, type Reply } from './helpers/http.ts';
import { validateFocus } from './helpers/focus.ts';
import type { CostReport as Report, CostRow as Row } from '../src/insight/cost/report.ts';
import { usageEvent } from './helpers/events.ts';

const nov = Date.UTC(2026, 10, 1);
const dec = Date.UTC(2026, 11, 1);
const novMs = dec - nov;
let clock = nov - dayMs;

// Prices chosen so that figures read as bytes: 1 per byte-month stored, 1 per byte sent (0.5 to the office).
const cost = {
  currency: 'EUR',
  storagePerGbMonth: 1e9,
  egress: { perGb: 1e9, networks: [{ name: 'office', cidrs: ['10.0.0.0/8', 'fd00::/8'], perGb: 0.5e9 }] },
  requests: { push: 0.01, pull: 0.001 },
  // the jobs' own rounds run once at start (nothing to do) and not again during the test
  sampleSeconds: 86_400,
  budgetCheckSeconds: 86_400,
  focus: {
    provider: 'Example Corp',
    invoiceIssuer: 'Platform team',
    billingAccountId: 'acct-1',
    billingAccountName: 'Registry',
    serviceName: 'Custody',
    region: 'eu-west',
  },
};

let server: AccountsServer;
const silentLog = { warn() {}, info() {}, error() {}, debug() {} } as never;

/** The sizes of what was pushed, to work the fair figures out by hand. */
const layers = { shared: 's'.repeat(1001), a: 'a'.repeat(300), b: 'b'.repeat(200) };
const manifests: Record<string, number> = {};
let configSize = 0;

async function push(repo: string, ls: string[]): Promise<void> {
  const m = await imageManifest(server.url, repo, ls);
  expect((await putManifest(server.url, repo, 'v1', m.body)).status).toBe(201);
  manifests[repo] = Buffer.byteLength(m.body);
  configSize = (JSON.parse(m.body) as { config: { size: number } }).config.size;
}

/**
 * docs/lifecycle.md: a blob linked from k namespaces counts floor(size/k) to each, and the size
 * mod k bytes left over go one each to the first namespaces in byte order of their names.
 */
function fairShare(size: number, linkedBy: string[], ns: string): number {
  const sorted = [...new Set(linkedBy)].sort();
  const i = sorted.indexOf(ns);
  if (i < 0) return 0;
  return Math.floor(size / sorted.length) + (i < size % sorted.length ? 1 : 0);
}

/** Each namespace's fair bytes at the two ticks, worked out from the pushed sizes. */
const used: Record<'first' | 'second', Record<string, number>> = { first: {}, second: {} };
/** team's two repositories at the second tick, split in proportion to the bytes each links in full. */
const teamRepos: Record<string, number> = {};

beforeAll(async () => {
  server = await startWithAccounts({ insight: { events: { enabled: false }, cost } }, { now: () => clock }, { listen: false });
  await createUser(server.accounts, 'owner', 'owner-password', { team: 'admin' });
  await createUser(server.accounts, 'stranger', 'stranger-password', { other: 'reader' });
  for (const [ns, labels] of [
    ['team', { team: 'payments', env: 'prod' }],
    ['other', { team: 'search', env: 'prod' }],
    ['lab', { team: 'payments', env: 'dev' }],
  ] as const) {
    const r = await request(server.url, `/api/v1/namespaces/${ns}`, {
      method: 'PUT',
      body: JSON.stringify({ labels }),
      headers: { 'content-type': 'application/json' },
    });
    expect(r.status).toBe(200);
  }
  // before the month: team and other share a layer (and all images the config)
  await push('team/app', [layers.shared, layers.a]);
  await push('team/lib', [layers.a]);
  await push('other/x', [layers.shared]);
  clock = nov;
  expect(await sampleStorage(server.meta, nov)).toBe(true);
  // ten days in, lab pushes: the config is now shared three ways
  await push('lab/tool', [layers.b]);
  const second = nov + 10 * dayMs;
  clock = second;
  expect(await sampleStorage(server.meta, second)).toBe(true);

  const fair = (ns: string, namespacesOfConfig: string[]) =>
    fairShare(configSize, namespacesOfConfig, ns) +
    fairShare(layers.shared.length, ['team', 'other'], ns) +
    (ns === 'team' ? layers.a.length : 0) +
    (ns === 'lab' ? layers.b.length : 0);
  const manifestsOf = (ns: string) => Object.entries(manifests).reduce((n, [repo, size]) => n + (repo.startsWith(`${ns}/`) ? size : 0), 0);
  for (const ns of ['team', 'other']) used.first[ns] = fair(ns, ['team', 'other']) + manifestsOf(ns);
  for (const ns of ['team', 'other', 'lab']) used.second[ns] = fair(ns, ['team', 'other', 'lab']) + manifestsOf(ns);
  // team/app links config + shared + a in full, team/lib config + a: team's fair blob bytes go in that proportion, leftovers to the first by name
  const teamFair = fair('team', ['team', 'other', 'lab']);
  const full = { 'team/app': configSize + layers.shared.length + layers.a.length, 'team/lib': configSize + layers.a.length };
  const total = full['team/app'] + full['team/lib'];
  const app = Math.floor((teamFair * full['team/app']) / total);
  const lib = Math.floor((teamFair * full['team/lib']) / total);
  const left = teamFair - app - lib;
  teamRepos['team/app'] = app + (left > 0 ? 1 : 0) + manifests['team/app']!;
  teamRepos['team/lib'] = lib + (left > 1 ? 1 : 0) + manifests['team/lib']!;

  await server.meta.insight.recordEvents([
    usageEvent(nov - hourMs, { bytes: 10_000 }), // October: not in the month
    usageEvent(nov + 4 * dayMs, {}),
    usageEvent(nov + 4 * dayMs + 1, {}),
    usageEvent(nov + 20 * dayMs, { source: 'fd00::7' }), // office, IPv6
    usageEvent(nov + 5 * dayMs, { bytes: 500, source: '203.0.113.9' }),
    usageEvent(nov + 5 * dayMs + 1, { bytes: 500, source: '203.0.113.9' }),
    usageEvent(nov + 6 * dayMs, { namespace: 'other', repository: 'other/x', bytes: 200, source: '::ffff:10.0.0.5' }), // office, IPv4-mapped
    usageEvent(nov + 10 * dayMs, { type: 'push', namespace: 'lab', repository: 'lab/tool', bytes: 200, source: '10.0.0.9' }),
    usageEvent(nov + 10 * dayMs + 1, { type: 'push', namespace: 'lab', repository: 'lab/tool', bytes: 50, source: '10.0.0.9' }),
  ]);
  clock = dec + 2 * hourMs;
  await rollUpNetworkEgress(server.meta, networkClassifier(cost.egress.networks), clock);
});
afterAll(() => server?.stop());

const get = (path: string, auth?: { username: string; password: string }) =>
  request(server.url, path, auth ? { headers: { authorization: basic(auth.username, auth.password) } } : {});
const errorOf = (r: Reply) => r.json<{ error: { code: string; message: string } }>().error;

const month = `since=${new Date(nov).toISOString()}&until=${new Date(dec).toISOString()}`;
const report = async (q: string) => {
  const r = await get(`/api/v1/cost?${month}&${q}`);
  expect(r.status, r.body.toString()).toBe(200);
  return r.json<Report>();
};
const byKey = (rows: Row[]) => new Map(rows.map((r) => [r.key, r]));

/** Byte-months stored over November: the first figures for 10 of 30 days, the second for 20. */
const storedByteMonths = (ns: string) => ((used.first[ns] ?? 0) * 10 * dayMs + (used.second[ns] ?? 0) * 20 * dayMs) / novMs;

describe('a seeded month of cost', () => {
  it('the namespaces’ figures at each tick are the quota figures', async () => {
    const usage = (await get('/api/v1/usage')).json<{ namespaces: { namespace: string; usedBytes: number }[] }>();
    expect(Object.fromEntries(usage.namespaces.map((n) => [n.namespace, n.usedBytes]))).toEqual(used.second);
  });

  it('prices each namespace’s storage, egress by network and requests', async () => {
    const r = await report('by=namespace');
    expect(r).toMatchObject({ currency: 'EUR', since: '2026-11-01T00:00:00Z', until: '2026-12-01T00:00:00Z', by: 'namespace' });
    const rows = byKey(r.rows);
    expect([...rows.keys()].sort()).toEqual(['lab', 'other', 'team']);
    const team = rows.get('team')!;
    expect(team.storage.cost).toBeCloseTo(storedByteMonths('team'), 6);
    // 3 pulls of 1000 bytes to the office (0.5 a byte), 2 of 500 from elsewhere (1 a byte); the October pull is not counted
    expect(team.egress.networks).toEqual([
      { network: 'office', gb: 3000 / 1e9, cost: 1500 },
      { network: 'default', gb: 1000 / 1e9, cost: 1000 },
    ]);
    expect(team.egress).toMatchObject({ gb: 4000 / 1e9, cost: 2500 });
    expect(team.requests).toEqual({ push: 0, pull: 5, cost: expect.closeTo(0.005, 9) as number });
    expect(team.cost).toBeCloseTo(storedByteMonths('team') + 2500 + 0.005, 6);

    const other = rows.get('other')!;
    expect(other.storage.cost).toBeCloseTo(storedByteMonths('other'), 6);
    expect(other.egress.networks).toEqual([{ network: 'office', gb: 200 / 1e9, cost: 100 }]);
    expect(other.cost).toBeCloseTo(storedByteMonths('other') + 100 + 0.001, 6);

    // lab stored nothing for its first ten days; pushes cost their request price, not egress
    const lab = rows.get('lab')!;
    expect(lab.storage.cost).toBeCloseTo(((used.second.lab ?? 0) * 20) / 30, 6);
    expect(lab.egress).toEqual({ gb: 0, cost: 0, networks: [] });
    expect(lab.requests).toEqual({ push: 2, pull: 0, cost: 0.02 });
    expect(r.total.cost).toBeCloseTo(team.cost + other.cost + lab.cost, 6);
  });

  it('splits a shared layer as quotas do: the namespaces’ storage adds up to the blobs stored once', async () => {
    const rows = (await report('by=namespace')).rows;
    // at the second tick: the config once, the shared layer once, a, b, and every manifest
    const physical = configSize + layers.shared.length + layers.a.length + layers.b.length + Object.values(manifests).reduce((a, b) => a + b, 0);
    const first = physical - layers.b.length - manifests['lab/tool']!;
    const stored = rows.reduce((n, r) => n + r.storage.cost, 0);
    expect(stored).toBeCloseTo((first * 10 + physical * 20) / 30, 6);
    // and other pays half the shared layer (1001 bytes: 501 to other, the first by name), not all of it
    expect(used.first.other).toBe(fairShare(configSize, ['team', 'other'], 'other') + 501 + manifests['other/x']!);
  });

  it('groups by team (the namespaces’ team label) and by any label', async () => {
    const teams = byKey((await report('by=team')).rows);
    const ns = byKey((await report('by=namespace')).rows);
    expect([...teams.keys()].sort()).toEqual(['payments', 'search']);
    expect(teams.get('payments')!.cost).toBeCloseTo(ns.get('team')!.cost + ns.get('lab')!.cost, 6);
    expect(teams.get('payments')!.requests).toEqual({ push: 2, pull: 5, cost: expect.closeTo(0.025, 9) as number });
    expect(teams.get('search')!.cost).toBeCloseTo(ns.get('other')!.cost, 6);
    const env = byKey((await report('by=label:env')).rows);
    expect(env.get('prod')!.cost).toBeCloseTo(ns.get('team')!.cost + ns.get('other')!.cost, 6);
    expect(env.get('dev')!.cost).toBeCloseTo(ns.get('lab')!.cost, 6);
    // a label no namespace has: one group, ""
    expect((await report('by=label:cost-center')).rows.map((r) => r.key)).toEqual(['']);
  });

  it('splits a namespace between its repositories in proportion to what each links, adding up to the namespace', async () => {
    const repos = byKey((await report('by=repository&namespace=team')).rows);
    expect([...repos.keys()].sort()).toEqual(['team/app', 'team/lib']);
    // the second tick's figures: team/app and team/lib by hand, over the last 20 days
    const lastTwenty = (bytes: number) => (bytes * 20) / 30;
    const appFirst = repos.get('team/app')!.storage.cost - lastTwenty(teamRepos['team/app']!);
    const libFirst = repos.get('team/lib')!.storage.cost - lastTwenty(teamRepos['team/lib']!);
    expect(appFirst + libFirst).toBeCloseTo(((used.first.team ?? 0) * 10) / 30, 6);
    expect(appFirst).toBeGreaterThan(libFirst);
    expect(repos.get('team/app')!.storage.cost + repos.get('team/lib')!.storage.cost).toBeCloseTo(storedByteMonths('team'), 6);
  });

  it('counts a window’s part of the month: the first ten days hold only the first tick', async () => {
    const r = await get(`/api/v1/cost?since=${new Date(nov).toISOString()}&until=${new Date(nov + 10 * dayMs).toISOString()}&namespace=other`);
    const [row] = r.json<Report>().rows;
    expect(row!.storage.cost).toBeCloseTo(((used.first.other ?? 0) * 10) / 30, 6);
  });

  it('exports FOCUS CSV that validates against the FOCUS column definitions, and adds up to the report', async () => {
    const r = await get(`/api/v1/cost/export?format=focus&${month}`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/csv/);
    const rows = validateFocus(r.body.toString());
    const total = (await report('by=namespace')).total.cost;
    expect(rows.reduce((n, row) => n + Number(row.BilledCost), 0)).toBeCloseTo(total, 5);
    // a row per repository, charge and day: team/app's storage on each of the 30 days
    const appStorage = rows.filter((row) => row.ResourceId === 'team/app' && row.SkuId === 'storage');
    expect(appStorage).toHaveLength(30);
    expect(appStorage[0]).toMatchObject({
      ChargePeriodStart: '2026-11-01T00:00:00Z',
      ChargePeriodEnd: '2026-11-02T00:00:00Z',
      BillingPeriodStart: '2026-11-01T00:00:00Z',
      BillingPeriodEnd: '2026-12-01T00:00:00Z',
      SubAccountId: 'team',
      ServiceCategory: 'Storage',
      BillingCurrency: 'EUR',
      RegionId: 'eu-west',
      ProviderName: 'Example Corp',
      ChargeClass: null,
    });
    expect(JSON.parse(appStorage[0]!.Tags!)).toEqual({ team: 'payments', env: 'prod' });
    const office = rows.filter((row) => row.SkuPriceId === 'egress:office');
    expect(office.map((row) => [row.ResourceId, row.ChargePeriodStart, row.ConsumedQuantity, row.BilledCost])).toEqual([
      ['team/app', '2026-11-05T00:00:00Z', '0.000002', '1000'],
      ['other/x', '2026-11-07T00:00:00Z', '0.0000002', '100'],
      ['team/app', '2026-11-21T00:00:00Z', '0.000001', '500'],
    ]);
    // a namespace admin exports its namespace only
    const own = await get(`/api/v1/cost/export?${month}&namespace=team`, { username: 'owner', password: 'owner-password' });
    expect(new Set(validateFocus(own.body.toString()).map((row) => row.SubAccountId))).toEqual(new Set(['team']));
  });

  it('keeps another namespace’s figures from a reader of one namespace, and a namespace admin to its own', async () => {
    const stranger = { username: 'stranger', password: 'stranger-password' };
    expect((await get(`/api/v1/cost?${month}&namespace=team`, stranger)).status).toBe(403);
    expect((await get(`/api/v1/cost?${month}&namespace=other`, stranger)).status).toBe(403);
    expect((await get(`/api/v1/cost?${month}`, stranger)).status).toBe(403);
    const owner = { username: 'owner', password: 'owner-password' };
    const own = await get(`/api/v1/cost?${month}&namespace=team&by=team`, owner);
    expect(own.json<Report>().rows.map((r) => r.key)).toEqual(['payments']);
    expect(own.json<Report>().total.cost).toBeCloseTo(byKey((await report('by=namespace')).rows).get('team')!.cost, 6);
    expect((await get(`/api/v1/cost?${month}&namespace=other`, owner)).status).toBe(403);
  });
});

describe('budgets', () => {
  const put = (path: string, body: unknown, auth?: { username: string; password: string }) =>
    request(server.url, path, {
      method: 'PUT',
      body: typeof body === 'string' ? body : JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...(auth ? { authorization: basic(auth.username, auth.password) } : {}) },
    });

  it('announces a soft and a hard crossing once a month each, as a budget event, and audits every change', async () => {
    clock = nov + 25 * dayMs;
    const teamCost = (await report('by=namespace')).rows.find((r) => r.key === 'team')!.cost;
    expect((await put('/api/v1/budgets/namespace/team', { monthly: 1e9, soft: 1 })).status).toBe(200);
    expect((await put('/api/v1/budgets/team/search', { monthly: 1 })).status).toBe(200);
    const first = await checkBudgets(server.meta, modelOf(), silentLog, clock);
    expect(first.map((c) => `${c.budget.scope}:${c.budget.name}:${c.threshold}`).sort()).toEqual(['namespace:team:soft', 'team:search:hard']);
    // storage counted up to now, the 25th, as the report does
    expect(first.find((c) => c.budget.name === 'team')!.cost).toBeCloseTo(teamCost, 6);
    expect(await checkBudgets(server.meta, modelOf(), silentLog, clock + hourMs)).toEqual([]);
    const events = await server.meta.insight.eventsAfter(undefined, 100, { types: ['budget'] });
    expect(events.map((e) => [e.namespace, e.detail.scope, e.detail.name, e.detail.threshold, e.detail.month])).toEqual(
      expect.arrayContaining([
        ['team', 'namespace', 'team', 'soft', '2026-11'],
        ['', 'team', 'search', 'hard', '2026-11'],
      ]),
    );
    // a new month announces again
    expect((await checkBudgets(server.meta, modelOf(), silentLog, dec + dayMs)).length).toBeGreaterThan(0);
    const audit = (await get('/api/v1/audit?action=budget.set')).json<{ events: { target: string }[] }>();
    expect(audit.events.map((e) => e.target)).toEqual(expect.arrayContaining(['namespace:team', 'team:search']));
    const list = (await get('/api/v1/budgets')).json<{ currency: string; budgets: { scope: string; name: string; monthly: number; soft: number | null }[] }>();
    expect(list.currency).toBe('EUR');
    expect(list.budgets.map((b) => [b.scope, b.name, b.monthly, b.soft])).toEqual([
      ['namespace', 'team', 1e9, 1],
      ['team', 'search', 1, null],
    ]);
    expect((await request(server.url, '/api/v1/budgets/team/search', { method: 'DELETE' })).status).toBe(204);
    expect((await request(server.url, '/api/v1/budgets/team/search', { method: 'DELETE' })).status).toBe(404);
    expect((await get('/api/v1/budgets/team/search')).status).toBe(404);
  });

  it('is a policy input: a push is denied once the month’s cost passes the hard budget', async () => {
    clock = nov + 26 * dayMs;
    const policy = `name: budget\nactions: [push]\ndeny: 'ns.budget > 0.0 && ns.costThisMonth > ns.budget'\nmessage: '{{ ns.name }} spent {{ ns.costThisMonth }} of its budget {{ ns.budget }}'`;
    const saved = await put('/api/v1/policies/budget', { source: policy });
    expect(saved.status, saved.body.toString()).toBeLessThan(300);
    const owner = { username: 'owner', password: 'owner-password' };
    expect((await put('/api/v1/budgets/namespace/team', { monthly: 1e9 }, owner)).status).toBe(200);
    const m1 = await imageManifest(server.url, 'team/app', ['fits the budget']);
    expect((await putManifest(server.url, 'team/app', 'within', m1.body)).status).toBe(201);
    expect((await put('/api/v1/budgets/namespace/team', { monthly: 10 }, owner)).status).toBe(200);
    const m2 = await imageManifest(server.url, 'team/app', ['over the budget']);
    const refused = await putManifest(server.url, 'team/app', 'over', m2.body);
    expect(refused.status).toBe(403);
    expect(refused.body.toString()).toMatch(/team spent [\d.]+ of its budget 10/);
    // a namespace with no budget is not held back
    const m3 = await imageManifest(server.url, 'other/x', ['no budget here']);
    expect((await putManifest(server.url, 'other/x', 'free', m3.body)).status).toBe(201);
    expect((await request(server.url, '/api/v1/policies/budget', { method: 'DELETE' })).status).toBeLessThan(300);
  });

  it('refuses bad budgets and bad queries with a 400 that says why', async () => {
    const cases: [string, Reply][] = [
      ['monthly', await put('/api/v1/budgets/namespace/team', { monthly: -5 })],
      ['monthly', await put('/api/v1/budgets/namespace/team', { monthly: 0 })],
      ['soft is at most monthly', await put('/api/v1/budgets/namespace/team', { monthly: 5, soft: 6 })],
      ['monthly', await put('/api/v1/budgets/namespace/team', { monthly: 'lots' })],
      ['Unrecognized key', await put('/api/v1/budgets/namespace/team', { monthly: 5, hard: 1 })],
      ['team name', await put('/api/v1/budgets/team/..%2F', { monthly: 5 })],
      ['until must be after since', await get(`/api/v1/cost?since=${new Date(dec).toISOString()}&until=${new Date(nov).toISOString()}`)],
      ['namespace, team, repository or label', await get(`/api/v1/cost?by=colour`)],
      ['namespace, team, repository or label', await get(`/api/v1/cost?by=label:`)],
      ['ISO 8601', await get('/api/v1/cost?since=yesterday')],
      ['between 1970', await get('/api/v1/cost?since=99999999999999999999')],
      ['at most 400 days', await get('/api/v1/cost?since=2000-01-01T00:00:00Z&until=2026-01-01T00:00:00Z')],
      ['focus', await get('/api/v1/cost/export?format=xlsx')],
      ['Unrecognized key', await get('/api/v1/cost?colour=red')],
    ];
    for (const [message, r] of cases) {
      expect(r.status, `${message}: ${r.body.toString()}`).toBe(400);
      expect(errorOf(r).message).toContain(message);
    }
    const huge = await put('/api/v1/budgets/namespace/team', JSON.stringify({ monthly: 5, pad: 'x'.repeat(200_000) }));
    expect(huge.status).toBeGreaterThanOrEqual(400);
    expect(huge.status).toBeLessThan(500);
  });
});

function modelOf() {
  return { currency: cost.currency, storagePerGbMonth: cost.storagePerGbMonth, egress: cost.egress, requests: cost.requests };
}
