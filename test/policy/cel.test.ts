/** The CEL engine: the shared decision cases, and what it refuses when a policy is saved. */
import { describe, expect, it } from 'vitest';
import { compileCel } from '../../src/policy/cel.ts';
import { PolicyRejected } from '../../src/policy/engine.ts';
import { policyEngineSuite, sampleInput, type EngineCaseName } from '../suites/policy-engine.ts';

const policies: Record<EngineCaseName, string> = {
  'allow-all': 'false',
  'deny-all': 'true',
  'require-cost-center': '!("cost-center" in artifact.labels) && !("cost-center" in artifact.annotations)',
  'signed-by-release': '!trust.signatures.exists(s, s.verified && s.signer == "release@example.com")',
  'over-quota': 'ns.quotaBytes > 0 && ns.storedBytes > ns.quotaBytes',
  'forbidden-license': 'trust.sbom.components.exists(c, "AGPL-3.0-only" in c.licenses)',
  'no-wasi-sockets': 'artifact.wasm.imports.exists(i, i.startsWith("wasi:sockets/"))',
  'release-tags-maintenance-window': 'action == "delete" && artifact.tag.startsWith("v") && !(timestamp(request.time).getHours() in [2, 3])',
};

policyEngineSuite('CEL', async (name) => compileCel({ deny: policies[name] }));

function refusal(deny: string): PolicyRejected {
  try {
    compileCel({ deny });
  } catch (err) {
    if (err instanceof PolicyRejected) return err;
    throw err;
  }
  throw new Error(`${deny} was accepted`);
}

