/**
 * The one policy engine suite: the same decision cases through every engine (CEL, OPA Wasm), as
 * the storage and metadata suites run every backend. An engine passes a case by compiling the
 * policy it was given for that case's name and deciding every input of the case as expected.
 *
 * The inputs are whole, valid v1 input documents (validated against the schema in
 * test/policy-input.test.ts); `sampleInput` builds one with overrides per section.
 */
import { describe, expect, it } from 'vitest';
import type { CompiledPolicy } from '../../src/policy/engine.ts';
import { inputVersion, type PolicyInput } from '../../src/policy/input-schema.ts';

type Overrides = { [S in keyof PolicyInput]?: PolicyInput[S] extends object ? Partial<PolicyInput[S]> : PolicyInput[S] };

export function sampleInput(overrides: Overrides = {}): PolicyInput {
  const base: PolicyInput = {
    version: inputVersion,
    action: 'push',
    artifact: {
      repository: 'team/app',
      namespace: 'team',
      digest: `sha256:${'a'.repeat(64)}`,
      tag: 'v1.0.0',
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.oci.image.config.v1+json',
      size: 4096,
      labels: {},
      annotations: {},
      created: '2026-12-01T10:00:00Z',
      platforms: [{ os: 'linux', architecture: 'amd64', variant: '' }],
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${'b'.repeat(64)}`, size: 3000 }],
      subject: '',
      wasm: { component: false, imports: [], exports: [], complete: false },
    },
    trust: { signatures: [], attestations: [], sbom: { present: false, format: '', componentCount: 0, licenses: [], components: [] } },
    ns: { name: 'team', storedBytes: 1000, quotaBytes: 0, labels: {}, budget: 0, costThisMonth: 0 },
    request: {
      repository: 'team/app',
      identity: { name: 'alice', kind: 'user', admin: false, teams: [], roles: ['writer'] },
      tokenKind: 'jwt',
      userAgent: 'skopeo/1.18',
      sourceAddress: '127.0.0.1',
      time: '2026-12-02T12:00:00Z',
    },
  };
  const merged = { ...base } as Record<string, unknown>;
  for (const [key, value] of Object.entries(overrides)) {
    const current = merged[key];
    merged[key] = current && typeof current === 'object' && value && typeof value === 'object' ? { ...current, ...value } : value;
  }
  return merged as unknown as PolicyInput;
}

const releaseSignature = { format: 'cosign', signer: 'release@example.com', issuer: '', verified: true, code: 'verified' };
const sbomWith = (licenses: string[]) => ({
  present: true,
  format: 'cyclonedx',
  componentCount: licenses.length,
  licenses,
  components: licenses.map((l, i) => ({ name: `lib${i}`, version: '1.0', purl: `pkg:npm/lib${i}@1.0`, licenses: [l] })),
});

/** A case: what the policy must do, and the inputs with the decision each must get. */
export interface EngineCase {
  does: string;
  inputs: { input: PolicyInput; deny: boolean }[];
}

/** The cases every engine must decide; each engine brings a policy per case name. */
export const engineCases = {
  'allow-all': { does: 'denies nothing', inputs: [{ input: sampleInput(), deny: false }] },
  'deny-all': { does: 'denies everything', inputs: [{ input: sampleInput(), deny: true }] },
  'require-cost-center': {
    does: 'denies a push without a cost-center label or annotation',
    inputs: [
      { input: sampleInput(), deny: true },
      { input: sampleInput({ artifact: { labels: { 'cost-center': 'cc-1' } } }), deny: false },
      { input: sampleInput({ artifact: { annotations: { 'cost-center': 'cc-2' } } }), deny: false },
    ],
  },
  'signed-by-release': {
    does: 'denies an artifact without a verified signature by release@example.com',
    inputs: [
      { input: sampleInput({ action: 'pull' }), deny: true },
      { input: sampleInput({ action: 'pull', trust: { signatures: [{ ...releaseSignature, verified: false, signer: '' }] } }), deny: true },
      { input: sampleInput({ action: 'pull', trust: { signatures: [{ ...releaseSignature, signer: 'mallory@example.com' }] } }), deny: true },
      { input: sampleInput({ action: 'pull', trust: { signatures: [releaseSignature] } }), deny: false },
    ],
  },
  'over-quota': {
    does: 'denies a push that takes the namespace over its quota',
    inputs: [
      { input: sampleInput({ ns: { quotaBytes: 0, storedBytes: 5000 } }), deny: false },
      { input: sampleInput({ ns: { quotaBytes: 10000, storedBytes: 5000 } }), deny: false },
      { input: sampleInput({ ns: { quotaBytes: 10000, storedBytes: 10001 } }), deny: true },
    ],
  },
  'forbidden-license': {
    does: 'denies an artifact whose SBOM lists a component under AGPL-3.0-only',
    inputs: [
      { input: sampleInput({ action: 'pull' }), deny: false },
      { input: sampleInput({ action: 'pull', trust: { sbom: sbomWith(['MIT', 'Apache-2.0']) } }), deny: false },
      { input: sampleInput({ action: 'pull', trust: { sbom: sbomWith(['MIT', 'AGPL-3.0-only']) } }), deny: true },
    ],
  },
  'no-wasi-sockets': {
    does: 'denies a Wasm component that imports wasi:sockets',
    inputs: [
      { input: sampleInput({ artifact: { wasm: { component: true, imports: ['wasi:cli/environment@0.2.0'], exports: [], complete: true } } }), deny: false },
      {
        input: sampleInput({
          artifact: { wasm: { component: true, imports: ['wasi:cli/environment@0.2.0', 'wasi:sockets/tcp@0.2.0'], exports: [], complete: true } },
        }),
        deny: true,
      },
    ],
  },
  'release-tags-maintenance-window': {
    does: 'denies a delete of a v* tag outside the maintenance window, 02:00 to 04:00 UTC by request.time',
    inputs: [
      ...(
        [
          ['2026-12-02T12:00:00Z', true],
          ['2026-12-02T01:59:59.999Z', true],
          ['2026-12-02T02:00:00.000Z', false],
          ['2026-12-02T03:59:59.999Z', false],
          ['2026-12-02T04:00:00.000Z', true],
          // an offset is read as the instant it names: 02:30 UTC
          ['2026-12-02T04:30:00+02:00', false],
        ] as const
      ).map(([time, deny]) => ({ input: sampleInput({ action: 'delete', request: { time } }), deny })),
      // a tag that does not match v*, or a manifest deleted by digest, outside the window too
      { input: sampleInput({ action: 'delete', artifact: { tag: 'latest' } }), deny: false },
      { input: sampleInput({ action: 'delete', artifact: { tag: 'V1' } }), deny: false },
      { input: sampleInput({ action: 'delete', artifact: { tag: '' } }), deny: false },
      { input: sampleInput({ action: 'delete', artifact: { tag: 'version-2' } }), deny: true },
      // a label named tag that is v*, beside a tag that is not: the policy reads artifact.tag
      { input: sampleInput({ action: 'delete', artifact: { tag: 'latest', labels: { tag: 'v1' } } }), deny: false },
      // deletes only: a pull or push of a v* tag outside the window is not this policy's
      { input: sampleInput({ action: 'pull' }), deny: false },
      { input: sampleInput({ action: 'push' }), deny: false },
    ],
  },
} satisfies Record<string, EngineCase>;

export type EngineCaseName = keyof typeof engineCases;

export function policyEngineSuite(engine: string, compile: (name: EngineCaseName) => Promise<CompiledPolicy>): void {
  describe(`policy engine: ${engine}`, () => {
    for (const [name, c] of Object.entries(engineCases) as [EngineCaseName, EngineCase][]) {
      it(`${name}: ${c.does}`, async () => {
        const policy = await compile(name);
        try {
          const decided = [];
          for (const { input } of c.inputs) decided.push((await policy.evaluate(input)).deny);
          expect(decided).toEqual(c.inputs.map((i) => i.deny));
        } finally {
          await policy.close?.();
        }
      });
    }
  });
}
