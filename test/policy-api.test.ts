/**
 * Policies through /api/v1 and their decisions at /v2: saved with versions, refused when bad,
 * enforced at push, pull and delete with the policy's message, audited, logged and queryable
 * (and aged out of the log), simulated and tested before they decide. Answered through
 * inject(): nothing here is about the socket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, startWithAccounts, type AccountsServer } from './helpers/accounts.ts';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { inputSchema, type PolicyInput } from '../src/policy/input-schema.ts';
import { basic, descriptorOf, imageManifest, pushBlob, putManifest, request, sha256, types, type Reply } from './helpers/http.ts';

let server: AccountsServer;
let clock = Date.parse('2026-12-02T12:00:00Z');

beforeAll(async () => {
  server = await startWithAccounts({ policy: { reloadSeconds: 3600 } }, { now: () => clock }, { listen: false });
  await createUser(server.accounts, 'nsadmin', 'nsadmin-password', { team: 'admin' });
  await createUser(server.accounts, 'writer', 'writer-password', { team: 'writer', other: 'admin' });
});
afterAll(() => server.stop());

const validInput = new Ajv2020({ strict: true, allErrors: true }).compile(inputSchema);
const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
const savePolicy = (name: string, source: string, as?: string) =>
  request(server.url, `/api/v1/policies/${name}`, {
    method: 'PUT',
    ...json({ source }),
    ...(as ? { headers: { 'content-type': 'application/json', authorization: as } } : {}),
  });
const deletePolicy = (name: string) => request(server.url, `/api/v1/policies/${name}`, { method: 'DELETE' });
const errorOf = (r: Reply) => r.json<{ error: { code: string; message: string } }>().error;
const ociErrorOf = (r: Reply) => r.json<{ errors: { code: string; message: string }[] }>().errors[0];

const costCenter = `
name: require-cost-center
description: every push names who pays for it
scope: { namespaces: ["*"], repositories: ["**"] }
actions: [push]
mode: enforce
deny: '!("cost-center" in artifact.labels) && !("cost-center" in artifact.annotations)'
message: 'pushes to {{ request.repository }} need a cost-center label or annotation'
`;

/** Polls the decision log until `filter` finds `count` entries (the log is written in batches, each second). */
async function decisions(query: string, count: number): Promise<Record<string, unknown>[]> {
  for (let i = 0; ; i++) {
    const r = await request(server.url, `/api/v1/policy-decisions?${query}`);
    expect(r.status).toBe(200);
    const found = r.json<{ decisions: Record<string, unknown>[] }>().decisions;
    if (found.length >= count || i >= 50) return found;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('saving policies', () => {
  it('saves a YAML policy as version 1, then 2, keeps both, and audits each change', async () => {
    const first = await savePolicy('require-cost-center', costCenter.replace('mode: enforce', 'mode: dry-run'));
    expect(first.status).toBe(201);
    expect(first.json()).toMatchObject({ name: 'require-cost-center', version: 1, namespace: null, document: { mode: 'dry-run', engine: 'cel' } });
    const second = await savePolicy('require-cost-center', costCenter);
    expect(second.status).toBe(200);
    expect(second.json()).toMatchObject({ version: 2, document: { mode: 'enforce' } });
    const shown = (await request(server.url, '/api/v1/policies/require-cost-center')).json<{ version: number; source: string }>();
    expect(shown.version).toBe(2);
    expect(shown.source).toBe(costCenter);
    const old = (await request(server.url, '/api/v1/policies/require-cost-center?version=1')).json<{ document: { mode: string } }>();
    expect(old.document.mode).toBe('dry-run');
    const versions = (await request(server.url, '/api/v1/policies/require-cost-center/versions')).json<{ versions: { version: number }[] }>().versions;
    expect(versions.map((v) => v.version)).toEqual([2, 1]);
    expect((await request(server.url, '/api/v1/policies')).json<{ policies: { name: string }[] }>().policies.map((p) => p.name)).toContain(
      'require-cost-center',
    );
    expect((await deletePolicy('require-cost-center')).status).toBe(204);
    // every change is audited: the save that created it, the one that changed it, the deletion
    type Audited = { events: { action: string; target: string; detail?: Record<string, unknown> }[] };
    for (const [action, version] of [
      ['policy.create', 1],
      ['policy.update', 2],
      ['policy.delete', 3],
    ] as const) {
      const events = (await request(server.url, `/api/v1/audit?action=${action}`)).json<Audited>().events.filter((e) => e.target === 'require-cost-center');
      expect(events, action).toEqual([expect.objectContaining({ action, detail: expect.objectContaining({ version }) })]);
    }
  });

  it('refuses a bad expression with the CEL error and its position, and keeps nothing', async () => {
    const syntax = await savePolicy('broken', 'name: broken\nactions: [push]\ndeny: \'artifact.labels["x" \'');
    expect(syntax.status).toBe(400);
    expect(errorOf(syntax).message).toMatch(/^deny: .*\(line 1, column \d+\)$/);
    const field = await savePolicy('broken', 'name: broken\nactions: [push]\ndeny: \'artifact.lables["x"] == "y"\'');
    expect(errorOf(field).message).toContain('lables');
    expect((await request(server.url, '/api/v1/policies/broken')).status).toBe(404);
  });

  it('refuses documents that are not policies, with a 4xx and no 5xx', async () => {
    const cases: [string, string][] = [
      ['garbage', '{{{{ not yaml'],
      ['not an object', '"just a string"'],
      ['no deny', 'name: x\nactions: [push]'],
      ['bad mode', 'name: x\nactions: [push]\nmode: sometimes\ndeny: "true"'],
      ['bad action', 'name: x\nactions: [copy]\ndeny: "true"'],
      ['unknown field', 'name: x\nactions: [push]\ndeny: "true"\nextra: 1'],
      ['alias bomb', 'a: &a [x, x, x]\nb: &b [*a, *a, *a]\nname: x\nactions: [push]\ndeny: "true"'],
      ['template typo', 'name: x\nactions: [push]\ndeny: "true"\nmessage: "{{ request.repo }}"'],
      ['cost explosion', 'name: x\nactions: [pull]\ndeny: "trust.sbom.components.exists(a, trust.sbom.components.exists(b, a.name == b.name))"'],
      ['wrong name', 'name: y\nactions: [push]\ndeny: "true"'],
      // a namespace no repository can be in: the policy would never decide anything
      ['empty namespace', 'name: x\nnamespace: ""\nactions: [push]\ndeny: "true"'],
      ['namespace with a path', 'name: x\nnamespace: team/app\nactions: [push]\ndeny: "true"'],
      ['namespace in capitals', 'name: x\nnamespace: Team\nactions: [push]\ndeny: "true"'],
    ];
    for (const [what, source] of cases) {
      const r = await savePolicy('x', source);
      expect(r.status, what).toBe(400);
      expect(errorOf(r).code, what).toBe('INVALID');
    }
    const huge = await savePolicy('x', `name: x\nactions: [push]\ndeny: "${'true || '.repeat(9000)}true"`);
    expect([400, 413]).toContain(huge.status);
    expect((await request(server.url, '/api/v1/policies/x')).status).toBe(404);
  });

  it('lets namespace admins manage their namespace policies only; registry admins manage global ones', async () => {
    const nsadmin = basic('nsadmin', 'nsadmin-password');
    const own = `name: team-only\nnamespace: team\nactions: [push]\ndeny: "false"`;
    expect((await savePolicy('team-only', own, nsadmin)).status).toBe(201);
    expect((await savePolicy('global-by-nsadmin', 'name: global-by-nsadmin\nactions: [push]\ndeny: "false"', nsadmin)).status).toBe(403);
    expect((await savePolicy('other-ns', 'name: other-ns\nnamespace: other\nactions: [push]\ndeny: "false"', nsadmin)).status).toBe(403);
    // a namespace policy applies only in its namespace
    expect((await savePolicy('escape', 'name: escape\nnamespace: team\nscope: { namespaces: [prod] }\nactions: [push]\ndeny: "false"', nsadmin)).status).toBe(
      400,
    );
    const writer = basic('writer', 'writer-password');
    expect((await request(server.url, '/api/v1/policies/team-only', { headers: { authorization: writer } })).status).toBe(403);
    expect((await request(server.url, '/api/v1/policies/team-only', { method: 'DELETE', headers: { authorization: writer } })).status).toBe(403);
    expect((await request(server.url, '/api/v1/policies/team-only', { method: 'DELETE', headers: { authorization: nsadmin } })).status).toBe(204);
  });
});

describe('deciding at /v2', () => {
  it('denies a push without a cost-center with the policy message, and allows it once the annotation is there', async () => {
    expect((await savePolicy('require-cost-center', costCenter)).status).toBe(201);
    try {
      const image = await imageManifest(server.url, 'team/app');
      const refused = await putManifest(server.url, 'team/app', 'v1', image.body);
      expect(refused.status).toBe(403);
      expect(ociErrorOf(refused)).toEqual({ code: 'DENIED', message: 'pushes to team/app need a cost-center label or annotation', detail: null });
      expect((await request(server.url, '/v2/team/app/manifests/v1')).status).toBe(404);
      const labelled = await imageManifest(server.url, 'team/app', ['layer'], { annotations: { 'cost-center': 'cc-42' } });
      expect((await putManifest(server.url, 'team/app', 'v1', labelled.body)).status).toBe(201);
      const denied = await decisions('policy=require-cost-center&result=deny', 1);
      // version 4: saved twice and deleted in the first test (a deletion is a version), then saved again
      expect(denied[0]).toMatchObject({
        policy: 'require-cost-center',
        version: 4,
        mode: 'enforce',
        action: 'push',
        repository: 'team/app',
        reference: 'v1',
        enforced: true,
        actor: 'admin',
      });
      expect(denied[0]?.message).toBe('pushes to team/app need a cost-center label or annotation');
      expect(typeof denied[0]?.latencyMicros).toBe('number');
    } finally {
      await deletePolicy('require-cost-center');
    }
  });

  it('lets a request through in audit mode and logs the denial', async () => {
    await savePolicy('audit-cost-center', costCenter.replace('name: require-cost-center', 'name: audit-cost-center').replace('mode: enforce', 'mode: audit'));
    try {
      const image = await imageManifest(server.url, 'team/audited');
      expect((await putManifest(server.url, 'team/audited', 'v1', image.body)).status).toBe(201);
      const logged = await decisions('policy=audit-cost-center', 1);
      expect(logged[0]).toMatchObject({ result: 'deny', mode: 'audit', enforced: false, repository: 'team/audited' });
    } finally {
      await deletePolicy('audit-cost-center');
    }
  });

  it('decides a pull at the manifest, by tag and by digest, GET and HEAD', async () => {
    const image = await imageManifest(server.url, 'prod/app');
    expect((await putManifest(server.url, 'prod/app', 'v1', image.body)).status).toBe(201);
    await savePolicy(
      'prod-signed',
      `name: prod-signed
scope: { namespaces: [prod] }
actions: [pull]
deny: '!trust.signatures.exists(s, s.verified && s.signer == "release@example.com")'
message: '{{ artifact.repository }}@{{ artifact.digest }} is not signed by release@example.com'`,
    );
    try {
      for (const ref of ['v1', image.digest])
        for (const method of ['GET', 'HEAD']) {
          const r = await request(server.url, `/v2/prod/app/manifests/${ref}`, { method });
          expect(r.status, `${method} ${ref}`).toBe(403);
          if (method === 'GET') expect(ociErrorOf(r)?.message).toBe(`prod/app@${image.digest} is not signed by release@example.com`);
        }
      // other namespaces are not in its scope
      const other = await imageManifest(server.url, 'team/unsigned');
      expect((await putManifest(server.url, 'team/unsigned', 'v1', other.body)).status).toBe(201);
      expect((await request(server.url, '/v2/team/unsigned/manifests/v1')).status).toBe(200);
    } finally {
      await deletePolicy('prod-signed');
    }
    expect((await request(server.url, '/v2/prod/app/manifests/v1')).status).toBe(200);
  });

  it('denies deletes of v* tags outside the maintenance window', async () => {
    const image = await imageManifest(server.url, 'team/released');
    expect((await putManifest(server.url, 'team/released', 'v2', image.body)).status).toBe(201);
    expect((await putManifest(server.url, 'team/released', 'dev', image.body)).status).toBe(201);
    await savePolicy(
      'maintenance-window',
      `name: maintenance-window
actions: [delete]
deny: 'artifact.tag.startsWith("v") && !(timestamp(request.time).getHours() in [2, 3])'
message: 'release tags are deleted only between 02:00 and 04:00 UTC'`,
    );
    try {
      clock = Date.parse('2026-12-02T12:00:00Z');
      const refused = await request(server.url, '/v2/team/released/manifests/v2', { method: 'DELETE' });
      expect(refused.status).toBe(403);
      expect(ociErrorOf(refused)?.message).toBe('release tags are deleted only between 02:00 and 04:00 UTC');
      expect((await request(server.url, '/v2/team/released/manifests/dev', { method: 'DELETE' })).status).toBe(202);
      clock = Date.parse('2026-12-02T03:15:00Z');
      expect((await request(server.url, '/v2/team/released/manifests/v2', { method: 'DELETE' })).status).toBe(202);
    } finally {
      clock = Date.parse('2026-12-02T12:00:00Z');
      await deletePolicy('maintenance-window');
    }
  });

  it('denies a push that takes the namespace over its quota', async () => {
    expect((await request(server.url, '/api/v1/namespaces/quota', { method: 'PUT', ...json({ labels: { team: 'q' } }) })).status).toBe(200);
    await savePolicy(
      'quota',
      `name: quota\nactions: [push]\ndeny: 'ns.quotaBytes > 0 && ns.storedBytes > ns.quotaBytes'\nmessage: '{{ ns.name }} is over its quota of {{ ns.quotaBytes }} bytes'`,
    );
    try {
      const small = await imageManifest(server.url, 'quota/app', ['x']);
      expect((await putManifest(server.url, 'quota/app', 'small', small.body)).status).toBe(201);
      const big = await imageManifest(server.url, 'quota/app', ['y'.repeat(1000)]);
      // The hard quota itself refuses blobs that do not fit (docs/lifecycle.md): set once the
      // layers are in, the policy is what answers the manifest, asked before the quota is.
      expect((await request(server.url, '/api/v1/namespaces/quota', { method: 'PUT', ...json({ quotaBytes: 600 }) })).status).toBe(200);
      const refused = await putManifest(server.url, 'quota/app', 'big', big.body);
      expect(refused.status).toBe(403);
      expect(ociErrorOf(refused)?.message).toBe('quota is over its quota of 600 bytes');
    } finally {
      await deletePolicy('quota');
    }
  });
});

describe('reading the decision log', () => {
  it("shows a namespace's admins the decisions in their namespace, and no other, however the filters are combined", async () => {
    const nsadmin = { headers: { authorization: basic('nsadmin', 'nsadmin-password') } };
    // the pulls of prod/app denied above, by a registry administrator's reading
    expect((await decisions('repository=prod/app', 1)).length).toBeGreaterThan(0);
    const own = await request(server.url, '/api/v1/policy-decisions?namespace=team', nsadmin);
    expect(own.status).toBe(200);
    const repositories = own.json<{ decisions: { repository: string }[] }>().decisions.map((d) => d.repository);
    expect(repositories).toContain('team/app');
    expect(repositories.every((r) => r.startsWith('team/'))).toBe(true);
    expect((await request(server.url, '/api/v1/policy-decisions', nsadmin)).status).toBe(403);
    expect((await request(server.url, '/api/v1/policy-decisions?repository=prod/app', nsadmin)).status).toBe(403);
    // naming their own namespace beside another's repository reads nothing of it
    expect((await request(server.url, '/api/v1/policy-decisions?namespace=team&repository=prod/app', nsadmin)).status).toBe(403);
    // the filters are all applied: a repository outside the namespace named is in neither
    const both = await request(server.url, '/api/v1/policy-decisions?namespace=team&repository=prod/app');
    expect(both.status).toBe(200);
    expect(both.json<{ decisions: unknown[] }>().decisions).toEqual([]);
  });

  it('refuses a page cursor it did not write, rather than start again from the newest', async () => {
    for (const before of ['garbage', '12.', '.id', 'x.y'])
      expect((await request(server.url, `/api/v1/policy-decisions?before=${before}`)).status, before).toBe(400);
  });
});

describe('the decision log under its retention', () => {
  it('ages out decisions and recorded inputs older than policy.decisionRetentionDays, by the pruning job', async () => {
    let now = Date.parse('2026-12-02T12:00:00Z');
    const aged = await startWithAccounts(
      { policy: { reloadSeconds: 3600, decisionRetentionDays: 1 }, jobs: { pruneSeconds: 1 } },
      { now: () => now },
      { listen: false },
    );
    try {
      const put = await request(aged.url, '/api/v1/policies/no-pulls', {
        method: 'PUT',
        ...json({ source: "name: no-pulls\nscope: { namespaces: [aged] }\nactions: [pull]\ndeny: 'true'" }),
      });
      expect(put.status).toBe(201);
      const image = await imageManifest(aged.url, 'aged/app');
      expect((await putManifest(aged.url, 'aged/app', 'v1', image.body)).status).toBe(201);
      /** the times of the logged decisions, once they are `expected` (or after 10 s) */
      const logged = async (expected: string[]) => {
        for (let i = 0; ; i++) {
          const found = (await request(aged.url, '/api/v1/policy-decisions?policy=no-pulls'))
            .json<{ decisions: { at: string }[] }>()
            .decisions.map((d) => d.at);
          if (found.join() === expected.join() || i >= 100) return found;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      };
      /** the times of the recorded decision inputs, once they are `expected` (or after 10 s) */
      const recorded = async (expected: string[]) => {
        for (let i = 0; ; i++) {
          const r = await request(aged.url, '/api/v1/policies/simulate', {
            method: 'POST',
            ...json({ policy: { source: "name: s\nactions: [pull]\ndeny: 'true'" }, days: 366 }),
          });
          const found = r.json<{ recorded: { denied: { at: string }[] } }>().recorded.denied.map((d) => d.at);
          if (found.join() === expected.join() || i >= 100) return found;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      };
      expect((await request(aged.url, '/v2/aged/app/manifests/v1')).status).toBe(403);
      expect(await logged(['2026-12-02T12:00:00.000Z'])).toEqual(['2026-12-02T12:00:00.000Z']);
      expect(await recorded(['2026-12-02T12:00:00.000Z'])).toEqual(['2026-12-02T12:00:00.000Z']);

      // two days on, a pull is decided again; the job (each second here) removes what is a day old
      now += 2 * 86_400_000;
      expect((await request(aged.url, '/v2/aged/app/manifests/v1')).status).toBe(403);
      expect(await logged(['2026-12-04T12:00:00.000Z'])).toEqual(['2026-12-04T12:00:00.000Z']);
      expect(await recorded(['2026-12-04T12:00:00.000Z'])).toEqual(['2026-12-04T12:00:00.000Z']);
    } finally {
      await aged.stop();
    }
  });
});

describe('decision latency', () => {
  it('is kept per engine for registry administrators', async () => {
    const stats = await request(server.url, '/api/v1/policy-stats');
    expect(stats.status).toBe(200);
    const cel = stats.json<{ latency: Record<string, { evaluations: number; p50Micros: number; p99Micros: number }> }>().latency.cel;
    expect(cel?.evaluations).toBeGreaterThan(5); // the decisions above
    expect(cel?.p50Micros).toBeGreaterThan(0);
    expect(cel?.p99Micros).toBeGreaterThanOrEqual(cel?.p50Micros ?? 0);
    expect((await request(server.url, '/api/v1/policy-stats', { headers: { authorization: basic('nsadmin', 'nsadmin-password') } })).status).toBe(403);
  });
});

describe('trying a policy before it decides', () => {
  it('simulates against stored artifacts and recorded inputs, and says what it would deny', async () => {
    const image = await imageManifest(server.url, 'sim/app');
    expect((await putManifest(server.url, 'sim/app', 'v1', image.body)).status).toBe(201);
    expect((await request(server.url, '/v2/sim/app/manifests/v1')).status).toBe(200); // a pull, recorded
    const policy = {
      source: `name: no-sim-pulls\nscope: { namespaces: [sim] }\nactions: [pull]\ndeny: 'artifact.repository == "sim/app"'\nmessage: 'no pulls of {{ artifact.repository }}'`,
    };
    let result:
      | {
          artifacts: { evaluated: number; denied: { repository: string; message: string }[] };
          recorded: { evaluated: number; denied: { identity?: string }[] };
        }
      | undefined;
    for (let i = 0; i < 50; i++) {
      const r = await request(server.url, '/api/v1/policies/simulate', { method: 'POST', ...json({ policy, days: 1 }) });
      expect(r.status).toBe(200);
      result = r.json();
      if ((result?.recorded.evaluated ?? 0) > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(result?.artifacts).toEqual({ evaluated: 1, denied: [expect.objectContaining({ repository: 'sim/app', message: 'no pulls of sim/app' })] });
    expect(result?.recorded.evaluated).toBe(1);
    expect(result?.recorded.denied[0]?.identity).toBe('admin');
    // it decided nothing
    expect((await request(server.url, '/api/v1/policies/no-sim-pulls')).status).toBe(404);
    expect((await request(server.url, '/v2/sim/app/manifests/v1')).status).toBe(200);
  });

  it('simulates every tag of a repository, past the first page of a thousand', async () => {
    const image = await imageManifest(server.url, 'many/app');
    const tags = Array.from({ length: 1001 }, (_, i) => `t${String(i).padStart(4, '0')}`);
    for (const tag of tags) expect((await putManifest(server.url, 'many/app', tag, image.body)).status).toBe(201);
    const policy = { source: `name: last-tag\nscope: { namespaces: [many] }\nactions: [pull]\ndeny: 'artifact.tag == "t1000"'` };
    const r = await request(server.url, '/api/v1/policies/simulate', { method: 'POST', ...json({ policy, days: 0 }) });
    expect(r.status).toBe(200);
    const artifacts = r.json<{ artifacts: { evaluated: number; denied: { reference: string }[] } }>().artifacts;
    expect(artifacts.evaluated).toBe(1001);
    expect(artifacts.denied.map((d) => d.reference)).toEqual(['t1000']);
  });

  it("simulates every stored manifest, by digest when no tag points at it (an index's child, a push by digest)", async () => {
    const repo = 'loose/app';
    const quarantine = { annotations: { quarantine: 'yes' } };
    const tagged = await imageManifest(server.url, repo, ['tagged']);
    expect((await putManifest(server.url, repo, 'v1', tagged.body)).status).toBe(201);
    // a quarantined image pushed by digest alone, and another only an index (tagged) names
    const loose = await imageManifest(server.url, repo, ['loose'], quarantine);
    expect((await putManifest(server.url, repo, loose.digest, loose.body)).status).toBe(201);
    const child = await imageManifest(server.url, repo, ['child'], quarantine);
    expect((await putManifest(server.url, repo, child.digest, child.body)).status).toBe(201);
    const index = JSON.stringify({ schemaVersion: 2, mediaType: types.index, manifests: [descriptorOf(child.body, types.manifest)] });
    expect((await putManifest(server.url, repo, 'multi', index, types.index)).status).toBe(201);
    const policy = {
      source: `name: quarantined\nscope: { namespaces: [loose] }\nactions: [pull, delete]\ndeny: '"quarantine" in artifact.annotations'\nmessage: '{{ artifact.digest }} is quarantined (tag "{{ artifact.tag }}")'`,
    };
    type Artifacts = { evaluated: number; denied: { action: string; reference: string; digest: string; message: string }[] };
    const simulate = async (limit?: number) => {
      const r = await request(server.url, '/api/v1/policies/simulate', { method: 'POST', ...json({ policy, days: 0, ...(limit ? { limit } : {}) }) });
      expect(r.status, r.body.toString()).toBe(200);
      return r.json<{ artifacts: Artifacts; errors: unknown[] }>();
    };
    const untagged = [loose.digest, child.digest].sort();
    const deniedAs = (action: string, digest: string) => ({
      action,
      repository: repo,
      reference: digest,
      digest,
      message: `${digest} is quarantined (tag "")`,
    });
    const all = await simulate();
    expect(all.errors).toEqual([]);
    // the two tags (multi, v1), then the two manifests no tag points at, each pulled and deleted
    expect(all.artifacts.evaluated).toBe(8);
    expect(all.artifacts.denied).toEqual(untagged.flatMap((digest) => [deniedAs('pull', digest), deniedAs('delete', digest)]));
    // the limit counts across both: the tags' four evaluations, then the first untagged manifest's pull
    const limited = await simulate(5);
    expect(limited.artifacts.evaluated).toBe(5);
    expect(limited.artifacts.denied).toEqual([deniedAs('pull', untagged[0] as string)]);
  });

  it('gives a bare artifact every map and list, empty, in an input the published schema accepts', async () => {
    // an artifact with nothing to say: the empty config, no layers, no annotations, no referrers
    await pushBlob(server.url, 'bare/thing', '{}');
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: types.manifest,
      artifactType: 'application/x.bare',
      config: descriptorOf('{}', types.empty),
      layers: [],
    });
    expect((await putManifest(server.url, 'bare/thing', 'v1', body)).status).toBe(201);
    const policy = { source: `name: t\nactions: [pull]\ndeny: 'false'` };
    const r = await request(server.url, '/api/v1/policies/test', {
      method: 'POST',
      ...json({ policy, artifact: { repository: 'bare/thing', reference: sha256(body) } }),
    });
    expect(r.status).toBe(200);
    const input = r.json<{ input: PolicyInput }>().input;
    expect(validInput(input), JSON.stringify(validInput.errors)).toBe(true);
    expect(input.artifact).toMatchObject({ tag: '', labels: {}, annotations: {}, platforms: [], layers: [], subject: '', created: '' });
    expect(input.artifact.wasm).toEqual({ component: false, imports: [], exports: [], complete: false });
    expect(input.trust).toEqual({ signatures: [], attestations: [], sbom: { present: false, format: '', componentCount: 0, licenses: [], components: [] } });
    expect(input.ns.labels).toEqual({});
    expect(input.request.identity.teams).toEqual([]);
  });

  it('tests a policy against an input document or a stored artifact', async () => {
    const policy = { source: `name: t\nactions: [pull]\ndeny: '"cost-center" in artifact.annotations'` };
    const image = await imageManifest(server.url, 'test/app', ['l'], { annotations: { 'cost-center': 'cc-1' } });
    expect((await putManifest(server.url, 'test/app', 'v1', image.body)).status).toBe(201);
    const r = await request(server.url, '/api/v1/policies/test', {
      method: 'POST',
      ...json({ policy, artifact: { repository: 'test/app', reference: 'v1' } }),
    });
    expect(r.status).toBe(200);
    // a name or reference that cannot be stored is a 400, not a missing manifest
    for (const artifact of [
      { repository: 'Test//App', reference: 'v1' },
      { repository: 'test/app', reference: '-v1' },
      { repository: 'test/app', reference: 'sha256:short' },
    ]) {
      const bad = await request(server.url, '/api/v1/policies/test', { method: 'POST', ...json({ policy, artifact }) });
      expect(bad.status, JSON.stringify(artifact)).toBe(400);
    }
    expect(r.json()).toMatchObject({
      deny: true,
      // the default template, rendered as the request would be told it
      message: 'denied by policy t',
      input: { artifact: { repository: 'test/app', tag: 'v1', annotations: { 'cost-center': 'cc-1' } } },
    });
  });
});
