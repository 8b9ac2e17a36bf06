/**
 * The query language against a real store: the same seeded data and the same expected answers on
 * every engine (run on SQLite and PostgreSQL from test/query-store.test.ts). Each query goes the
 * whole way: parsed, planned with an access, compiled by the store and run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runQuery, type QueryAccess, type QueryResult } from '../../src/insight/query/index.ts';
import { eventId, type UsageEvent } from '../../src/meta/insight.ts';
import type { MetaStore } from '../../src/meta/metastore.ts';

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const bytes = (s: string) => new TextEncoder().encode(s);
/** what now() is in every query of the suite */
export const now = Date.UTC(2025, 0, 31, 12, 0, 0);
const hour = 3_600_000;
const day = 24 * hour;

function event(at: number, fields: Partial<UsageEvent>): UsageEvent {
  return {
    id: eventId(at),
    at,
    type: 'pull',
    object: 'blob',
    namespace: '',
    repository: '',
    digest: '',
    tag: '',
    mediaType: '',
    actor: 'alice',
    actorKind: 'user',
    tokenId: '',
    bytes: 0,
    userAgent: 'skopeo/1.0',
    source: '127.0.0.1',
    durationMicros: 100,
    status: 200,
    result: 'ok',
    detail: {},
    ...fields,
  };
}

const at = (repo: string) => ({ namespace: repo.split('/')[0] as string, repository: repo });

