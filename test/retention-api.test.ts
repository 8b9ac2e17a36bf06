/**
 * Retention over HTTP: images with tags and cosign-style referrers pushed through /v2, rules set
 * through /api/v1 by a namespace's admin, a dry run and then the real run, and what remains served
 * (what went is 404, the referrers of kept artifacts stay); a policy with `actions: [retention]`
 * vetoing a deletion; pulls counted from /v2 GETs and HEADs; who may do what; the audit log.
 * Answered through inject(): nothing here is about the socket.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MetaStore } from '../src/meta/metastore.ts';
import { openMetaStore } from '../src/meta/open.ts';
import { createUser } from './helpers/accounts.ts';
import { basic, descriptorOf, imageManifest, pushBlob, putManifest, request, sha256, types, type Reply } from './helpers/http.ts';
import { startInProcess, tempDir, type InProcessServer } from './helpers/server.ts';

let server: InProcessServer;
let meta: MetaStore;
let clock = Date.now();
const nsadmin = basic('nsadmin', 'nsadmin-password');
const stranger = basic('stranger', 'stranger-password');

beforeAll(async () => {
  const dataDir = await tempDir();
  meta = await openMetaStore(path.join(dataDir, 'custody.db'));
  server = await startInProcess({
    dataDir,
    listen: false,
    parts: { meta, now: () => clock },
    config: { policy: { reloadSeconds: 3600 }, lifecycle: { retention: { intervalSeconds: 0 } } },
  });
  await createUser(meta.accounts, 'nsadmin', 'nsadmin-password', { team: 'admin', vet: 'admin', pl: 'admin' });
  await createUser(meta.accounts, 'stranger', 'stranger-password', { other: 'admin', team: 'writer' });
});
afterAll(() => server.stop());

const json = (body: unknown, authorization?: string) => ({
  body: JSON.stringify(body),
  headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
});
const errorOf = (r: Reply) => r.json<{ error: { code: string; message: string } }>().error;
const setRules = (target: string, source: string, as = nsadmin) =>
  request(server.url, `/api/v1/retention/${target}`, { method: 'PUT', ...json({ source }, as) });

interface RunView {
  id: string;
  status: string;
  dryRun: boolean;
  counts: { tagsDeleted: number; manifestsDeleted: number; vetoed: number; bytes: number; errors: number };
  result?: {
    deletions: { repository: string; kind: string; tag?: string; digest: string; rule: string; reason: string; draggedBy?: string; dragged?: string[] }[];
    vetoed: { tag?: string; digest: string; message: string }[];
    freed: { bytes: number; blobs: number; estimate: boolean };
    errors: unknown[];
  };
}

/** Starts a run and waits for it to finish; the run with its result. */
async function run(body: Record<string, unknown>, as = nsadmin): Promise<RunView> {
  clock += 1000; // runs start in order
  const started = await request(server.url, '/api/v1/retention/runs', { method: 'POST', ...json(body, as) });
  expect(started.status, started.body.toString()).toBe(202);
  const { id } = started.json<RunView>();
  for (let i = 0; ; i++) {
    const r = await request(server.url, `/api/v1/retention/runs/${id}`, { headers: { authorization: as } });
    expect(r.status).toBe(200);
    const view = r.json<RunView>();
    if (view.status !== 'running' || i > 200) return view;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const status = async (p: string) => (await request(server.url, p)).status;

/** A cosign-style signature: an OCI manifest whose subject is the image, with one payload layer. */
async function pushSignature(repo: string, subject: { body: string }, payload: string): Promise<{ digest: string; layer: number }> {
  const empty = await pushBlob(server.url, repo, '{}');
  const layer = await pushBlob(server.url, repo, payload);
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: types.manifest,
    artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
    config: { mediaType: types.empty, digest: empty, size: 2 },
    layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: layer, size: payload.length }],
    subject: descriptorOf(subject.body, types.manifest),
  });
  expect((await putManifest(server.url, repo, sha256(body), body)).status).toBe(201);
  return { digest: sha256(body), layer: payload.length };
}

