/** In-toto statements: v0.1 and v1, SLSA provenance v0.2 and v1 as GitHub Actions writes them, SBOM predicates. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { attestationKind, parseStatement, sourceRepository, statementCovers, StatementError, type Statement } from '../../src/trust/intoto.ts';
import type { SignedPayload } from '../../src/trust/verdict.ts';

const IN_TOTO = 'application/vnd.in-toto+json';
const fixture = (name: string): Uint8Array => readFileSync(new URL(`./fixtures/${name}`, import.meta.url));
const signed = (payload: unknown, payloadType = IN_TOTO): SignedPayload => ({
  payloadType,
  payload: payload instanceof Uint8Array ? payload : new TextEncoder().encode(JSON.stringify(payload)),
});
const json = (name: string): Record<string, unknown> => {
  const v: unknown = JSON.parse(new TextDecoder().decode(fixture(name)));
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${name} is not an object`);
  return { ...v };
};

const IMAGE = 'sha256:7d3b3f6a4c1e2d9f8b0a5c6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2';

function expectStatementError(run: () => unknown, message: RegExp): void {
  let thrown: unknown;
  try {
    run();
  } catch (e) {
    thrown = e;
  }
  if (!(thrown instanceof StatementError)) throw new Error(`expected a StatementError, got ${String(thrown)}`);
  expect(thrown.message).toMatch(message);
}

describe('SLSA provenance', () => {
  it('v1 from GitHub Actions (actions/attest-build-provenance)', () => {
    const s = parseStatement(signed(fixture('intoto/slsa-v1-github.json')));
    expect(s.type).toBe('https://in-toto.io/Statement/v1');
    expect(s.predicateType).toBe('https://slsa.dev/provenance/v1');
    expect(s.subjects).toEqual([{ name: 'ghcr.io/acme/api', digest: { sha256: IMAGE.slice(7) } }]);
    expect(s.provenance).toEqual({
      builderId: 'https://github.com/acme/api/.github/workflows/release.yml@refs/heads/main',
      buildType: 'https://actions.github.io/buildtypes/workflow/v1',
      sourceRepository: 'https://github.com/acme/api',
      sourceDigest: 'gitCommit:a94a8fe5ccb19ba61c4c0873d391e987982fbbd3',
    });
    expect(s.sbom).toBeUndefined();
    expect(statementCovers(s, IMAGE)).toBe(true);
  });

  it('v0.2 from slsa-github-generator: builder, build type, config source with its commit', () => {
    const s = parseStatement(signed(fixture('intoto/slsa-v0.2-github.json')));
    expect(s.type).toBe('https://in-toto.io/Statement/v0.1');
    expect(s.provenance).toEqual({
      builderId: 'https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v1.10.0',
      buildType: 'https://github.com/slsa-framework/slsa-github-generator/container@v1',
      sourceRepository: 'https://github.com/acme/api',
      sourceDigest: 'sha1:de9f2c7fd25e1b3afad3e85a0bd17d9b100db4b3',
    });
  });

  it('v0.2 without a config source falls back to the first material', () => {
    const statement = json('intoto/slsa-v0.2-github.json');
    statement.predicate = {
      builder: { id: 'https://cloudbuild.googleapis.com/GoogleHostedWorker' },
      buildType: 'https://cloudbuild.googleapis.com/CloudBuildYaml@v0.1',
      materials: [{ uri: 'https://github.com/acme/tools.git', digest: { sha1: '1111111111111111111111111111111111111111' } }],
    };
    expect(parseStatement(signed(statement)).provenance).toEqual({
      builderId: 'https://cloudbuild.googleapis.com/GoogleHostedWorker',
      buildType: 'https://cloudbuild.googleapis.com/CloudBuildYaml@v0.1',
      sourceRepository: 'https://github.com/acme/tools',
      sourceDigest: 'sha1:1111111111111111111111111111111111111111',
    });
  });

  it('v1 with externalParameters.source, or only resolved dependencies', () => {
    const statement = json('intoto/slsa-v1-github.json');
    statement.predicate = {
      buildDefinition: {
        buildType: 'https://example.com/build/v1',
        externalParameters: { source: { uri: 'git+https://gitlab.com/acme/lib.git@refs/tags/v2', digest: { sha1: 'abc' } } },
      },
      runDetails: { builder: { id: 'https://example.com/builder' } },
    };
    expect(parseStatement(signed(statement)).provenance).toEqual({
      builderId: 'https://example.com/builder',
      buildType: 'https://example.com/build/v1',
      sourceRepository: 'https://gitlab.com/acme/lib',
      sourceDigest: 'sha1:abc',
    });
    statement.predicate = {
      buildDefinition: {
        externalParameters: { source: 'git+https://gitlab.com/acme/lib' },
        resolvedDependencies: [
          { uri: 'pkg:golang/stdlib@1.22', digest: { sha256: 'ff' } },
          { uri: 'git+https://gitlab.com/acme/lib@refs/heads/main', digest: { gitCommit: 'c0ffee' } },
        ],
      },
    };
    expect(parseStatement(signed(statement)).provenance).toEqual({ sourceRepository: 'https://gitlab.com/acme/lib', sourceDigest: 'gitCommit:c0ffee' });
    statement.predicate = {
      buildDefinition: {
        resolvedDependencies: [
          { uri: 'git+https://github.com/o/r@0123456789abcdef0123456789abcdef01234567', digest: { sha1: '0123456789abcdef0123456789abcdef01234567' } },
        ],
      },
    };
    expect(parseStatement(signed(statement)).provenance).toEqual({
      sourceRepository: 'https://github.com/o/r',
      sourceDigest: 'sha1:0123456789abcdef0123456789abcdef01234567',
    });
  });

  it('fields of the wrong type read as absent, never as an error', () => {
    const statement = json('intoto/slsa-v1-github.json');
    statement.predicate = {
      buildDefinition: { buildType: 7, externalParameters: 'x', resolvedDependencies: [null, { uri: 5 }] },
      runDetails: { builder: { id: 'b' } },
    };
    expect(parseStatement(signed(statement)).provenance).toEqual({ builderId: 'b' });
    statement.predicate = 'not an object';
    expect(parseStatement(signed(statement)).provenance).toEqual({});
  });

  it('source URLs: git+ prefixes, refs, commits, .git and trailing slashes go', () => {
    expect(sourceRepository('git+https://github.com/o/r@refs/heads/main')).toBe('https://github.com/o/r');
    expect(sourceRepository('git+https://github.com/o/r.git@refs/tags/v1.0.0')).toBe('https://github.com/o/r');
    expect(sourceRepository('git+ssh://git@github.com/o/r.git')).toBe('ssh://git@github.com/o/r');
    expect(sourceRepository('https://github.com/o/r/')).toBe('https://github.com/o/r');
    expect(sourceRepository('https://github.com/o/r@a94a8fe5ccb19ba61c4c0873d391e987982fbbd3')).toBe('https://github.com/o/r');
  });
});

describe('SBOM predicates', () => {
  it('CycloneDX in a v0.1 statement (cosign attest --type cyclonedx)', () => {
    const s = parseStatement(signed(fixture('intoto/cyclonedx-statement.json')));
    expect(s.provenance).toBeUndefined();
    expect(s.sbom).toMatchObject({ format: 'cyclonedx', specVersion: '1.5', name: 'registry.example.com/acme/worker:2.0.1' });
    expect(s.sbom?.components.map((c) => [c.name, c.licenses])).toEqual([
      ['zlib1g', ['Zlib']],
      ['flask', ['BSD-3-Clause']],
    ]);
    expect(s.sbomError).toBeUndefined();
  });

  it('SPDX 2.3 in a v1 statement (actions/attest-sbom), also as a JSON string', () => {
    const spdx: unknown = JSON.parse(new TextDecoder().decode(fixture('sbom/spdx-2.3-syft.json')));
    const statement = {
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'alpine', digest: { sha256: IMAGE.slice(7) } }],
      predicateType: 'https://spdx.dev/Document/v2.3',
      predicate: spdx,
    };
    const s = parseStatement(signed(statement));
    expect(s.sbom).toMatchObject({ format: 'spdx', specVersion: '2.3', name: 'alpine' });
    expect(s.sbom?.components).toHaveLength(6);
    const asString = parseStatement(signed({ ...statement, predicateType: 'https://spdx.dev/Document', predicate: JSON.stringify(spdx) }));
    expect(asString.sbom).toEqual(s.sbom);
  });

  it('an SBOM predicate that cannot be read keeps the statement, without sbom, saying why', () => {
    const statement = json('intoto/cyclonedx-statement.json');
    statement.predicateType = 'https://cyclonedx.org/bom/v1.6';
    statement.predicate = { bomFormat: 'CycloneDX', specVersion: '1.1', components: [] };
    const s = parseStatement(signed(statement));
    expect(s.sbom).toBeUndefined();
    expect(s.sbomError).toMatch(/unsupported CycloneDX specVersion "1\.1"/);
    expect(statementCovers(s, 'sha256:0e1c6a7b2d3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3')).toBe(true);
    // an SPDX predicate type holding a CycloneDX document is not read as one
    statement.predicateType = 'https://spdx.dev/Document';
    statement.predicate = json('sbom/cyclonedx-1.6.json');
    expect(parseStatement(signed(statement)).sbomError).toMatch(/not an SPDX document/);
  });
});

describe('statements', () => {
  it('refuses a payload that is not an in-toto statement', () => {
    expectStatementError(
      () => parseStatement(signed(fixture('intoto/slsa-v1-github.json'), 'application/vnd.dev.cosign.simplesigning.v1+json')),
      /^payloadType is "application\/vnd\.dev\.cosign\.simplesigning\.v1\+json", expected application\/vnd\.in-toto\+json$/,
    );
    expectStatementError(() => parseStatement(signed(new TextEncoder().encode('{"_type":'))), /the payload is not JSON/);
    expectStatementError(() => parseStatement(signed(new Uint8Array([0xc3, 0x28]))), /the payload is not JSON/);
    expectStatementError(() => parseStatement(signed([1, 2])), /not a JSON object/);
    expectStatementError(
      () => parseStatement(signed({ subject: [] })),
      /_type is missing, expected https:\/\/in-toto\.io\/Statement\/v0\.1 or https:\/\/in-toto\.io\/Statement\/v1/,
    );
    expectStatementError(() => parseStatement(signed({ _type: 'https://in-toto.io/Statement/v2' })), /_type is "https:\/\/in-toto\.io\/Statement\/v2"/);
  });

  it('refuses statements without subjects, digests or predicate type', () => {
    const base = json('intoto/slsa-v1-github.json');
    expectStatementError(() => parseStatement(signed({ ...base, subject: [] })), /subject: a statement needs at least one subject/);
    expectStatementError(() => parseStatement(signed({ ...base, subject: [{ name: 'x', digest: {} }] })), /subject\[0\]\.digest: digest is empty/);
    expectStatementError(() => parseStatement(signed({ ...base, subject: [{ name: 'x', digest: { sha256: 5 } }] })), /subject\[0\]\.digest\.sha256/);
    expectStatementError(() => parseStatement(signed({ ...base, predicateType: undefined })), /predicateType/);
  });

  it('a v1 subject may leave out its name', () => {
    const s = parseStatement(
      signed({
        _type: 'https://in-toto.io/Statement/v1',
        subject: [{ digest: { sha512: 'AB'.repeat(64) } }],
        predicateType: 'https://example.com/test-result/v1',
      }),
    );
    expect(s.subjects).toEqual([{ name: '', digest: { sha512: 'AB'.repeat(64) } }]);
    expect(s.predicate).toBeUndefined();
    expect(s.provenance).toBeUndefined();
  });
});

describe('statementCovers', () => {
  const statement: Statement = {
    type: 'https://in-toto.io/Statement/v1',
    predicateType: 'https://slsa.dev/provenance/v1',
    subjects: [
      { name: 'a', digest: { sha256: IMAGE.slice(7).toUpperCase() } },
      { name: 'b', digest: { sha512: 'ab'.repeat(64), sha256: '00'.repeat(32) } },
    ],
    predicate: {},
  };

  it('matches sha256 and sha512 subjects, hex case ignored', () => {
    expect(statementCovers(statement, IMAGE)).toBe(true);
    expect(statementCovers(statement, `sha512:${'AB'.repeat(64)}`)).toBe(true);
    expect(statementCovers(statement, `sha256:${'00'.repeat(32)}`)).toBe(true);
  });

  it('does not match other digests, algorithms or malformed digests', () => {
    expect(statementCovers(statement, `sha256:${'11'.repeat(32)}`)).toBe(false);
    expect(statementCovers(statement, `sha512:${IMAGE.slice(7)}`)).toBe(false);
    expect(statementCovers(statement, IMAGE.slice(7))).toBe(false);
    expect(statementCovers(statement, 'sha256:')).toBe(false);
    expect(statementCovers(statement, `sha256:${IMAGE.slice(7, 40)}`)).toBe(false);
    expect(statementCovers(statement, `sha1:${'ab'.repeat(20)}`)).toBe(false);
    expect(statementCovers(statement, `sha512:${'zz'.repeat(64)}`)).toBe(false);
  });
});

describe('attestationKind', () => {
  it.each([
    ['https://slsa.dev/provenance/v0.2', 'provenance'],
    ['https://slsa.dev/provenance/v1', 'provenance'],
    ['https://cyclonedx.org/bom', 'sbom'],
    ['https://cyclonedx.org/bom/v1.6', 'sbom'],
    ['https://spdx.dev/Document', 'sbom'],
    ['https://spdx.dev/Document/v2.3', 'sbom'],
    ['https://cosign.sigstore.dev/attestation/vuln/v1', 'vuln'],
    ['https://in-toto.io/attestation/vulns/v0.1', 'vuln'],
    ['https://openvex.dev/ns/v0.2.0', 'vuln'],
    ['https://cosign.sigstore.dev/attestation/v1', 'other'],
    ['https://in-toto.io/attestation/test-result/v0.1', 'other'],
    ['https://slsa.dev/provenance/v1/extra', 'other'],
    ['', 'other'],
  ] as const)('%s is %s', (type, kind) => {
    expect(attestationKind(type)).toBe(kind);
  });
});
