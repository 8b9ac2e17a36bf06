/**
 * Retention runs on a real store (SQLite and PostgreSQL): the rule table of
 * test/lifecycle/retention-fixture.ts pushed as a repository, each rule set dry-run and then run,
 * with the same answer both times and that answer what the table expects; the bytes freed; one
 * real run at a time; the schedule across two replicas.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { RetentionBusy, RetentionService } from '../src/lifecycle/retention.ts';
import type { Deletion, RunResult } from '../src/lifecycle/retention-run.ts';
import { readRules } from '../src/lifecycle/retention-rules.ts';
import type { MetaStore } from '../src/meta/metastore.ts';
import { openMetaStore } from '../src/meta/open.ts';
import type { Answer, Question } from '../src/policy/service.ts';
import { dropDatabases, freshDatabase, postgresAvailable } from './helpers/postgres.ts';
import { daysAgo, fixtureDigest, fixtureManifests, fixtureTags, now, ruleCases } from './lifecycle/retention-fixture.ts';

const log = pino({ level: 'silent' });
const blob = (n: string) => `sha256:${Buffer.from(`blob-${n}`).toString('hex').padEnd(64, '0').slice(0, 64)}`;
const base = blob('base');
/** Each manifest's own layer, with a size of its own; images share `base`; img7's layer is also used in another repository. */
const layers = new Map(fixtureManifests.filter((m) => !m.children).map((m, i) => [m.name, { digest: blob(m.name), size: 1000 + i }]));

/** Pushes the fixture repository team/app as it aged (the store's clock is faked), and other/app beside it. */
async function pushFixture(meta: MetaStore): Promise<void> {
  vi.useFakeTimers({ toFake: ['Date'] });
  try {
    vi.setSystemTime(daysAgo(200));
    await meta.linkBlob('team/app', base, 5000);
    for (const l of layers.values()) await meta.linkBlob('team/app', l.digest, l.size);
    await meta.linkBlob('other/app', layers.get('img7')!.digest, layers.get('img7')!.size);
    await meta.putManifest({
      repo: 'other/app',
      digest: fixtureDigest('other'),
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      content: Buffer.from('{"other":1}'),
      blobs: [layers.get('img7')!.digest],
      manifests: [],
      tag: 'v1',
    });
    for (const m of fixtureManifests) {
      vi.setSystemTime(daysAgo(m.age));
      const own = layers.get(m.name);
      await meta.putManifest({
        repo: 'team/app',
        digest: fixtureDigest(m.name),
        mediaType: m.children ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json',
        content: Buffer.from(JSON.stringify({ schemaVersion: 2, name: m.name })),
        blobs: own ? [own.digest, ...(m.name.startsWith('img') ? [base] : [])] : [],
        manifests: (m.children ?? []).map(fixtureDigest),
        ...(m.subject ? { subject: fixtureDigest(m.subject) } : {}),
      });
    }
    for (const [tag, m, age] of fixtureTags) {
      vi.setSystemTime(daysAgo(age));
      const r = await meta.putManifest({
        repo: 'team/app',
        digest: fixtureDigest(m),
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        content: Buffer.from(''),
        blobs: [],
        manifests: [],
        tag,
      });
      expect(r.ok).toBe(true);
    }
    await meta.retention.recordPulls([{ repo: 'team/app', digest: fixtureDigest('img1'), lastPulledAt: daysAgo(2), count: 3 }]);
  } finally {
    vi.useRealTimers();
  }
}

/** What the fixture's blobs free when these manifests go: blobs no remaining manifest references. */
function expectedFreed(deleted: string[]): number {
  const users = new Map<string, string[]>();
  const use = (b: string, m: string) => users.set(b, [...(users.get(b) ?? []), m]);
  for (const m of fixtureManifests) {
    const own = layers.get(m.name);
    if (own) use(own.digest, m.name);
    if (own && m.name.startsWith('img')) use(base, m.name);
  }
  use(layers.get('img7')!.digest, 'other');
  const sizes = new Map([...layers.values()].map((l) => [l.digest, l.size] as const));
  sizes.set(base, 5000);
  let bytes = 0;
  for (const [b, ms] of users) if (ms.every((m) => deleted.includes(m))) bytes += sizes.get(b) ?? 0;
  return bytes;
}

const nameOf = new Map([...fixtureManifests.map((m) => [fixtureDigest(m.name), m.name] as const)]);
const withoutSkipped = (d: Deletion[]) => d.map(({ skipped: _, ...rest }) => rest);

/** A policy that vetoes these tags and (asked without a tag) these manifests, by fixture name. */
function vetoing(vetoes: { tags?: string[]; manifests?: string[] } = {}) {
  const asked: Question[] = [];
  return {
    asked,
    decide(q: Question): Answer {
      asked.push(q);
      const no = q.tag !== undefined ? (vetoes.tags ?? []).includes(q.tag) : (vetoes.manifests ?? []).map(fixtureDigest).includes(q.digest);
      return no ? { allowed: false, message: 'kept by policy' } : { allowed: true };
    },
  };
}