describe('retention of team/app', () => {
  const image: Record<string, { body: string; digest: string }> = {};
  const sig: Record<string, { digest: string; layer: number }> = {};
  let legacy = { digest: '', layer: 0 };
  let index = { body: '', digest: '' };
  const children: { body: string; digest: string }[] = [];

  beforeAll(async () => {
    for (const v of ['v1', 'v2', 'v3']) {
      image[v] = await imageManifest(server.url, 'team/app', [`layer of ${v}`]);
      expect((await putManifest(server.url, 'team/app', v, image[v].body)).status).toBe(201);
    }
    expect((await putManifest(server.url, 'team/app', 'latest', image.v3!.body)).status).toBe(201);
    sig.v1 = await pushSignature('team/app', image.v1!, 'signature of v1');
    sig.v3 = await pushSignature('team/app', image.v3!, 'signature of v3');
    // cosign's older way: a signature under the tag sha256-<hex>.sig
    const payload = 'legacy signature of v2';
    const layer = await pushBlob(server.url, 'team/app', payload);
    const empty = await pushBlob(server.url, 'team/app', '{}');
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: types.manifest,
      config: { mediaType: types.empty, digest: empty, size: 2 },
      layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: layer, size: payload.length }],
    });
    expect((await putManifest(server.url, 'team/app', `sha256-${image.v2!.digest.slice(7)}.sig`, body)).status).toBe(201);
    legacy = { digest: sha256(body), layer: payload.length };
    // an index with two platform images, pushed last (it is the newest tag)
    for (const arch of ['amd64', 'arm64']) {
      const child = await imageManifest(server.url, 'team/app', [`layer for ${arch}`]);
      expect((await putManifest(server.url, 'team/app', child.digest, child.body)).status).toBe(201);
      children.push(child);
    }
    const indexBody = JSON.stringify({
      schemaVersion: 2,
      mediaType: types.index,
      manifests: children.map((c, i) => descriptorOf(c.body, types.manifest, { platform: { os: 'linux', architecture: ['amd64', 'arm64'][i] } })),
    });
    expect((await putManifest(server.url, 'team/app', 'multi', indexBody, types.index)).status).toBe(201);
    index = { body: indexBody, digest: sha256(indexBody) };
  });

  it('refuses rules that are wrong with a 400 that says where, and callers who do not manage the namespace with a 403', async () => {
    const bad = await setRules('namespaces/team', 'keep: { any: [ { newest: 2 }, { tag: { regex: "(a" } } ] }');
    expect(bad.status).toBe(400);
    expect(errorOf(bad).message).toMatch(/^keep\.any\[1\]\.tag: not a valid RE2 expression/);
    const unknown = await setRules('namespaces/team', 'keep: { newest: 2 }\nprotekt: [latest]');
    expect(errorOf(unknown)).toEqual({ code: 'INVALID', message: 'unknown field protekt' });
    expect((await request(server.url, '/api/v1/retention/namespaces/team', { method: 'PUT', ...json({ keep: 'all' }) })).status).toBe(400);
    expect((await setRules('namespaces/Team', 'keep: { newest: 2 }')).status).toBe(400);
    expect((await setRules('repositories/team//app', 'keep: { newest: 2 }')).status).toBe(400);
    // a writer in team, an admin elsewhere
    const refused = await setRules('namespaces/team', 'keep: { newest: 2 }', stranger);
    expect(refused.status).toBe(403);
    expect((await setRules('repositories/team/app', 'keep: { newest: 2 }', stranger)).status).toBe(403);
    expect((await request(server.url, '/api/v1/retention/namespaces/team', { headers: { authorization: stranger } })).status).toBe(403);
    expect((await request(server.url, '/api/v1/retention/namespaces/team', { auth: false })).status).toBe(401);
    expect((await request(server.url, '/api/v1/retention/namespaces/team')).status).toBe(404);
  });

  it('refuses a run that names both a namespace and a repository, and a run over everything from a namespace admin', async () => {
    const both = await request(server.url, '/api/v1/retention/runs', { method: 'POST', ...json({ namespace: 'team', repository: 'team/app' }, nsadmin) });
    expect(both.status).toBe(400);
    expect(errorOf(both).message).toContain('give a namespace or a repository, not both');
    expect((await request(server.url, '/api/v1/retention/runs', { method: 'POST', ...json({ dryRun: true }, nsadmin) })).status).toBe(403);
    expect((await request(server.url, '/api/v1/retention/runs', { method: 'POST', ...json({ namespace: 'team' }, stranger) })).status).toBe(403);
    expect((await request(server.url, '/api/v1/retention/runs/not-a-uuid')).status).toBe(400);
  });

  it('sets rules, dry-runs them, then runs them: what went is 404, what stays is served with its referrers', async () => {
    const rules = '# two newest tags, and latest whatever happens\nkeep: { newest: 2 }\nprotect: [latest]\n';
    const set = await setRules('namespaces/team', rules);
    expect(set.status).toBe(201);
    expect(set.json()).toMatchObject({ kind: 'namespace', name: 'team', source: rules, updatedBy: 'nsadmin', document: { protect: [{ glob: 'latest' }] } });
    expect((await setRules('namespaces/team', rules)).status).toBe(200);
    expect((await request(server.url, '/api/v1/retention/namespaces/team', { headers: { authorization: nsadmin } })).json()).toMatchObject({ source: rules });

    const dry = await run({ namespace: 'team', dryRun: true });
    expect(dry).toMatchObject({ status: 'done', dryRun: true });
    const gone = dry.result!.deletions;
    const tags = gone.filter((d) => d.kind === 'tag').map((d) => d.tag);
    // newest 2: multi and latest (pushed last); v3 is only a tag: its manifest stays as latest
    expect(tags).toEqual(['sha256-' + image.v2!.digest.slice(7) + '.sig', 'v1', 'v2', 'v3'].sort());
    const manifests = new Map(gone.filter((d) => d.kind === 'manifest').map((d) => [d.digest, d]));
    expect([...manifests.keys()].sort()).toEqual([image.v1!.digest, image.v2!.digest, sig.v1!.digest, legacy.digest].sort());
    expect(manifests.get(image.v1!.digest)).toMatchObject({ rule: 'tags', dragged: [sig.v1!.digest] });
    expect(manifests.get(sig.v1!.digest)).toMatchObject({ rule: 'referrer', draggedBy: image.v1!.digest });
    expect(manifests.get(legacy.digest)).toMatchObject({ rule: 'attached', draggedBy: image.v2!.digest });
    expect(gone.find((d) => d.tag === 'v1')?.reason).toBe('not kept by the rules of namespace team: newest 2: the 5th newest');
    // the layers of v1 and v2 and the two signatures' payloads; the config and {} are shared with what stays
    expect(dry.result!.freed).toEqual({
      bytes: 'layer of v1'.length + 'layer of v2'.length + sig.v1!.layer + legacy.layer,
      blobs: 4,
      manifestBytes: expect.any(Number),
      estimate: true,
    });
    // nothing went yet
    expect(await status(`/v2/team/app/manifests/v1`)).toBe(200);

    const real = await run({ namespace: 'team' });
    expect(real.result!.deletions).toEqual(dry.result!.deletions);
    expect(real.counts).toEqual(dry.counts);
    expect(real.counts).toMatchObject({ tagsDeleted: 4, manifestsDeleted: 4, errors: 0 });

    for (const p of ['v1', 'v2', 'v3', image.v1!.digest, image.v2!.digest, sig.v1!.digest, legacy.digest, `sha256-${image.v2!.digest.slice(7)}.sig`])
      expect(await status(`/v2/team/app/manifests/${p}`), p).toBe(404);
    for (const p of ['latest', 'multi', image.v3!.digest, sig.v3!.digest, index.digest, ...children.map((c) => c.digest)])
      expect(await status(`/v2/team/app/manifests/${p}`), p).toBe(200);
    const referrers = (await request(server.url, `/v2/team/app/referrers/${image.v3!.digest}`)).json<{ manifests: { digest: string }[] }>();
    expect(referrers.manifests.map((m) => m.digest)).toEqual([sig.v3!.digest]);
    const tagList = (await request(server.url, '/v2/team/app/tags/list')).json<{ tags: string[] }>();
    expect(tagList.tags).toEqual(['latest', 'multi']);
    // blobs stay until the garbage collector takes them
    expect(await status(`/v2/team/app/blobs/${sha256('layer of v1')}`)).toBe(200);
  });

  it('lists runs for the namespace admin and shows each, audits every change, and deletes rules', async () => {
    const list = await request(server.url, '/api/v1/retention/runs?namespace=team', { headers: { authorization: nsadmin } });
    expect(list.status).toBe(200);
    const runs = list.json<{ runs: (RunView & { scope: unknown; result?: unknown })[] }>().runs;
    expect(runs.map((r) => r.dryRun)).toEqual([false, true]);
    expect(runs[0]).toMatchObject({ status: 'done', scope: { kind: 'namespace', name: 'team' }, counts: { tagsDeleted: 4 } });
    expect(runs[0]!.result).toBeUndefined();
    expect((await request(server.url, '/api/v1/retention/runs', { headers: { authorization: nsadmin } })).status).toBe(403);
    expect((await request(server.url, `/api/v1/retention/runs/${runs[0]!.id}`, { headers: { authorization: stranger } })).status).toBe(403);
    expect((await request(server.url, '/api/v1/retention/runs')).status).toBe(200);
    expect((await request(server.url, '/api/v1/retention/runs/00000000-0000-4000-8000-000000000000')).status).toBe(404);

    const audit = (await request(server.url, '/api/v1/audit?target=team')).json<{
      events: { action: string; actor: string; detail: Record<string, unknown> }[];
    }>().events;
    const actions = audit.map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['retention.rules.create', 'retention.rules.update', 'retention.dry-run', 'retention.run']));
    expect(audit.find((e) => e.action === 'retention.run')).toMatchObject({ actor: 'nsadmin', detail: { tagsDeleted: 4, manifestsDeleted: 4 } });

    expect((await request(server.url, '/api/v1/retention/rules?namespace=team', { headers: { authorization: nsadmin } })).json()).toMatchObject({
      rules: [{ kind: 'namespace', name: 'team' }],
    });
    expect((await request(server.url, '/api/v1/retention/rules', { headers: { authorization: nsadmin } })).status).toBe(403);
    expect((await request(server.url, '/api/v1/retention/namespaces/team', { method: 'DELETE', headers: { authorization: nsadmin } })).status).toBe(204);
    expect((await request(server.url, '/api/v1/retention/namespaces/team', { method: 'DELETE', headers: { authorization: nsadmin } })).status).toBe(404);
    expect((await request(server.url, '/api/v1/audit?action=retention.rules.delete')).json<{ events: unknown[] }>().events).toHaveLength(1);
  });

  it("applies a repository's own rules instead of its namespace's", async () => {
    expect((await setRules('namespaces/team', 'keep: { newest: 1 }')).status).toBe(201);
    expect((await setRules('repositories/team/app', 'keep: { tag: "*" }')).status).toBe(201);
    const dry = await run({ repository: 'team/app', dryRun: true });
    expect(dry.result!.deletions).toEqual([]);
    expect((await request(server.url, '/api/v1/retention/repositories/team/app', { headers: { authorization: nsadmin } })).json()).toMatchObject({
      kind: 'repository',
      name: 'team/app',
    });
    expect((await request(server.url, '/api/v1/retention/repositories/team/app', { method: 'DELETE', headers: { authorization: nsadmin } })).status).toBe(204);
    const now = await run({ repository: 'team/app', dryRun: true });
    expect(now.result!.deletions.filter((d) => d.kind === 'tag').map((d) => d.tag)).toEqual(['latest']);
    expect((await request(server.url, '/api/v1/retention/namespaces/team', { method: 'DELETE', headers: { authorization: nsadmin } })).status).toBe(204);
  });
});