/** Seeds events, manifests, tags, referrers, verdicts, an SBOM and policy decisions in team, other and teamwork. */
export async function seed(meta: MetaStore): Promise<void> {
  await meta.insight.recordEvents([
    event(now - 1 * hour, { ...at('team/app'), bytes: 1000, digest: d(1) }),
    event(now - 2 * hour, { ...at('team/app'), bytes: 500, digest: d(1), actor: 'bob' }),
    event(now - 3 * hour, { ...at('team/web'), bytes: 300, object: 'manifest', tag: 'v1' }),
    event(now - 10 * day, { ...at('team/app'), bytes: 7000, digest: d(1) }),
    event(now - 4 * hour, { ...at('team/app'), type: 'push', bytes: 2000 }),
    event(now - 5 * hour, { ...at('other/app'), bytes: 9000, actor: 'carol', source: '10.0.0.9' }),
    event(now - 6 * hour, { ...at('other/app'), type: 'delete', object: 'manifest' }),
    // a namespace whose name starts like team's: a prefix is not a namespace
    event(now - 7 * hour, { ...at('teamwork/x'), bytes: 11 }),
    event(now - 8 * hour, { type: 'login', object: '', actor: 'carol', status: 401, result: 'denied' }),
    event(now - 9 * hour, { ...at('team/app'), bytes: 40, result: 'aborted', status: 200, userAgent: 'containerd/2.0' }),
  ]);
  const manifest = (repo: string, n: number, extra: { tag?: string; subject?: string; artifactType?: string } = {}) =>
    meta.putManifest({
      repo,
      digest: d(n),
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      content: bytes(`{"n":${n}}`),
      blobs: [],
      manifests: [],
      ...(extra.tag ? { tag: extra.tag } : {}),
      ...(extra.subject ? { subject: extra.subject } : {}),
      ...(extra.artifactType ? { artifactType: extra.artifactType } : {}),
    });
  await manifest('team/app', 1, { tag: 'v1' });
  await meta.putManifest({
    repo: 'team/app',
    digest: d(1),
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    content: bytes('{"n":1}'),
    blobs: [],
    manifests: [],
    tag: 'latest',
  });
  await manifest('team/app', 2, { subject: d(1), artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json' });
  await manifest('team/app', 3, { subject: d(1), artifactType: 'application/vnd.cyclonedx+json' });
  await manifest('other/app', 4, { tag: 'v1' });
  await manifest('teamwork/x', 5, { tag: 'v1' });
  await meta.retention.recordPulls([{ repo: 'team/app', digest: d(1), lastPulledAt: now - hour, count: 3 }]);

  await meta.trust.recordArtifact({ repo: 'team/app', digest: d(2), subject: d(1), kind: 'signature', format: 'cosign', via: 'referrer' });
  await meta.trust.setVerdict('team/app', d(2), {
    kind: 'signature',
    verified: true,
    signer: 'key:team',
    code: 'verified',
    reason: 'ok',
    trustFingerprint: 'f',
  });
  await meta.trust.recordArtifact({ repo: 'team/app', digest: d(3), subject: d(1), kind: 'sbom', format: 'cyclonedx', via: 'referrer' });
  await meta.trust.recordArtifact({ repo: 'other/app', digest: d(6), subject: d(4), kind: 'signature', format: 'cosign', via: 'referrer' });
  await meta.trust.setVerdict('other/app', d(6), { kind: 'signature', verified: false, code: 'bad_signature', reason: 'tampered', trustFingerprint: 'f' });
  await meta.trust.putSbom({
    repo: 'team/app',
    digest: d(3),
    format: 'cyclonedx',
    specVersion: '1.6',
    components: [
      { name: 'openssl', version: '3.0.1', purl: 'pkg:deb/debian/openssl@3.0.1', licenses: ['Apache-2.0'], type: 'library' },
      { name: 'busybox', version: '1.36', licenses: ['GPL-2.0-only', 'bzip2-1.0.6'], type: 'application' },
      { name: 'zlib', licenses: [] },
    ],
  });
  await meta.policy.recordDecisions([
    decision(now - hour, 'team/app', 'deny'),
    decision(now - 2 * hour, 'other/app', 'deny'),
    decision(now - 3 * hour, 'team/web', 'allow'),
  ]);
}

function decision(at: number, repository: string, result: string) {
  return {
    at,
    policy: 'signed-only',
    version: 1,
    mode: 'enforce',
    action: 'pull',
    repository,
    reference: 'v1',
    result,
    message: result === 'deny' ? 'unsigned' : '',
    latencyMicros: 12,
    actor: 'alice',
    source: '127.0.0.1',
    enforced: result === 'deny',
  };
}

export function queryStoreSuite(name: string, open: () => Promise<MetaStore>): void {
  describe(`the query language: ${name}`, () => {
    let meta: MetaStore;
    const q = (text: string, access: QueryAccess = 'all', limits = {}): Promise<QueryResult> => runQuery(meta.query, text, { access, now, limits });
    const rows = async (text: string, access: QueryAccess = 'all') => (await q(text, access)).rows;

    beforeAll(async () => {
      meta = await open();
      await seed(meta);
    });
    afterAll(() => meta.close());

    it("answers the issue's example: bytes and pulls per repository over the last 7 days", async () => {
      const r = await q(
        "FROM pulls |> WHERE namespace = 'team' AND time > now() - interval '7 days' |> AGGREGATE sum(bytes) AS bytes, count() AS pulls GROUP BY repository |> ORDER BY bytes DESC |> LIMIT 10",
      );
      expect(r).toEqual({
        columns: [
          { name: 'repository', type: 'text' },
          { name: 'bytes', type: 'integer' },
          { name: 'pulls', type: 'integer' },
        ],
        rows: [
          ['team/app', 1540, 3],
          ['team/web', 300, 1],
        ],
        truncated: false,
      });
    });

    it('answers the same as a plain SELECT', async () => {
      expect(
        await rows(
          "SELECT repository, sum(bytes) AS bytes, count(*) AS pulls FROM pulls WHERE namespace = 'team' AND time > now() - interval '7 days' GROUP BY repository ORDER BY bytes DESC LIMIT 10",
        ),
      ).toEqual([
        ['team/app', 1540, 3],
        ['team/web', 300, 1],
      ]);
      // ordered by an aggregate and by a column of the input that is not an output
      expect(await rows('SELECT count(*) AS n FROM events GROUP BY type ORDER BY type')).toEqual([[1], [1], [7], [1]]);
      expect(await rows('SELECT type, count(*) FROM events GROUP BY 1 HAVING count(*) > 1 ORDER BY count(*) DESC')).toEqual([['pull', 7]]);
    });

    it('shows times as ISO 8601, compares them as times, and buckets them', async () => {
      expect(await rows("FROM events |> WHERE time >= '2025-01-31T10:00:00Z' |> SELECT time, type, repository |> ORDER BY time")).toEqual([
        ['2025-01-31T10:00:00.000Z', 'pull', 'team/app'],
        ['2025-01-31T11:00:00.000Z', 'pull', 'team/app'],
      ]);
      expect(
        await rows(
          "FROM pulls |> WHERE time BETWEEN timestamp '2025-01-31' AND now() |> AGGREGATE count() AS n GROUP BY bucket(time, interval '4 hours') AS at |> ORDER BY at",
        ),
      ).toEqual([
        ['2025-01-31T00:00:00.000Z', 1],
        ['2025-01-31T04:00:00.000Z', 2],
        ['2025-01-31T08:00:00.000Z', 3],
      ]);
      expect(await rows("SELECT bucket(time, interval '1 day') AS day, count(*) FROM pulls GROUP BY bucket(time, interval '1 day') ORDER BY day")).toEqual([
        ['2025-01-21T00:00:00.000Z', 1],
        ['2025-01-31T00:00:00.000Z', 6],
      ]);
      expect(await rows("SELECT bucket(time, interval '1 day') + interval '1 day' AS until, count(*) AS n FROM pulls GROUP BY 1 HAVING count(*) > 1")).toEqual([
        ['2025-02-01T00:00:00.000Z', 6],
      ]);
      expect(await rows('FROM pulls |> AGGREGATE min(time) AS first, max(time) AS last, max(time) - min(time) AS span')).toEqual([
        ['2025-01-21T12:00:00.000Z', '2025-01-31T11:00:00.000Z', 10 * day - hour],
      ]);
    });

    it('filters with IN, LIKE (case-sensitive on every engine), IS NULL, NOT and arithmetic', async () => {
      expect(await rows("FROM events |> WHERE repository IN ('team/web', 'other/app') |> AGGREGATE count() GROUP BY type |> ORDER BY type")).toEqual([
        ['delete', 1],
        ['pull', 2],
      ]);
      expect(await rows("FROM pulls |> WHERE repository LIKE 'team/%' AND NOT user_agent LIKE 'skopeo%' |> SELECT bytes")).toEqual([[40]]);
      expect(await rows("FROM pulls |> WHERE repository LIKE 'TEAM/%' |> AGGREGATE count()")).toEqual([[0]]);
      expect(await rows("FROM pulls |> WHERE repository LIKE 'team_app' |> AGGREGATE count()")).toEqual([[4]]);
      expect(await rows("FROM pulls |> WHERE repository LIKE 'team\\_app' |> AGGREGATE count()")).toEqual([[0]]);
      expect(await rows('FROM artifacts |> WHERE subject IS NULL |> SELECT repository, tags, pulls, last_pulled |> ORDER BY repository')).toEqual([
        ['other/app', 1, 0, null],
        ['team/app', 2, 3, '2025-01-31T11:00:00.000Z'],
        ['teamwork/x', 1, 0, null],
      ]);
      expect(
        await rows(
          "FROM pulls |> WHERE actor = 'alice' AND namespace = 'team' |> EXTEND bytes * 2 + 1 AS odd, bytes / 3 AS third, bytes % 7 AS rest, bytes / 0 AS none |> SELECT odd, third, rest, none |> ORDER BY odd DESC |> LIMIT 2",
        ),
      ).toEqual([
        [14001, 2333, 0, null],
        [2001, 333, 6, null],
      ]);
      expect(
        await rows("FROM pulls |> WHERE namespace = 'team' |> AGGREGATE avg(bytes) AS mean, count(distinct actor) AS actors, sum(bytes * 0.5) AS half"),
      ).toEqual([[(1000 + 500 + 300 + 7000 + 40) / 5, 2, 4420]]);
      expect(
        await rows(
          "FROM events |> WHERE type = 'login' |> SELECT actor, status, result, namespace = '' AS global, lower('ABC') || upper(actor) AS s, length(actor) AS n",
        ),
      ).toEqual([['carol', 401, 'denied', true, 'abcCAROL', 5]]);
    });

    it('pipes on after an aggregate, a limit and an order: HAVING, subqueries and combined limits', async () => {
      // repositories with more than one pull, then how many there are
      expect(await rows('FROM pulls |> AGGREGATE count() AS n GROUP BY repository |> WHERE n > 1 |> AGGREGATE count() AS repositories')).toEqual([[1]]);
      // the two largest pulls, then only team's of them
      expect(await rows("FROM pulls |> ORDER BY bytes DESC |> LIMIT 2 |> WHERE namespace = 'team' |> SELECT bytes")).toEqual([[7000]]);
      // limits and offsets combine
      expect(await rows('FROM pulls |> ORDER BY bytes DESC |> LIMIT 5 |> LIMIT 10 OFFSET 1 |> SELECT bytes')).toEqual([[7000], [1000], [500], [300]]);
      expect(await rows('FROM pulls |> ORDER BY bytes |> OFFSET 5 |> SELECT bytes')).toEqual([[7000], [9000]]);
      expect(await rows('FROM pulls |> ORDER BY bytes |> LIMIT 2 |> ORDER BY bytes DESC |> SELECT bytes')).toEqual([[40], [11]]);
    });

    it('reads every table: artifacts, tags, referrers, verdicts, components, policy decisions, rollups', async () => {
      expect(await rows('FROM tags |> SELECT repository, tag, namespace |> ORDER BY repository, tag')).toEqual([
        ['other/app', 'v1', 'other'],
        ['team/app', 'latest', 'team'],
        ['team/app', 'v1', 'team'],
        ['teamwork/x', 'v1', 'teamwork'],
      ]);
      expect(await rows('FROM referrers |> SELECT subject, artifact_type |> ORDER BY artifact_type')).toEqual([
        [d(1), 'application/vnd.cyclonedx+json'],
        [d(1), 'application/vnd.dev.cosign.artifact.sig.v1+json'],
      ]);
      expect(await rows('FROM verdicts |> SELECT repository, kind, status, verified, signer |> ORDER BY repository, kind')).toEqual([
        ['other/app', 'signature', 'done', false, null],
        ['team/app', 'sbom', 'pending', null, null],
        ['team/app', 'signature', 'done', true, 'key:team'],
      ]);
      expect(await rows('FROM components |> SELECT name, version, purl, type, licenses, subject, format |> ORDER BY name')).toEqual([
        ['busybox', '1.36', null, 'application', 'GPL-2.0-only, bzip2-1.0.6', d(1), 'cyclonedx'],
        ['openssl', '3.0.1', 'pkg:deb/debian/openssl@3.0.1', 'library', 'Apache-2.0', d(1), 'cyclonedx'],
        ['zlib', null, null, null, '', d(1), 'cyclonedx'],
      ]);
      expect(await rows("FROM components |> WHERE licenses LIKE '%GPL%' |> SELECT name")).toEqual([['busybox']]);
      expect(await rows("FROM policy_decisions |> WHERE result = 'deny' |> SELECT namespace, enforced, time |> ORDER BY time")).toEqual([
        ['other', true, '2025-01-31T10:00:00.000Z'],
        ['team', true, '2025-01-31T11:00:00.000Z'],
      ]);
      expect(
        await rows(
          "FROM rollups |> WHERE period = 'day' AND type = 'pull' |> AGGREGATE sum(count) AS n, sum(bytes) AS b GROUP BY namespace |> ORDER BY namespace",
        ),
      ).toEqual([
        ['other', 1, 9000],
        ['team', 5, 8840],
        ['teamwork', 1, 11],
      ]);
      expect(await rows("FROM artifacts |> WHERE namespace = 'team' |> AGGREGATE count() AS n, sum(size) AS bytes")).toEqual([[3, 21]]);
      expect(await rows('FROM artifacts |> AGGREGATE count() AS n GROUP BY tags |> ORDER BY tags')).toEqual([
        [0, 2],
        [1, 2],
        [2, 1],
      ]);
    });

    it('cuts an answer at the row limit and says so, unless the LIMIT was its own', async () => {
      const cut = await q('FROM events |> SELECT id', 'all', { defaultRows: 3 });
      expect(cut.rows).toHaveLength(3);
      expect(cut.truncated).toBe(true);
      const own = await q('FROM events |> SELECT id |> LIMIT 3', 'all', { defaultRows: 3 });
      expect(own).toMatchObject({ truncated: false });
      expect(own.rows).toHaveLength(3);
      expect((await q('FROM events |> SELECT id', 'all', { defaultRows: 10 })).truncated).toBe(false);
    });

    it("shows a reader of team only team's rows, whatever the query says", async () => {
      const team = ['team'];
      const attempts = [
        'FROM events |> AGGREGATE count() AS n GROUP BY namespace |> ORDER BY namespace',
        "FROM events |> WHERE namespace = 'other' OR 1 = 1 |> AGGREGATE count() AS n GROUP BY namespace |> ORDER BY namespace",
        "FROM events |> WHERE namespace <> 'team' OR namespace = 'team' OR true |> AGGREGATE count() AS n GROUP BY namespace |> ORDER BY namespace",
        "SELECT namespace, count(*) AS n FROM events WHERE namespace IN ('team', 'other', 'teamwork', '') OR NOT false GROUP BY namespace ORDER BY namespace",
        'FROM events |> LIMIT 100 |> AGGREGATE count() AS n GROUP BY namespace |> ORDER BY namespace',
      ];
      for (const text of attempts) expect(await rows(text, team), text).toEqual([['team', 6]]);
      const byRepository = ['artifacts', 'tags', 'referrers', 'verdicts', 'components', 'policy_decisions'];
      for (const table of byRepository) {
        const seen = await rows(
          `FROM ${table} |> WHERE namespace = 'other' OR repository LIKE '%' OR 1 = 1 |> AGGREGATE count() AS n GROUP BY namespace |> ORDER BY namespace`,
          team,
        );
        expect(
          seen.every(([ns]) => ns === 'team'),
          table,
        ).toBe(true);
      }
      expect(await rows('FROM tags |> SELECT repository |> ORDER BY repository', team)).toEqual([['team/app'], ['team/app']]);
      expect(await rows('FROM rollups |> AGGREGATE count() GROUP BY namespace', team)).toEqual([['team', expect.any(Number)]]);
      // more namespaces than the ranges are made for: matched by name
      const many = ['team', ...Array.from({ length: 30 }, (_, i) => `ns${i}`)];
      expect(await rows('FROM tags |> SELECT repository |> ORDER BY repository', many)).toEqual([['team/app'], ['team/app']]);
      expect(await rows('FROM pulls |> AGGREGATE count() AS n GROUP BY namespace', many)).toEqual([['team', 5]]);
      // no namespace at all: no rows
      expect(await rows('FROM events |> AGGREGATE count() AS n', [])).toEqual([[0]]);
      expect(await rows('FROM artifacts', [])).toEqual([]);
    });

    it('finds the namespaces granted to principals, for the access filter', async () => {
      const user = await meta.accounts.createUser({ name: 'query-reader', passwordHash: null, admin: false });
      const team = await meta.accounts.createTeam('query-team');
      await meta.accounts.setGrant({ namespace: 'zeta', kind: 'user', principal: user.id, role: 'reader' });
      await meta.accounts.setGrant({ namespace: 'alpha', kind: 'team', principal: team.id, role: 'writer' });
      await meta.accounts.setGrant({ namespace: 'zeta', kind: 'team', principal: team.id, role: 'reader' });
      expect(
        await meta.accounts.grantedNamespaces([
          { kind: 'user', id: user.id },
          { kind: 'team', id: team.id },
        ]),
      ).toEqual(['alpha', 'zeta']);
      expect(await meta.accounts.grantedNamespaces([{ kind: 'robot', id: 'none' }])).toEqual([]);
      expect(await meta.accounts.grantedNamespaces([])).toEqual([]);
    });

    it('stops a query past its time limit with a QueryTimeoutError, and answers the next one', async () => {
      // enough rows that grouping them takes longer than 1 ms on either engine
      const bulk = Array.from({ length: 50_000 }, (_, i) => event(now - day - i, { ...at('bulk/x'), bytes: i, digest: d(i) }));
      for (let i = 0; i < bulk.length; i += 5000) await meta.insight.recordEvents(bulk.slice(i, i + 5000));
      const slow = "FROM events |> WHERE namespace = 'bulk' |> AGGREGATE count() AS n GROUP BY digest |> AGGREGATE sum(n)";
      expect(await rows(slow)).toEqual([[50_000]]);
      await expect(q(slow, 'all', { timeoutMs: 1 })).rejects.toMatchObject({
        name: 'QueryTimeoutError',
        message: 'the query ran longer than 1 ms and was stopped',
      });
      expect(await rows("FROM pulls |> WHERE namespace <> 'bulk' |> AGGREGATE count()")).toEqual([[7]]);
    });

    it('refuses to write, whatever reaches it', async () => {
      await expect(q("FROM events |> WHERE actor = 'x'; DELETE FROM usage_events")).rejects.toMatchObject({ name: 'QueryError' });
      expect(await rows("FROM events |> WHERE namespace <> 'bulk' |> AGGREGATE count()")).toEqual([[10]]);
    });
  });
}
