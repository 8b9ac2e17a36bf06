/** Target naming: signed tags to TUF targets, and target file URLs back to manifests. */
import { describe, expect, it } from 'vitest';
import type { SignedTag } from '../src/trust/tuf/index.ts';
import { parseTargetFile, targetFiles } from '../src/trust/tuf/targets.ts';

const sha256 = `sha256:${'a'.repeat(64)}`;
const sha512 = `sha512:${'b'.repeat(128)}`;
const tag = (repository: string, name: string, digest = sha256, size = 42): SignedTag => ({
  repository,
  tag: name,
  digest,
  size,
  mediaType: 'application/vnd.oci.image.index.v1+json',
});

describe('targetFiles', () => {
  it('names each tag <repository>:<tag> with the manifest digest as its hash', () => {
    const files = targetFiles('team', [tag('team/app', '1.0'), tag('team', 'base', sha512, 7)]);
    expect(Object.keys(files).sort()).toEqual(['team/app:1.0', 'team:base']);
    expect(files['team/app:1.0']!.toJSON()).toEqual({
      length: 42,
      hashes: { sha256: 'a'.repeat(64) },
      custom: { mediaType: 'application/vnd.oci.image.index.v1+json', repository: 'team/app', tag: '1.0' },
    });
    expect(files['team:base']!.hashes).toEqual({ sha512: 'b'.repeat(128) });
  });

  it('leaves out, and reports, what cannot be a target of the namespace', () => {
    const skipped: string[] = [];
    const files = targetFiles(
      'team',
      [
        tag('teamx/app', '1'),
        tag('other/app', '1'),
        tag('team/App', '1'),
        tag('team/app', '.bad'),
        tag('team/app', 'x', 'md5:abc'),
        tag('team/app', 'y', sha256, -1),
        tag('team/ok', '1'),
      ],
      (t, why) => skipped.push(`${t.repository}:${t.tag} ${why}`),
    );
    expect(Object.keys(files)).toEqual(['team/ok:1']);
    expect(skipped).toHaveLength(6);
  });
});

describe('parseTargetFile', () => {
  it('reads <dirs>/<hex>.<base>:<tag> back into repository, tag and digest', () => {
    expect(parseTargetFile('team', ['team', 'tools', `${'a'.repeat(64)}.cli:v1.2`])).toEqual({ repository: 'team/tools/cli', tag: 'v1.2', digest: sha256 });
    expect(parseTargetFile('team', [`${'b'.repeat(128)}.team:base`])).toEqual({ repository: 'team', tag: 'base', digest: sha512 });
  });

  it('refuses anything else', () => {
    for (const segments of [
      [],
      ['team', `${'a'.repeat(64)}.app`],
      ['team', `${'a'.repeat(63)}.app:1`],
      ['team', `${'A'.repeat(64)}.app:1`],
      ['other', `${'a'.repeat(64)}.app:1`],
      [`${'a'.repeat(64)}.teamx:1`],
      ['team', `${'a'.repeat(64)}.app:1:2`],
      ['team', `${'a'.repeat(64)}.app:-x`],
      ['team', `${'a'.repeat(64)}.App:1`],
    ]) {
      expect(parseTargetFile('team', segments), segments.join('/')).toBeUndefined();
    }
  });
});
