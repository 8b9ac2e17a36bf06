/**
 * GET /metrics against a real server (listening, so the byte counts come from a socket): who may
 * read it in each access mode, what the request, store, upload, GC and process metrics say after
 * real requests, and that the labels stay bounded (route templates, never names or digests; the
 * top N namespaces and `other`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRobot, createUser, createUserToken, bearerToken, startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { basic, imageManifest, pushBlob, putManifest, request, testAdmin } from './helpers/http.ts';
import { startInProcess, type InProcessServer } from './helpers/server.ts';

/** The value of one sample line, `name{labels} value`, or undefined when there is none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([a-z_:0-9]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string | undefined> = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** Every value a label takes in a family. */
function labelValues(text: string, name: string, label: string): Set<string> {
  const values = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const m = new RegExp(`${label}="((?:[^"\\\\]|\\\\.)*)"`).exec(line);
    if (m) values.add(m[1] as string);
  }
  return values;
}

const scrape = async (base: string, headers: Record<string, string> = {}) => {
  const r = await request(base, '/metrics', Object.keys(headers).length > 0 ? { headers } : {});
  expect(r.status, r.body.toString()).toBe(200);
  return r.body.toString();
};

describe('who may read /metrics (insight.metrics.access: admin, the default)', () => {
  let s: AccountsServer;
  const people: Record<string, Record<string, string>> = {};

  beforeAll(async () => {
    s = await startWithAccounts({}, {}, { listen: false });
    expect((await request(s.url, '/api/v1/namespaces/team', { method: 'PUT', body: '{}', headers: { 'content-type': 'application/json' } })).status).toBe(200);
    const alice = await createUser(s.accounts, 'alice', 'alice-password', { team: 'admin' });
    const root = await s.accounts.getUser({ name: testAdmin.username });
    const adminMetrics = await createUserToken(s.accounts, root?.id ?? '', { scopes: ['metrics'] });
    const adminPull = await createUserToken(s.accounts, root?.id ?? '', { scopes: ['pull'] });
    const aliceMetrics = await createUserToken(s.accounts, alice, { scopes: ['metrics'] });
    const scraper = await createRobot(s.accounts, 'team', 'scraper', 'reader', ['metrics']);
    const puller = await createRobot(s.accounts, 'team', 'puller', 'reader', ['pull']);
    people.admin = {};
    people['admin (Bearer token with the metrics scope)'] = { authorization: `Bearer ${adminMetrics.token}` };
    people['admin (Basic token with the metrics scope)'] = { authorization: basic(testAdmin.username, adminMetrics.token) };
    people['admin (token with pull only)'] = { authorization: basic(testAdmin.username, adminPull.token) };
    people['namespace admin'] = { authorization: basic('alice', 'alice-password') };
    people['namespace admin (token with the metrics scope)'] = { authorization: `Bearer ${aliceMetrics.token}` };
    people['robot with the metrics scope (Bearer)'] = { authorization: `Bearer ${scraper.token}` };
    people['robot with the metrics scope (Basic)'] = { authorization: basic(scraper.name, scraper.token) };
    people['robot without it'] = { authorization: `Bearer ${puller.token}` };
    people['admin JWT from /token'] = { authorization: `Bearer ${await bearerToken(s.url, ['registry:catalog:*'], testAdmin)}` };
    people['a token that does not exist'] = { authorization: `Bearer cst_0123456789abcdef_${'x'.repeat(43)}` };
  });
  afterAll(async () => s.stop());

  const get = (who: string) =>
    request(s.url, '/metrics', who === 'anonymous' ? { auth: false } : Object.keys(people[who] ?? {}).length > 0 ? { headers: people[who] ?? {} } : {});

  it.each([
    ['anonymous', 401],
    ['admin', 200],
    ['admin (Bearer token with the metrics scope)', 200],
    ['admin (Basic token with the metrics scope)', 200],
    ['admin (token with pull only)', 403],
    ['namespace admin', 403],
    ['namespace admin (token with the metrics scope)', 403],
    ['robot with the metrics scope (Bearer)', 200],
    ['robot with the metrics scope (Basic)', 200],
    ['robot without it', 403],
    ['admin JWT from /token', 401],
    ['a token that does not exist', 401],
  ])('%s: %i', async (who, status) => {
    const r = await get(who);
    expect(r.status, r.body.toString()).toBe(status);
    if (status === 200) {
      expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(r.body.toString()).toContain('# TYPE custody_http_requests_total counter');
    } else expect(r.json<{ error: { code: string } }>().error.code).toBe(status === 401 ? 'UNAUTHORIZED' : 'DENIED');
  });

  it('only an administrator may create a token with the metrics scope', async () => {
    const json = (body: unknown) => ({ method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const mine = await request(s.url, '/api/v1/tokens', {
      ...json({ name: 'scrape', scopes: ['metrics'] }),
      headers: { ...json({}).headers, authorization: basic('alice', 'alice-password') },
    });
    expect(mine.status, mine.body.toString()).toBe(403);
    expect(mine.body.toString()).toContain('metrics scope');
    // alice manages team, so she may make its robots and their tokens, but not one that reads the registry's metrics
    await request(s.url, '/api/v1/namespaces/team/robots', { ...json({ name: 'prom' }) });
    const aliceRobot = await request(s.url, '/api/v1/namespaces/team/robots/prom/tokens', {
      ...json({ name: 'scrape', scopes: ['metrics'] }),
      headers: { ...json({}).headers, authorization: basic('alice', 'alice-password') },
    });
    expect(aliceRobot.status, aliceRobot.body.toString()).toBe(403);
    const adminRobot = await request(s.url, '/api/v1/namespaces/team/robots/prom/tokens', json({ name: 'scrape', scopes: ['metrics'] }));
    expect(adminRobot.status, adminRobot.body.toString()).toBe(201);
    const { token } = adminRobot.json<{ token: string }>();
    expect((await request(s.url, '/metrics', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    // the metrics scope alone reads no repository
    expect((await request(s.url, '/v2/team/app/tags/list', { headers: { authorization: `Bearer ${token}` } })).status).toBe(403);
  });
});

describe('/metrics with insight.metrics.access: open, and with metrics off', () => {
  it('open: anyone may scrape; credentials, if sent, must hold', async () => {
    const s = await startInProcess({ listen: false, config: { insight: { metrics: { access: 'open' } } } });
    try {
      expect((await request(s.url, '/metrics', { auth: false })).status).toBe(200);
      expect((await request(s.url, '/metrics')).status).toBe(200);
      expect((await request(s.url, '/metrics', { headers: { authorization: basic('admin', 'wrong-password') } })).status).toBe(401);
    } finally {
      await s.stop();
    }
  });

  it('enabled: false: no /metrics, and the stores are not wrapped', async () => {
    const s = await startInProcess({ listen: false, config: { insight: { metrics: { enabled: false } } } });
    try {
      expect((await request(s.url, '/metrics')).status).toBe(404);
      expect((await request(s.url, '/')).json<{ endpoints: Record<string, string> }>().endpoints.metrics).toBeUndefined();
    } finally {
      await s.stop();
    }
  });
});

describe('what the metrics say', () => {
  let s: InProcessServer;
  let text: string;
  const layer = Buffer.alloc(50_000, 7);
  let manifestDigest = '';
  let layerDigest = '';

  beforeAll(async () => {
    s = await startInProcess({ config: { insight: { metrics: { topNamespaces: 5 } } } });
    layerDigest = await pushBlob(s.url, 'team/app', layer);
    const m = await imageManifest(s.url, 'team/app', []);
    const body = JSON.parse(m.body) as { layers: unknown[] };
    body.layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length });
    const manifest = JSON.stringify(body);
    expect((await putManifest(s.url, 'team/app', 'v1', manifest)).status).toBe(201);
    manifestDigest = (await request(s.url, '/v2/team/app/manifests/v1', { method: 'HEAD' })).headers['docker-content-digest'] as string;
    for (let i = 0; i < 3; i++) expect((await request(s.url, '/v2/team/app/manifests/v1')).status).toBe(200);
    expect((await request(s.url, `/v2/team/app/blobs/${layerDigest}`)).body.length).toBe(layer.length);
    expect((await request(s.url, '/v2/team/nothing/manifests/v1')).status).toBe(404);
    expect((await request(s.url, '/v2/Bad_Name/manifests/v1')).status).toBe(400);
    expect((await request(s.url, '/api/v1/namespaces/team', { method: 'PUT', body: '{}', headers: { 'content-type': 'application/json' } })).status).toBe(200);
    expect((await request(s.url, '/no/such/route')).status).toBe(404);
    text = await scrape(s.url);
  });
  afterAll(async () => s.stop());

  it('counts requests by route template, method and status', () => {
    const manifest = { route: '/v2/:name/manifests/:reference', method: 'GET' };
    expect(sample(text, 'custody_http_requests_total', { ...manifest, status: '200' })).toBe(3);
    expect(sample(text, 'custody_http_request_duration_seconds_count', { ...manifest, status: '200' })).toBe(3);
    expect(sample(text, 'custody_http_request_duration_seconds_bucket', { ...manifest, status: '200', le: '+Inf' })).toBe(3);
    expect(sample(text, 'custody_http_requests_total', { ...manifest, status: '404' })).toBe(1);
    expect(sample(text, 'custody_http_requests_total', { ...manifest, status: '400' })).toBe(1);
    expect(sample(text, 'custody_http_requests_total', { route: '/v2/:name/blobs/:digest', method: 'GET', status: '200' })).toBe(1);
    expect(sample(text, 'custody_http_requests_total', { route: '/v2/:name/blobs/uploads/', method: 'POST', status: '201' })).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'custody_http_requests_total', { route: '/api/v1/namespaces/:ns', method: 'PUT', status: '200' })).toBe(1);
    expect(sample(text, 'custody_http_requests_total', { route: 'unmatched', method: 'GET', status: '404' })).toBe(1);
    // the scrape itself is counted once it has answered: in the next one
    expect(sample(text, 'custody_http_requests_in_flight')).toBe(1);
  });

  it('never labels a repository, a digest or a raw path', () => {
    for (const routeLabel of labelValues(text, 'custody_http_requests_total', 'route'))
      expect(routeLabel).toMatch(/^(\/v2\/|\/api\/v1\/|\/metrics$|unmatched$)/);
    expect(text).not.toContain('team/app');
    expect(text).not.toContain('Bad_Name');
    expect(text).not.toContain(manifestDigest.slice(7, 20));
    expect(text).not.toContain(layerDigest.slice(7, 20));
    expect(text).not.toContain('/no/such/route');
  });

  it('counts the bytes each way, per route and per namespace', () => {
    const blobGet = { route: '/v2/:name/blobs/:digest', method: 'GET', status: '200' };
    const sent = sample(text, 'custody_http_sent_bytes_total', blobGet) ?? 0;
    expect(sent).toBeGreaterThan(layer.length);
    expect(sent).toBeLessThan(layer.length + 2000);
    const received = sample(text, 'custody_http_received_bytes_total', { route: '/v2/:name/blobs/uploads/', method: 'POST', status: '201' }) ?? 0;
    expect(received).toBeGreaterThan(layer.length);
    expect(sample(text, 'custody_namespace_pulled_bytes_total', { namespace: 'team' })).toBeGreaterThan(layer.length);
    expect(sample(text, 'custody_namespace_pushed_bytes_total', { namespace: 'team' })).toBeGreaterThan(layer.length);
    // three manifest GETs and one blob GET answered; the 404 is no pull
    expect(sample(text, 'custody_namespace_pulls_total', { namespace: 'team' })).toBe(4);
  });

  it('times metadata and storage calls by operation', () => {
    expect(sample(text, 'custody_meta_operation_duration_seconds_count', { operation: 'getTaggedManifest' })).toBeGreaterThanOrEqual(3);
    expect(sample(text, 'custody_meta_operation_duration_seconds_count', { operation: 'accounts.getUser' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'custody_storage_operation_duration_seconds_count', { operation: 'openCopy' })).toBe(1);
    expect(sample(text, 'custody_storage_operation_duration_seconds_count', { operation: 'write' })).toBeGreaterThanOrEqual(2);
    const operations = labelValues(text, 'custody_meta_operation_duration_seconds_count', 'operation');
    for (const op of operations) expect(op).toMatch(/^[a-z]+(\.[a-zA-Z]+)?$|^[a-zA-Z]+$/);
  });

  it('shows the uploads in progress, from the metadata store', async () => {
    const before = sample(await scrape(s.url), 'custody_uploads_in_progress');
    const started = await request(s.url, '/v2/team/app/blobs/uploads/', { method: 'POST' });
    expect(started.status).toBe(202);
    expect(sample(await scrape(s.url), 'custody_uploads_in_progress')).toBe((before ?? 0) + 1);
    expect((await request(s.url, started.headers.location as string, { method: 'DELETE' })).status).toBe(204);
    expect(sample(await scrape(s.url), 'custody_uploads_in_progress')).toBe(before);
  });

  it('counts garbage collections, and shows the queues and the process', async () => {
    const r = await request(s.url, '/api/v1/gc', { method: 'POST', body: JSON.stringify({ dryRun: true }), headers: { 'content-type': 'application/json' } });
    expect(r.status, r.body.toString()).toBe(202);
    const deadline = Date.now() + 10_000;
    let after = '';
    while (Date.now() < deadline) {
      after = await scrape(s.url);
      if (sample(after, 'custody_gc_runs_total', { outcome: 'done', dry_run: 'true' }) === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(sample(after, 'custody_gc_runs_total', { outcome: 'done', dry_run: 'true' })).toBe(1);
    expect(sample(after, 'custody_gc_run_duration_seconds_count', { outcome: 'done' })).toBe(1);
    expect(sample(after, 'custody_gc_running')).toBe(0);
    expect(sample(after, 'custody_trust_queued')).toBe(0);
    expect(sample(after, 'custody_policy_decision_log_queued')).toBe(0);
    expect(sample(after, 'custody_policy_decisions_dropped_total')).toBe(0);
    expect(sample(after, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sample(after, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    // the scrapes before are counted now
    expect(sample(after, 'custody_http_requests_total', { route: '/metrics', method: 'GET', status: '200' })).toBeGreaterThanOrEqual(1);
  });

  it('counts the scheduled jobs this process ran, one series per job', async () => {
    const names = [
      'upload-expiry',
      'audit-prune',
      'policy-prune',
      'events-prune',
      'webhook-prune',
      'tuf-refresh',
      'gc',
      'retention',
      'cost-sample',
      'cost-check',
    ];
    expect([...labelValues(text, 'custody_scheduled_job_runs_total', 'job')].sort()).toEqual([...names].sort());
    // alone on its database, this process ran every job in its first interval (a second, if an
    // interval ended since: retention's is a minute), but GC, which waits for the next interval
    for (const job of names) {
      const runs = sample(text, 'custody_scheduled_job_runs_total', { job });
      if (job === 'gc') expect(runs).toBeLessThanOrEqual(1);
      else expect(runs, job).toBeGreaterThanOrEqual(1);
    }
  });

  it('gives at most N+1 namespace label values for 100 namespaces (topNamespaces: 5)', async () => {
    const blob = 'the same small blob';
    for (let i = 0; i < 100; i++) {
      const digest = await pushBlob(s.url, `ns${i}/app`, blob);
      // ns95..ns99 pull six times, the others once: they are the top 5 by pulls
      for (let k = 0; k < (i >= 95 ? 6 : 1); k++) expect((await request(s.url, `/v2/ns${i}/app/blobs/${digest}`)).status).toBe(200);
    }
    const after = await scrape(s.url);
    for (const family of ['custody_namespace_pulled_bytes_total', 'custody_namespace_pushed_bytes_total', 'custody_namespace_pulls_total']) {
      const namespaces = labelValues(after, family, 'namespace');
      expect(namespaces.size, family).toBeLessThanOrEqual(6);
      expect(namespaces.has('other'), family).toBe(true);
    }
    const pulled = labelValues(after, 'custody_namespace_pulls_total', 'namespace');
    expect([...pulled].sort()).toEqual(['ns95', 'ns96', 'ns97', 'ns98', 'ns99', 'other']);
    expect(sample(after, 'custody_namespace_pulls_total', { namespace: 'ns99' })).toBe(6);
  });
});