describe('the retention decision point', () => {
  beforeAll(async () => {
    for (const v of ['v1', 'v2', 'v3']) {
      const m = await imageManifest(server.url, 'vet/app', [`vet layer ${v}`]);
      expect((await putManifest(server.url, 'vet/app', v, m.body)).status).toBe(201);
    }
  });

  it('lets a CEL policy with actions [retention] veto a deletion: a denial keeps it, and is in the decision log', async () => {
    const policy = `name: keep-v2
actions: [retention]
scope: { namespaces: [vet] }
deny: 'artifact.tag == "v2" || request.identity.name != "custody-retention"'
message: 'v2 is kept for the audit'
`;
    const saved = await request(server.url, '/api/v1/policies/keep-v2', { method: 'PUT', ...json({ source: policy }) });
    expect(saved.status).toBe(201);
    expect(saved.json()).toMatchObject({ document: { actions: ['retention'] } });
    try {
      expect((await setRules('namespaces/vet', 'keep: { newest: 1 }')).status).toBe(201);
      const dry = await run({ namespace: 'vet', dryRun: true });
      expect(dry.result!.vetoed).toEqual([{ repository: 'vet/app', kind: 'tag', tag: 'v2', digest: expect.any(String), message: 'v2 is kept for the audit' }]);
      const real = await run({ namespace: 'vet' });
      expect(real.result!.deletions).toEqual(dry.result!.deletions);
      expect(real.result!.deletions.filter((d) => d.kind === 'tag').map((d) => d.tag)).toEqual(['v1']);
      expect(real.counts).toMatchObject({ tagsDeleted: 1, manifestsDeleted: 1, vetoed: 1 });
      expect(await status('/v2/vet/app/manifests/v1')).toBe(404);
      expect(await status('/v2/vet/app/manifests/v2')).toBe(200);
      expect(await status('/v2/vet/app/manifests/v3')).toBe(200);
      // pushes and pulls are not retention: the policy does not decide them
      expect(await status('/v2/vet/app/manifests/v2')).toBe(200);
      let logged: { action: string; reference: string; result: string; message: string; actor: string }[] = [];
      for (let i = 0; i < 50 && logged.length < 2; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        logged = (await request(server.url, '/api/v1/policy-decisions?action=retention&namespace=vet')).json<{ decisions: typeof logged }>().decisions;
      }
      // once for the dry run, once for the real run
      expect(logged).toHaveLength(2);
      expect(logged[0]).toMatchObject({
        action: 'retention',
        reference: 'v2',
        result: 'deny',
        message: 'v2 is kept for the audit',
        actor: 'custody-retention',
      });
    } finally {
      await request(server.url, '/api/v1/policies/keep-v2', { method: 'DELETE' });
    }
  });
});

