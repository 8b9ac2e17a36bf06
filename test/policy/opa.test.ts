/**
 * The OPA Wasm engine end to end: compileOpa reads a bundle (or a bare policy.wasm), checks the
 * module and loads it into a worker pool. The shared decision cases run through it for ABI 1.1,
 * 1.2 and 1.3, each case its own WAT module (test/policy/wat/); then what a decision's result
 * means, the data document, built-ins, and what compileOpa refuses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyRejected } from '../../src/policy/engine.ts';
import { sections } from '../../src/policy/input-schema.ts';
import { compileOpa, createOpaPool, type OpaPool } from '../../src/policy/opa/index.ts';
import { policyEngineSuite, sampleInput } from '../suites/policy-engine.ts';
import { buildModule, bundle, casePolicies, type ModuleOptions } from './opa-wat.ts';

let pool: OpaPool;
beforeAll(() => {
  pool = createOpaPool({ size: 2 });
});
afterAll(async () => {
  await pool.close();
});

for (const minor of [1, 2, 3]) {
  policyEngineSuite(`OPA Wasm, ABI 1.${minor}`, async (name) => {
    const { policy, data, builtins } = casePolicies[name];
    const wasm = await buildModule(policy, { abi: [1, minor], ...(builtins ? { builtins } : {}) });
    // ABI 1.2 modules without data come bare, the rest as bundles: both ways in are run
    return compileOpa({ entrypoint: 'custody/deny' }, minor === 2 && data === undefined ? wasm : bundle(wasm, data), pool);
  });
}

async function compiled(policy: string, data?: unknown, o: ModuleOptions = {}) {
  return compileOpa({ entrypoint: 'custody/deny' }, bundle(await buildModule(policy, o), data), pool);
}

async function refusal(bytes: Uint8Array, entrypoint = 'custody/deny'): Promise<string> {
  try {
    const policy = await compileOpa({ entrypoint }, bytes, pool);
    await policy.close();
  } catch (err) {
    if (err instanceof PolicyRejected) return err.message;
    throw err;
  }
  throw new Error('the policy was accepted');
}

describe('OPA Wasm policies', () => {
  const input = sampleInput();

  it('reads every input section, and says what the module is', async () => {
    const policy = await compiled('forbidden-license', { forbidden: 'MIT' }, { abi: [1, 3] });
    expect([...policy.reads].sort()).toEqual([...sections].sort());
    expect(policy.module).toEqual({ abi: '1.3', builtins: [], entrypoints: ['custody/deny'], data: true });
    await policy.close();
  });

  it('decides on its data document: the same module with other data denies other artifacts', async () => {
    const sbom = (licenses: string[]) => ({
      present: true,
      format: 'cyclonedx',
      componentCount: 1,
      licenses,
      components: [{ name: 'lib', version: '1', purl: '', licenses }],
    });
    const mit = sampleInput({ trust: { sbom: sbom(['MIT']) } });
    const agpl = sampleInput({ trust: { sbom: sbom(['AGPL-3.0-only']) } });
    const forbidMit = await compiled('forbidden-license', { forbidden: 'MIT' });
    const forbidAgpl = await compiled('forbidden-license', { forbidden: 'AGPL-3.0-only' });
    const noData = await compiled('forbidden-license');
    expect([(await forbidMit.evaluate(mit)).deny, (await forbidMit.evaluate(agpl)).deny]).toEqual([true, false]);
    expect([(await forbidAgpl.evaluate(mit)).deny, (await forbidAgpl.evaluate(agpl)).deny]).toEqual([false, true]);
    expect((await noData.evaluate(agpl)).deny).toBe(false);
    await Promise.all([forbidMit.close(), forbidAgpl.close(), noData.close()]);
  });

  it('reads each shape of result into an outcome, and fails on one it cannot read', async () => {
    const shapes: [unknown, unknown][] = [
      [true, { deny: true, messages: [] }],
      [false, { deny: false }],
      [['unsigned', 'no SBOM'], { deny: true, messages: ['unsigned', 'no SBOM'] }],
      [[{ msg: 'unsigned', details: { signer: '' } }], { deny: true, messages: ['unsigned'] }],
      [
        { deny: true, messages: ['over quota'] },
        { deny: true, messages: ['over quota'] },
      ],
      [{ deny: false }, { deny: false }],
    ];
    for (const [decision, outcome] of shapes) {
      const policy = await compiled('echo-data', decision);
      expect(await policy.evaluate(input), JSON.stringify(decision)).toEqual(outcome);
      await policy.close();
    }
    const undefinedDecision = await compileOpa({ entrypoint: 'custody/deny' }, await buildModule('undefined'), pool);
    expect(await undefinedDecision.evaluate(input)).toEqual({ deny: false });
    await undefinedDecision.close();
    const unreadable = await compiled('echo-data', { allow: false });
    await expect(unreadable.evaluate(input)).rejects.toThrow(/the decision object has "allow"; Custody reads only "deny" and "messages"/);
    await unreadable.close();
  });

  it('gives built-ins the request time as time.now_ns', async () => {
    const policy = await compiled('builtins', 'denied at %d', { builtins: { 'time.now_ns': 0, sprintf: 1 } });
    expect(policy.module.builtins).toEqual(['time.now_ns', 'sprintf']);
    expect(await policy.evaluate(sampleInput({ request: { time: '2026-12-02T12:00:00.5Z' } }))).toEqual({
      deny: true,
      messages: ['denied at 1796212800500000000'],
    });
    await policy.close();
  });

  it('refuses, when saved, what cannot serve as a policy, with PolicyRejected saying why', async () => {
    expect(await refusal(new TextEncoder().encode('package custody\ndeny := true'))).toMatch(/neither an OPA bundle/);
    expect(await refusal(bundle(await buildModule('allow-all', { imports: '(import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))' })))).toMatch(
      /imports wasi_snapshot_preview1\.proc_exit, which OPA's Wasm ABI does not provide/,
    );
    expect(await refusal(bundle(await buildModule('allow-all', { abi: [1, 0] })))).toMatch(/ABI 1\.0/);
    expect(await refusal(bundle(await buildModule('allow-all', { builtins: { 'http.send': 0 } })))).toMatch(
      /needs the built-in http\.send, which Custody does not provide/,
    );
    expect(await refusal(bundle(await buildModule('allow-all')), 'custody/allow')).toMatch(/no entrypoint custody\/allow; it has custody\/deny/);
  });

  it('fails an evaluation after the policy is closed', async () => {
    const policy = await compiled('allow-all');
    await policy.close();
    await expect(policy.evaluate(input)).rejects.toThrow(/closed/);
  });
});