describe('CEL policies when saved', () => {
  it('refuses a syntax error with its position', () => {
    const err = refusal('artifact.labels["x" ');
    expect(err.message).toMatch(/^deny: .*RBRACKET/);
    expect(err.position).toEqual({ line: 1, column: 21 });
  });

  it('refuses a field the input does not document, naming it, at its position', () => {
    const err = refusal('artifact.lables["team"] == "x"');
    expect(err.message).toContain('lables');
    expect(err.position?.column).toBeGreaterThan(8);
    expect(refusal('trust.signatures.exists(s, s.signr == "x")').message).toContain('signr');
    expect(refusal('namespace.storedBytes > 1').message).toMatch(/namespace/);
  });

  it('refuses what the type check cannot see: has() of a field the input lacks, dyn() of the input', () => {
    // has() of a typo is false, never an error: it would never deny
    const typo = refusal('artifact.size > 0.0 &&\n  !has(artifact.lables.team)');
    expect(typo.message).toMatch(/^deny: has\(artifact\.lables\.team\) names a field the input does not have/);
    expect(typo.position).toEqual({ line: 2, column: 4 });
    expect(refusal('trust.signatures.exists(s, has(s.signr))').message).toContain('has(s.signr)');
    expect(refusal('dyn(artifact).lables == "x"').message).toMatch(/^deny: dyn\(artifact\): dyn\(\) of input fields is refused/);
    expect(refusal('trust.signatures.exists(s, dyn(s).signr == "x")').position).toEqual({ line: 1, column: 28 });
    // has() of a map key, or of a documented field, and dyn() of what is not the input, are fine
    for (const deny of ['has(artifact.labels.team)', 'trust.signatures.exists(s, has(s.signer))', 'has(request.identity.teams)', 'dyn(1) == 1'])
      expect(() => compileCel({ deny }), deny).not.toThrow();
    expect(compileCel({ deny: '!has(artifact.labels.team)' }).evaluate(sampleInput({ artifact: { labels: { team: 'a' } } }))).toEqual({ deny: false });
  });

  it('refuses an expression that is not a bool', () => {
    expect(refusal('artifact.size').message).toContain('must be a bool');
    expect(refusal('"yes"').message).toContain('must be a bool');
  });

  it('refuses an expression whose cost could explode, when saved', () => {
    const err = refusal('trust.sbom.components.exists(a, trust.sbom.components.exists(b, a.name == b.name))');
    expect(err.message).toContain('over the limit');
    // one loop over the components is fine
    expect(() => compileCel({ deny: 'trust.sbom.components.exists(a, a.name == "x")' })).not.toThrow();
  });

  it('refuses huge and deeply nested expressions', () => {
    expect(refusal(Array.from({ length: 2000 }, (_, i) => `artifact.size == ${i}.0`).join(' || ')).message).toMatch(/longer than|maxAstNodes/);
    expect(refusal(`${'('.repeat(100)}true${')'.repeat(100)}`).message).toMatch(/maxDepth/);
  });

  it('refuses a matches() pattern that is not RE2, and runs matches() on RE2', () => {
    expect(refusal('artifact.repository.matches("(a")').message).toContain('RE2');
    expect(refusal('artifact.repository.matches("(a)\\\\1")').message).toContain('RE2'); // backreferences are not RE2
    const policy = compileCel({ deny: 'artifact.annotations["note"].matches("^(a+)+$")' });
    // exponential on a backtracking engine; linear on RE2
    const input = sampleInput({ artifact: { annotations: { note: `${'a'.repeat(5000)}!` } } });
    expect(policy.evaluate(input)).toEqual({ deny: false });
  });

  it('tells which input sections a policy reads', () => {
    expect([...compileCel({ deny: 'artifact.size > 1.0 && request.identity.name == "x"' }).reads].sort()).toEqual(['artifact', 'request']);
    expect([...compileCel({ deny: 'true' }).reads]).toEqual([]);
  });

  it('tells which request fields a policy reads, and how finely it reads the time', () => {
    const reads = (deny: string) => {
      const r = compileCel({ deny }).request!;
      return [[...r.fields].sort().join(' '), r.timeBucketMs];
    };
    expect(reads('artifact.tag == "v1"')).toEqual(['', 1]);
    expect(reads('request.identity.name == "mallory" || timestamp(request.time).getHours() > 24')).toEqual(['identity.name time', 3_600_000]);
    expect(reads('timestamp(request.time).getDayOfWeek() == 0')).toEqual(['time', 86_400_000]);
    // the finest use decides; a zone reads by the minute
    expect(reads('timestamp(request.time).getMinutes() == 3 && timestamp(request.time).getFullYear() > 2000')).toEqual(['time', 60_000]);
    expect(reads('timestamp(request.time).getHours("Europe/Berlin") < 2')).toEqual(['time', 60_000]);
    // any other use reads the time as it is
    expect(reads('timestamp(request.time) > timestamp("2026-01-01T00:00:00Z")')).toEqual(['time', 1]);
    expect(reads('request.time.startsWith("2026")')).toEqual(['time', 1]);
    expect(reads('cel.bind(t, request.time, timestamp(t).getHours() > 3)')).toEqual(['time', 1]);
    expect(reads('timestamp(request.time).getHours() > 3 || request.time == ""')).toEqual(['time', 1]);
    expect(reads('request.identity.teams.exists(t, t == "x") && request.userAgent != ""')).toEqual(['identity.teams userAgent', 1]);
    // a variable named request reads the whole section (so does request itself)
    expect(reads('["x"].exists(request, request == "x")')[0]).toBe(
      'identity.admin identity.kind identity.name identity.roles identity.teams repository sourceAddress time tokenKind userAgent',
    );
  });

  it('reads labels, annotations and namespace labels named "constructor" (or __proto__) as the maps they are', () => {
    const labels = JSON.parse('{"constructor":"x","__proto__":"y","cost-center":"cc-1"}') as Record<string, string>;
    const costCenter = compileCel({ deny: policies['require-cost-center'] });
    expect(costCenter.evaluate(sampleInput({ artifact: { labels } }))).toEqual({ deny: false });
    expect(costCenter.evaluate(sampleInput({ artifact: { labels: { constructor: 'x' }, annotations: { constructor: 'y' } } }))).toEqual({
      deny: true,
      messages: [],
    });
    const reads = compileCel({
      deny: 'artifact.labels["constructor"] == "x" && size(artifact.labels) == 3 && artifact.labels.exists(k, k == "__proto__") && "constructor" in artifact.annotations && ns.labels["constructor"] == "z"',
    });
    expect(reads.evaluate(sampleInput({ artifact: { labels, annotations: { constructor: '' } }, ns: { labels: { constructor: 'z' } } }))).toEqual({
      deny: true,
      messages: [],
    });
  });

  it('reads the time of a request as a timestamp', () => {
    const policy = compileCel({ deny: 'timestamp(request.time).getHours() < 2' });
    expect(policy.evaluate(sampleInput({ request: { time: '2026-12-02T01:30:00Z' } }))).toEqual({ deny: true, messages: [] });
    expect(policy.evaluate(sampleInput({ request: { time: '2026-12-02T12:30:00Z' } }))).toEqual({ deny: false });
  });
});