describe('pull tracking', () => {
  it('counts every manifest GET and HEAD, by tag or by digest, and keeps what was pulled within the window', async () => {
    const old = await imageManifest(server.url, 'pl/app', ['pl old']);
    expect((await putManifest(server.url, 'pl/app', 'old', old.body)).status).toBe(201);
    const unused = await imageManifest(server.url, 'pl/app', ['pl unused']);
    expect((await putManifest(server.url, 'pl/app', 'unused', unused.body)).status).toBe(201);
    clock += 10 * 86_400_000; // ten days later
    for (let i = 0; i < 5; i++) expect(await status('/v2/pl/app/manifests/old')).toBe(200);
    expect((await request(server.url, `/v2/pl/app/manifests/${old.digest}`, { method: 'HEAD' })).status).toBe(200);
    expect((await request(server.url, '/v2/pl/app/manifests/old', { method: 'HEAD' })).status).toBe(200);
    const pulledAt = clock;
    // a refused or failed pull is no pull
    expect((await request(server.url, '/v2/pl/app/manifests/old', { auth: false })).status).toBe(401);
    expect(await status('/v2/pl/app/manifests/nothing')).toBe(404);
    expect((await setRules('namespaces/pl', 'keep: { any: [ { pulledWithin: 1d }, { pushedWithin: 1d } ] }')).status).toBe(201);
    // a run writes this replica's counts before it plans
    const dry = await run({ namespace: 'pl', dryRun: true });
    expect(dry.result!.deletions.filter((d) => d.kind === 'tag').map((d) => d.tag)).toEqual(['unused']);
    expect(dry.result!.deletions.find((d) => d.tag === 'unused')?.reason).toContain('never pulled');
    expect(await meta.retention.pullsOf('pl/app')).toEqual([{ repo: 'pl/app', digest: old.digest, lastPulledAt: pulledAt, count: 7 }]);
  });
});