function service(meta: MetaStore, extra: Partial<ConstructorParameters<typeof RetentionService>[0]> = {}) {
  return new RetentionService({ meta, log, settings: { intervalMs: 0, keepRunsMs: 86_400_000 }, now: () => now, ...extra });
}

async function runOnce(s: RetentionService, dryRun: boolean): Promise<{ result: RunResult; counts: Record<string, number> }> {
  const started = await s.begin({ scope: { kind: 'namespace', name: 'team' }, dryRun, actor: 'test', trigger: 'api', source: '' });
  const run = await s.wait(started!.id);
  expect(run?.status, run?.error).toBe('done');
  return { result: run?.result as RunResult, counts: run?.counts as unknown as Record<string, number> };
}

function suite(engine: string, open: () => Promise<MetaStore>) {
  describe(`retention runs: ${engine}`, () => {
    for (const c of ruleCases) {
      it(`${c.name}: the dry run says what the real run does`, async () => {
        const meta = await open();
        try {
          await pushFixture(meta);
          await meta.retention.putRules({ kind: 'namespace', name: 'team', document: readRules(c.rules), source: c.rules, updatedBy: 'test', updatedAt: now });
          const policy = vetoing(c.vetoes);
          const s = service(meta, { policy });
          const dry = await runOnce(s, true);
          const tags = dry.result.deletions.filter((d) => d.kind === 'tag').map((d) => d.tag);
          const manifests = dry.result.deletions.filter((d) => d.kind === 'manifest').map((d) => nameOf.get(d.digest));
          expect(tags).toEqual(c.tags);
          expect(manifests.sort()).toEqual(c.manifests);
          expect(dry.result.freed).toEqual({ bytes: expectedFreed(c.manifests), blobs: expect.any(Number), manifestBytes: expect.any(Number), estimate: true });
          expect(dry.result.vetoed).toHaveLength((c.vetoes?.tags?.length ?? 0) + (c.vetoes?.manifests?.length ?? 0));
          // a dry run deletes nothing
          expect((await meta.retention.contents('team/app')).tags).toHaveLength(fixtureTags.length);

          const real = await runOnce(s, false);
          expect(withoutSkipped(real.result.deletions)).toEqual(withoutSkipped(dry.result.deletions));
          expect(real.result.deletions.filter((d) => d.skipped)).toEqual([]);
          expect(real.result.freed).toEqual(dry.result.freed);
          expect(real.counts).toEqual(dry.counts);
          expect(real.counts.tagsDeleted).toBe(c.tags.length);
          expect(real.counts.manifestsDeleted).toBe(c.manifests.length);

          const left = await meta.retention.contents('team/app');
          expect(left.tags.map((t) => t.name).sort()).toEqual(
            fixtureTags
              .map(([t]) => t)
              .filter((t) => !c.tags.includes(t))
              .sort(),
          );
          expect(left.manifests.map((m) => nameOf.get(m.digest)).sort()).toEqual(
            fixtureManifests
              .map((m) => m.name)
              .filter((m) => !c.manifests.includes(m))
              .sort(),
          );
          // no child of a kept index was taken
          const kept = new Set(left.manifests.map((m) => m.digest));
          for (const e of left.children) expect(kept.has(e.child)).toBe(true);
          // other/app has no rules: untouched
          expect((await meta.retention.contents('other/app')).tags.map((t) => t.name)).toEqual(['v1']);
          // and a second real run finds nothing more to do
          const again = await runOnce(s, false);
          expect(again.result.deletions).toEqual([]);
        } finally {
          await meta.close();
        }
      });
    }

    it('asks the policy about every deletion, as custody-retention, and lists what it vetoed', async () => {
      const meta = await open();
      try {
        await pushFixture(meta);
        await meta.retention.putRules({
          kind: 'namespace',
          name: 'team',
          document: readRules('keep: { newest: 3 }'),
          source: '',
          updatedBy: 't',
          updatedAt: now,
        });
        const policy = vetoing({ tags: ['v1.1.0'] });
        const dry = await runOnce(service(meta, { policy }), true);
        expect(dry.result.vetoed).toEqual([{ repository: 'team/app', kind: 'tag', tag: 'v1.1.0', digest: fixtureDigest('img2'), message: 'kept by policy' }]);
        const q = policy.asked.find((x) => x.tag === 'latest');
        expect(q).toMatchObject({ action: 'retention', repository: 'team/app', namespace: 'team', digest: fixtureDigest('img3'), time: now });
        expect(q?.principal).toEqual({ kind: 'anonymous', id: '', name: 'custody-retention', admin: false });
        // every planned deletion was asked about once: the tags, then the manifests
        expect(policy.asked.filter((x) => x.tag === undefined).map((x) => nameOf.get(x.digest))).toContain('sig1');
        expect(new Set(policy.asked.map((x) => `${x.tag ?? ''}@${x.digest}`)).size).toBe(policy.asked.length);
      } finally {
        await meta.close();
      }
    });

    it('runs one real run at a time; dry runs beside it', async () => {
      const meta = await open();
      try {
        await pushFixture(meta);
        await meta.retention.putRules({
          kind: 'namespace',
          name: 'team',
          document: readRules('keep: { newest: 3 }'),
          source: '',
          updatedBy: 't',
          updatedAt: now,
        });
        // a policy that holds the first run in its planning until released
        let release: () => void = () => {};
        const held = new Promise<void>((resolve) => (release = resolve));
        const slow = { decide: async () => (await held, { allowed: true as const }) };
        const a = service(meta, { policy: slow });
        const b = service(meta);
        const first = await a.begin({ scope: { kind: 'all' }, dryRun: false, actor: 'a', trigger: 'api', source: '' });
        await expect(b.begin({ scope: { kind: 'namespace', name: 'team' }, dryRun: false, actor: 'b', trigger: 'api', source: '' })).rejects.toThrow(
          RetentionBusy,
        );
        const dry = await b.begin({ scope: { kind: 'namespace', name: 'team' }, dryRun: true, actor: 'b', trigger: 'api', source: '' });
        expect((await b.wait(dry!.id))?.status).toBe('done');
        release();
        expect((await a.wait(first!.id))?.status).toBe('done');
        // the lease is free again
        const next = await b.begin({ scope: { kind: 'namespace', name: 'team' }, dryRun: false, actor: 'b', trigger: 'api', source: '' });
        expect((await b.wait(next!.id))?.status).toBe('done');
      } finally {
        await meta.close();
      }
    });

    it('runs the schedule once per interval across two replicas', async () => {
      const meta = await open();
      try {
        await pushFixture(meta);
        await meta.retention.putRules({
          kind: 'namespace',
          name: 'team',
          document: readRules('keep: { newest: 3 }'),
          source: '',
          updatedBy: 't',
          updatedAt: now,
        });
        let clock = now;
        const replica = () => service(meta, { settings: { intervalMs: 3_600_000, keepRunsMs: 86_400_000 }, now: () => clock });
        const [a, b] = [replica(), replica()];
        const scheduled = async () => (await meta.retention.listRuns({ registryWide: true }, { limit: 100 })).runs;
        const settle = async () => {
          for (const r of await scheduled()) await Promise.all([a.wait(r.id), b.wait(r.id)]);
        };
        await Promise.all([a.tick(), b.tick(), a.tick(), b.tick()]);
        await settle();
        expect((await scheduled()).map((r) => [r.trigger, r.status])).toEqual([['schedule', 'done']]);
        clock += 1_800_000; // half an interval: not due
        await Promise.all([a.tick(), b.tick()]);
        await settle();
        expect(await scheduled()).toHaveLength(1);
        clock += 1_800_000;
        await Promise.all([a.tick(), b.tick()]);
        await settle();
        const runs = await scheduled();
        expect(runs).toHaveLength(2);
        // they never overlapped
        const [later, earlier] = runs;
        expect(later!.startedAt).toBeGreaterThanOrEqual(earlier!.finishedAt!);
        await Promise.all([a.stop(), b.stop()]);
      } finally {
        await meta.close();
      }
    });

    it('marks a run whose replica stopped as failed, and deletes nothing for a rule set that cannot be read', async () => {
      const meta = await open();
      try {
        await pushFixture(meta);
        await meta.retention.createRun({
          id: '00000000-0000-4000-8000-00000000dead',
          trigger: 'schedule',
          actor: 'custody-retention',
          scope: { kind: 'all' },
          dryRun: false,
          status: 'running',
          startedAt: now - 600_000,
          updatedAt: now - 600_000,
          phase: 'deleting',
          done: 1,
          total: 9,
          counts: { repositories: 0, tagsDeleted: 0, manifestsDeleted: 0, vetoed: 0, errors: 0, bytes: 0, blobs: 0, manifestBytes: 0 },
        });
        // a stored document that no longer reads (written by hand, or by a future version)
        await meta.retention.putRules({ kind: 'namespace', name: 'team', document: { keep: { newest: 'many' } }, source: '', updatedBy: 't', updatedAt: now });
        const s = service(meta, { settings: { intervalMs: 3_600_000, keepRunsMs: 86_400_000 } });
        await s.tick();
        expect(await meta.retention.getRun('00000000-0000-4000-8000-00000000dead')).toMatchObject({
          status: 'failed',
          error: expect.stringMatching(/stopped/),
        });
        const dry = await runOnce(s, true);
        expect(dry.result.deletions).toEqual([]);
        expect(dry.result.errors[0]?.message).toMatch(/^the namespace rules of team cannot be read: keep.newest/);
        await s.stop();
      } finally {
        await meta.close();
      }
    });
  });
}

suite('sqlite', async () => openMetaStore(path.join(await mkdtemp(path.join(tmpdir(), 'custody-retention-')), 'custody.db')));

const havePostgres = await postgresAvailable();
describe.runIf(havePostgres)('postgres', () => {
  afterAll(dropDatabases);
  suite('postgres', async () => openMetaStore(await freshDatabase()));
});
