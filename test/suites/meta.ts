/**
 * The one MetaStore test suite. Every engine runs it (see test/meta.test.ts): SQLite through
 * node:sqlite and a real PostgreSQL server.
 */
import { describe, expect, it } from 'vitest';
import type { MetaStore, NewManifest } from '../../src/meta/metastore.ts';

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const bytes = (s: string) => new TextEncoder().encode(s);

function manifest(repo: string, digest: string, extra: Partial<NewManifest> = {}): NewManifest {
  return { repo, digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', content: bytes(`{"m":"${digest}"}`), blobs: [], manifests: [], ...extra };
}

export function metaStoreSuite(name: string, open: () => Promise<MetaStore>): void {
  describe(`MetaStore: ${name}`, () => {
    it('links blobs per repository', async () => {
      const meta = await open();
      await meta.linkBlob('a/one', d(1), 42);
      await meta.linkBlob('a/one', d(1), 42);
      expect(await meta.blobInRepo('a/one', d(1))).toBe(42);
      expect(await meta.blobInRepo('a/two', d(1))).toBeUndefined();
      expect(await meta.repositoryExists('a/one')).toBe(true);
      expect(await meta.unlinkBlob('a/one', d(1))).toBe(true);
      expect(await meta.unlinkBlob('a/one', d(1))).toBe(false);
      expect(await meta.blobInRepo('a/one', d(1))).toBeUndefined();
      await meta.close();
    });

    it('keeps large sizes exact', async () => {
      const meta = await open();
      await meta.linkBlob('big', d(2), 5 * 2 ** 40);
      expect(await meta.blobInRepo('big', d(2))).toBe(5 * 2 ** 40);
      await meta.close();
    });

    it('appends upload parts only at the current offset', async () => {
      const meta = await open();
      await meta.createUpload('u1', 'repo');
      expect(await meta.appendUploadPart('u1', { start: 0, size: 10, sha256: 'aa', key: 'k' })).toBe(true);
      expect(await meta.appendUploadPart('u1', { start: 0, size: 10, sha256: 'bb', key: 'k' })).toBe(false);
      expect(await meta.appendUploadPart('u1', { start: 5, size: 10, sha256: 'bb', key: 'k' })).toBe(false);
      expect(await meta.appendUploadPart('u1', { start: 10, size: 3, sha256: 'cc', key: 'k' })).toBe(true);
      const upload = await meta.getUpload('u1');
      expect(upload).toMatchObject({ id: 'u1', repo: 'repo', offset: 13 });
      expect(upload?.parts).toEqual([
        { start: 0, size: 10, sha256: 'aa', key: 'k' },
        { start: 10, size: 3, sha256: 'cc', key: 'k' },
      ]);
      expect(await meta.appendUploadPart('missing', { start: 0, size: 1, sha256: 'x', key: 'k' })).toBe(false);
      await meta.deleteUpload('u1');
      expect(await meta.getUpload('u1')).toBeUndefined();
      await meta.close();
    });

    it('lets exactly one of two racing appends win', async () => {
      const meta = await open();
      await meta.createUpload('race', 'repo');
      const results = await Promise.all([0, 1, 2, 3].map((i) => meta.appendUploadPart('race', { start: 0, size: 5, sha256: String(i), key: 'k' })));
      expect(results.filter(Boolean)).toHaveLength(1);
      await meta.close();
    });

    it('finds stale uploads', async () => {
      const meta = await open();
      await meta.createUpload('old', 'repo');
      expect((await meta.staleUploads(Date.now() + 1000)).map((u) => u.id)).toContain('old');
      expect((await meta.staleUploads(Date.now() - 60_000)).map((u) => u.id)).not.toContain('old');
      await meta.close();
    });

    it('refuses a manifest whose blobs or child manifests are missing', async () => {
      const meta = await open();
      await meta.linkBlob('r', d(10), 1);
      expect(await meta.putManifest(manifest('r', d(100), { blobs: [d(10), d(11)] }))).toEqual({ ok: false, missing: d(11) });
      expect(await meta.putManifest(manifest('r', d(101), { manifests: [d(100)] }))).toEqual({ ok: false, missing: d(100) });
      expect(await meta.getManifest('r', d(100))).toBeUndefined();
      await meta.linkBlob('r', d(11), 1);
      expect(await meta.putManifest(manifest('r', d(100), { blobs: [d(10), d(11)], tag: 'v1' }))).toEqual({ ok: true });
      expect(await meta.putManifest(manifest('r', d(101), { manifests: [d(100)], tag: 'index' }))).toEqual({ ok: true });
      expect(await meta.resolveTag('r', 'v1')).toBe(d(100));
      await meta.close();
    });

    it('stores, retags and deletes manifests', async () => {
      const meta = await open();
      await meta.putManifest(manifest('r', d(1), { tag: 'latest', annotations: { a: 'b' } }));
      const got = await meta.getManifest('r', d(1));
      expect(got?.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
      expect(Buffer.from(got!.content).toString()).toBe(`{"m":"${d(1)}"}`);
      expect(got?.annotations).toEqual({ a: 'b' });
      await meta.putManifest(manifest('r', d(1)));
      await meta.putManifest(manifest('r', d(2), { tag: 'latest' }));
      expect(await meta.resolveTag('r', 'latest')).toBe(d(2));
      expect((await meta.getTaggedManifest('r', 'latest'))?.digest).toBe(d(2));
      expect(await meta.getTaggedManifest('r', 'nope')).toBeUndefined();
      expect(await meta.getTaggedManifest('other', 'latest')).toBeUndefined();
      await meta.putManifest(manifest('r', d(2), { tag: 'other' }));
      expect(await meta.deleteTag('r', 'other')).toBe(true);
      expect(await meta.deleteTag('r', 'other')).toBe(false);
      expect(await meta.getManifest('r', d(2))).toBeDefined();
      expect(await meta.deleteManifest('r', d(2))).toBe(true);
      expect(await meta.resolveTag('r', 'latest')).toBeUndefined();
      expect(await meta.deleteManifest('r', d(2))).toBe(false);
      await meta.close();
    });

    it('pages tags and repositories in byte order', async () => {
      const meta = await open();
      for (const tag of ['b', 'a', 'B', '_x', 'a1', 'Z']) await meta.putManifest(manifest('pg/tags', d(1), { tag }));
      expect(await meta.listTags('pg/tags', { n: 100 })).toEqual(['B', 'Z', '_x', 'a', 'a1', 'b']);
      expect(await meta.listTags('pg/tags', { n: 2, last: 'Z' })).toEqual(['_x', 'a']);
      expect(await meta.listTags('nothing', { n: 10 })).toEqual([]);
      for (const repo of ['z/z', 'a-b/c', 'a/b']) await meta.linkBlob(repo, d(1), 1);
      expect(await meta.listRepositories({ n: 100 })).toEqual(['a-b/c', 'a/b', 'pg/tags', 'z/z']);
      expect(await meta.listRepositories({ n: 1, last: 'a/b' })).toEqual(['pg/tags']);
      await meta.close();
    });

    it("pages a repository's manifests in digest order, tagged or not", async () => {
      const meta = await open();
      await meta.putManifest(manifest('pm/app', d(3), { tag: 'v1' }));
      await meta.putManifest(manifest('pm/app', d(3), { tag: 'latest' }));
      await meta.putManifest(manifest('pm/app', d(1)));
      await meta.putManifest(manifest('pm/app', d(4), { manifests: [d(1)], tag: 'index' }));
      await meta.putManifest(manifest('pm/app', d(2), { subject: d(3) }));
      await meta.putManifest(manifest('pm/other', d(5), { tag: 'v1' }));
      const all = [
        { digest: d(1), tagged: false },
        { digest: d(2), tagged: false },
        { digest: d(3), tagged: true },
        { digest: d(4), tagged: true },
      ];
      expect(await meta.listManifests('pm/app', { n: 100 })).toEqual(all);
      expect(await meta.listManifests('pm/app', { n: 2 })).toEqual(all.slice(0, 2));
      expect(await meta.listManifests('pm/app', { n: 2, last: d(2) })).toEqual(all.slice(2));
      expect(await meta.listManifests('pm/app', { n: 2, last: d(4) })).toEqual([]);
      // a deleted tag leaves its manifest untagged; a deleted manifest is gone from the list
      await meta.deleteTag('pm/app', 'index');
      await meta.deleteManifest('pm/app', d(2));
      expect(await meta.listManifests('pm/app', { n: 100 })).toEqual([all[0], all[2], { digest: d(4), tagged: false }]);
      expect(await meta.listManifests('nothing', { n: 10 })).toEqual([]);
      await meta.close();
    });

    it('lists referrers of a subject', async () => {
      const meta = await open();
      await meta.putManifest(manifest('r', d(5), { subject: d(1), artifactType: 'application/x-sig', annotations: { k: 'v' } }));
      await meta.putManifest(manifest('r', d(6), { subject: d(1), artifactType: 'application/x-sbom' }));
      await meta.putManifest(manifest('other', d(7), { subject: d(1) }));
      const refs = await meta.listReferrers('r', d(1));
      expect(refs.map((r) => [r.digest, r.artifactType])).toEqual([
        [d(5), 'application/x-sig'],
        [d(6), 'application/x-sbom'],
      ]);
      expect(refs[0]?.annotations).toEqual({ k: 'v' });
      await meta.close();
    });

    it('answers ping', async () => {
      const meta = await open();
      await meta.ping();
      await meta.close();
    });
  });

  describe(`AccountStore: ${name}`, () => {
    it('keeps users, teams, memberships and roles, and removes what a deleted user held', async () => {
      const meta = await open();
      const a = meta.accounts;
      const alice = await a.createUser({ name: 'alice', passwordHash: 'h1', admin: false });
      await expect(a.createUser({ name: 'alice', passwordHash: null, admin: false })).rejects.toThrow();
      expect(await a.getUser({ name: 'alice' })).toEqual(alice);
      expect(await a.countUsers()).toBe(1);
      await a.setPassword(alice.id, 'h2');
      expect((await a.getUser({ id: alice.id }))?.passwordHash).toBe('h2');
      const team = await a.createTeam('platform');
      await a.addMember(team.id, alice.id);
      await a.addMember(team.id, alice.id);
      expect(await a.teamsOf(alice.id)).toEqual([team.id]);
      expect((await a.listTeams()).map((t) => [t.name, t.members])).toEqual([['platform', ['alice']]]);
      await a.setGrant({ namespace: 'ns', kind: 'team', principal: team.id, role: 'writer' });
      await a.setGrant({ namespace: 'ns', kind: 'user', principal: alice.id, role: 'reader' });
      await a.setGrant({ namespace: 'ns', kind: 'user', principal: alice.id, role: 'maintainer' });
      expect(
        (
          await a.rolesIn('ns', [
            { kind: 'user', id: alice.id },
            { kind: 'team', id: team.id },
          ])
        ).sort(),
      ).toEqual(['maintainer', 'writer']);
      expect(await a.rolesIn('other', [{ kind: 'user', id: alice.id }])).toEqual([]);
      expect(await a.deleteUser(alice.id)).toBe(true);
      expect(await a.teamsOf(alice.id)).toEqual([]);
      expect((await a.listGrants('ns')).map((g) => g.kind)).toEqual(['team']);
      expect(await a.deleteTeam(team.id)).toBe(true);
      expect(await a.listGrants('ns')).toEqual([]);
      await meta.close();
    });

    it('keeps robots, namespaces, tokens and signing keys', async () => {
      const meta = await open();
      const a = meta.accounts;
      const robot = await a.createRobot('ns', 'ci');
      expect(robot.name).toBe('ns+ci');
      expect(await a.listRobots('ns')).toEqual([robot]);
      expect((await a.upsertNamespace('ns', { anonymousRead: true })).anonymousRead).toBe(true);
      expect((await a.upsertNamespace('ns', {})).anonymousRead).toBe(true);
      expect((await a.getNamespace('ns'))?.anonymousRead).toBe(true);
      const token = await a.createToken({
        id: 'abc',
        ownerKind: 'robot',
        ownerId: robot.id,
        name: 't',
        secretHash: 'f00',
        scopes: ['pull'],
        expiresAt: 5 * 2 ** 40,
      });
      expect(await a.getToken('abc')).toEqual(token);
      await a.touchToken('abc', 1234);
      expect((await a.listTokens('robot', robot.id)).map((t) => t.lastUsedAt)).toEqual([1234]);
      expect(await a.deleteRobot(robot.id)).toBe(true);
      expect(await a.getToken('abc')).toBeUndefined();
      await a.addSigningKey({ kid: 'k1', privateJwk: '{}', publicJwk: '{}', active: true, createdAt: 1000 });
      await a.addSigningKey({ kid: 'k2', privateJwk: '{}', publicJwk: '{}', active: true, createdAt: 2000 });
      expect((await a.signingKeys()).map((k) => [k.kid, k.active]).sort()).toEqual([
        ['k1', false],
        ['k2', true],
      ]);
      expect((await a.signingKeys()).map((k) => [k.kid, k.replacedAt])).toEqual([
        ['k2', null],
        ['k1', 2000],
      ]);
      expect(await a.retireSigningKeys(2000)).toBe(0);
      expect(await a.retireSigningKeys(2001)).toBe(1);
      expect((await a.signingKeys()).map((k) => k.kid)).toEqual(['k2']);
      await meta.close();
    });

    it('queries the audit log with filters and pages, prunes it, and counts login failures', async () => {
      const meta = await open();
      const a = meta.accounts;
      for (let i = 0; i < 5; i++)
        await a.record({
          time: 1000 + i,
          actor: i % 2 ? 'bob' : 'alice',
          source: '10.0.0.1',
          action: 'push',
          target: `r${i}`,
          outcome: 'success',
          detail: { i },
        });
      const first = await a.query({ limit: 2 });
      expect(first.map((e) => e.target)).toEqual(['r4', 'r3']);
      const next = await a.query({ limit: 2, before: first[1]?.id });
      expect(next.map((e) => e.target)).toEqual(['r2', 'r1']);
      expect((await a.query({ actor: 'bob', limit: 10 })).map((e) => e.detail)).toEqual([{ i: 3 }, { i: 1 }]);
      expect((await a.query({ since: 1003, limit: 10 })).length).toBe(2);
      expect(await a.pruneAudit(1002)).toBe(2);
      expect((await a.query({ limit: 10 })).length).toBe(3);
      await a.recordFailure('account:x_y|source:1', 100);
      await a.recordFailure('account:x_y|source:1', 200);
      await a.recordFailure('account:x_y|source:2', 300);
      await a.recordFailure('account:xzy|source:1', 300);
      expect(await a.failuresSince('account:x_y|source:1', 150)).toEqual({ count: 1, last: 200 });
      expect(await a.failuresSince('account:none', 0)).toEqual({ count: 0, last: null });
      await a.pruneFailures(150);
      expect(await a.failuresSince('account:x_y|source:1', 0)).toEqual({ count: 1, last: 200 });
      // a prefix clears every address of one account, and "_" is not a wildcard
      expect(await a.clearFailures('account:x_y|')).toBe(2);
      expect(await a.failuresSince('account:x_y|source:2', 0)).toEqual({ count: 0, last: null });
      expect(await a.failuresSince('account:xzy|source:1', 0)).toEqual({ count: 1, last: 300 });
      await meta.close();
    });
  });
}
