/** The TrustStore suite, run on every engine from test/meta.test.ts. */
import { describe, expect, it } from 'vitest';
import type { MetaStore } from '../../src/meta/metastore.ts';

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const bytes = (s: string) => new TextEncoder().encode(s);

async function pushTagged(meta: MetaStore, repo: string, digest: string, tag: string): Promise<void> {
  const result = await meta.putManifest({
    repo,
    digest,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    content: bytes(`{"m":"${digest}"}`),
    blobs: [],
    manifests: [],
    tag,
  });
  expect(result.ok).toBe(true);
}

export function trustStoreSuite(name: string, open: () => Promise<MetaStore>): void {
  describe(`TrustStore: ${name}`, () => {
    it('records artifacts pending, stores verdicts, and re-marks them pending', async () => {
      const meta = await open();
      const sig = { repo: 'team/app', digest: d(2), subject: d(1), kind: 'signature' as const, format: 'cosign', via: 'referrer' };
      await meta.trust.recordArtifact(sig);
      expect(await meta.trust.pending(10)).toMatchObject([{ ...sig, status: 'pending', verified: null }]);
      await meta.trust.setVerdict('team/app', d(2), {
        kind: 'signature',
        verified: false,
        signer: 'key:a',
        code: 'bad_signature',
        reason: 'tampered',
        details: { n: 1 },
        trustFingerprint: 'f1',
      });
      expect(await meta.trust.getArtifact('team/app', d(2))).toMatchObject({
        status: 'done',
        verified: false,
        signer: 'key:a',
        code: 'bad_signature',
        reason: 'tampered',
        details: { n: 1 },
      });
      expect(await meta.trust.pending(10)).toEqual([]);
      // other namespaces, and names that merely start with the namespace, are left alone
      await meta.trust.recordArtifact({ ...sig, repo: 'teamx/app' });
      await meta.trust.recordArtifact({ ...sig, repo: 'team_a/app' });
      await meta.trust.setVerdict('teamx/app', d(2), { kind: 'signature', verified: true, code: 'verified', reason: 'ok', trustFingerprint: 'f1' });
      await meta.trust.setVerdict('team_a/app', d(2), { kind: 'signature', verified: true, code: 'verified', reason: 'ok', trustFingerprint: 'f1' });
      expect(await meta.trust.markNamespacePending('team', 'f1')).toBe(0);
      expect(await meta.trust.markNamespacePending('team', 'f2')).toBe(1);
      expect((await meta.trust.pending(10)).map((a) => a.repo)).toEqual(['team/app']);
      expect(await meta.trust.artifactsFor('team/app', d(1))).toHaveLength(1);
      await meta.trust.forget('team/app', d(2));
      expect(await meta.trust.artifactsFor('team/app', d(1))).toEqual([]);
      await meta.close();
    });

    it("keeps each verdict's reason code, and none while it is pending again", async () => {
      const meta = await open();
      const base = { repo: 'codes/app', subject: d(1), format: 'cosign', via: 'referrer' };
      const verdicts = [
        { digest: d(30), kind: 'signature', verified: true, code: 'verified', reason: 'signed with the configured key release' },
        { digest: d(31), kind: 'signature', verified: false, code: 'untrusted_signer', reason: 'signed by mallory, but the namespace trusts only alice' },
        { digest: d(32), kind: 'sbom', verified: null, code: 'sbom_unreadable', reason: 'the SBOM cannot be read: not JSON' },
      ] as const;
      for (const { digest, kind, verified, code, reason } of verdicts) {
        await meta.trust.recordArtifact({ ...base, digest, kind });
        expect(await meta.trust.getArtifact(base.repo, digest)).toMatchObject({ status: 'pending', code: null });
        await meta.trust.setVerdict(base.repo, digest, { kind, verified, code, reason, trustFingerprint: 'f' });
      }
      expect((await meta.trust.artifactsFor(base.repo, d(1))).map((a) => [a.digest, a.status, a.verified, a.code, a.reason])).toEqual(
        verdicts.map((v) => [v.digest, 'done', v.verified, v.code, v.reason]),
      );
      // a new push of the same manifest is judged again: its old code is gone until then
      await meta.trust.recordArtifact({ ...base, digest: d(31), kind: 'signature' });
      expect(await meta.trust.getArtifact(base.repo, d(31))).toMatchObject({ status: 'pending', verified: null, code: null, reason: null });
      await meta.close();
    });

    it('lets one replica at a time claim a pending artifact, until a verdict, a release or the claim’s expiry', async () => {
      const meta = await open();
      try {
        const { trust } = meta;
        const sig = (n: number) => ({ repo: 'team/app', digest: d(n), subject: d(1), kind: 'signature' as const, format: 'cosign', via: 'referrer' });
        await trust.recordArtifact(sig(2));
        await trust.recordArtifact(sig(3));
        const verdict = { kind: 'signature' as const, verified: false, code: 'no_trust', reason: 'none', trustFingerprint: 'f' };
        expect(await trust.claim('team/app', d(2), 'a', 1000, 2000)).toBe(true);
        expect(await trust.claim('team/app', d(2), 'b', 1500, 2500)).toBe(false);
        // what a claim covers is not offered to pollers; without a time, everything pending is
        expect((await trust.pending(10, 1500)).map((a) => a.digest)).toEqual([d(3)]);
        expect((await trust.pending(10)).map((a) => a.digest)).toEqual([d(2), d(3)]);
        // renewed by its holder only
        expect(await trust.renewClaim('team/app', d(2), 'b', 9000)).toBe(false);
        expect(await trust.renewClaim('team/app', d(2), 'a', 3000)).toBe(true);
        expect(await trust.claim('team/app', d(2), 'b', 2500, 3500)).toBe(false);
        // a dead holder's claim expires, and another replica takes the work over
        expect((await trust.pending(10, 3000)).map((a) => a.digest)).toEqual([d(2), d(3)]);
        expect(await trust.claim('team/app', d(2), 'b', 3000, 4000)).toBe(true);
        expect(await trust.renewClaim('team/app', d(2), 'a', 5000)).toBe(false);
        // the verdict ends the claim, and a renewal after it does not bring the claim back
        await trust.setVerdict('team/app', d(2), verdict);
        expect(await trust.renewClaim('team/app', d(2), 'b', 5000)).toBe(false);
        expect(await trust.claim('team/app', d(2), 'a', 3100, 4100)).toBe(false); // not pending
        await trust.markNamespacePending('team');
        expect(await trust.renewClaim('team/app', d(2), 'b', 5000)).toBe(false);
        expect(await trust.claim('team/app', d(2), 'a', 3200, 4200)).toBe(true);
        // a release lets anyone try again at once
        await trust.releaseClaim('team/app', d(2), 'b'); // not b's: nothing happens
        expect(await trust.claim('team/app', d(2), 'b', 3300, 4300)).toBe(false);
        await trust.releaseClaim('team/app', d(2), 'a');
        expect(await trust.claim('team/app', d(2), 'b', 3300, 4300)).toBe(true);
        // ten at once: one wins
        const won = await Promise.all(Array.from({ length: 10 }, (_, i) => trust.claim('team/app', d(3), `r${i}`, 5000, 6000)));
        expect(won.filter(Boolean)).toHaveLength(1);
      } finally {
        await meta.close();
      }
    });

    it('keeps SBOMs and namespace trust documents', async () => {
      const meta = await open();
      await meta.trust.putSbom({ repo: 'r', digest: d(3), format: 'cyclonedx', specVersion: '1.6', components: [{ name: 'lodash', licenses: ['MIT'] }] });
      expect(await meta.trust.getSbom('r', d(3))).toEqual({
        repo: 'r',
        digest: d(3),
        format: 'cyclonedx',
        specVersion: '1.6',
        components: [{ name: 'lodash', licenses: ['MIT'] }],
      });
      expect(await meta.trust.getNamespaceTrust('r')).toBeUndefined();
      await meta.trust.putNamespaceTrust('r', { sigstore: { publicKeys: [] } });
      await meta.trust.putNamespaceTrust('r', { sigstore: { publicKeys: [{ name: 'k' }] } });
      expect((await meta.trust.getNamespaceTrust('r'))?.document).toEqual({ sigstore: { publicKeys: [{ name: 'k' }] } });
      expect(await meta.trust.deleteNamespaceTrust('r')).toBe(true);
      expect(await meta.trust.deleteNamespaceTrust('r')).toBe(false);
      await meta.close();
    });

    it('lists the tags of a namespace that have a verified signature', async () => {
      const meta = await open();
      await pushTagged(meta, 'ns/app', d(10), 'signed');
      await pushTagged(meta, 'ns/app', d(11), 'unsigned');
      await pushTagged(meta, 'ns', d(12), 'top');
      await pushTagged(meta, 'nsx/app', d(10), 'other-namespace');
      for (const [repo, subject, sig, verified] of [
        ['ns/app', d(10), d(20), true],
        ['ns/app', d(11), d(21), false],
        ['ns', d(12), d(22), true],
        ['nsx/app', d(10), d(23), true],
      ] as const) {
        await meta.trust.recordArtifact({ repo, digest: sig, subject, kind: 'signature', format: 'cosign', via: 'referrer' });
        await meta.trust.setVerdict(repo, sig, {
          kind: 'signature',
          verified,
          code: verified ? 'verified' : 'untrusted_signer',
          reason: '',
          trustFingerprint: 'f',
        });
      }
      const tags = await meta.trust.signedTags('ns');
      expect(tags.map((t) => `${t.repository}:${t.tag}@${t.digest}`)).toEqual([`ns:top@${d(12)}`, `ns/app:signed@${d(10)}`]);
      expect(tags[0]?.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
      expect(await meta.trust.tagsOf('ns/app', d(10))).toEqual(['signed']);
      await meta.close();
    });
  });
}
