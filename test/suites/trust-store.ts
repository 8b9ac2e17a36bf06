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
