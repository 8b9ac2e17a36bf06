/**
 * The host side of OPA's Wasm ABI, in this process (the pool's workers run the same code): every
 * engine case's module decides as expected under ABI 1.1, 1.2 and 1.3, and gives the same result
 * set as @open-policy-agent/opa-wasm gets from the same module, so the test modules and the host
 * read the ABI as OPA's own SDK does. Then what it refuses when loading, and how evaluations fail.
 */
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import { describe, expect, it } from 'vitest';
import { parseRfc3339Ns } from '../../src/policy/opa/builtins.ts';
import { EvaluationFailed, LoadRefused, OpaInstance, type HostLimits } from '../../src/policy/opa/host.ts';
import { compileModule } from '../../src/policy/opa/module.ts';
import { decide } from '../../src/policy/opa/result.ts';
import { engineCases, sampleInput, type EngineCaseName } from '../suites/policy-engine.ts';
import { buildModule, casePolicies, type ModuleOptions } from './opa-wat.ts';

async function instance(policy: string, o: ModuleOptions = {}, data?: unknown, limits?: HostLimits): Promise<OpaInstance> {
  const { module, facts } = await compileModule(await buildModule(policy, o), limits?.memoryPages ?? 256);
  return OpaInstance.load(
    {
      module,
      abiMinor: facts.abi.minor,
      memoryMinPages: facts.memoryMinPages,
      memoryMaxPages: facts.memoryMaxPages,
      data: data === undefined ? undefined : new TextEncoder().encode(JSON.stringify(data)),
      entrypoint: 'custody/deny',
    },
    limits,
  );
}

async function refusedLoad(policy: string, o: ModuleOptions = {}, data?: unknown, limits?: HostLimits): Promise<string> {
  try {
    await instance(policy, o, data, limits);
  } catch (err) {
    if (err instanceof LoadRefused) return err.message;
    throw err;
  }
  throw new Error(`${policy} loaded`);
}

function failure(run: () => unknown): EvaluationFailed {
  try {
    run();
  } catch (err) {
    if (err instanceof EvaluationFailed) return err;
    throw err;
  }
  throw new Error('the evaluation succeeded');
}

const now = parseRfc3339Ns(sampleInput().request.time)!;

/** The time built-ins the SDK lacks, written apart from ours (Date, in milliseconds), for it to run the cases that call them. */
const sdkTime = {
  'time.parse_rfc3339_ns': (time: string) => Date.parse(time) * 1e6,
  'time.clock': (ns: number) => {
    const t = new Date(ns / 1e6);
    return [t.getUTCHours(), t.getUTCMinutes(), t.getUTCSeconds()];
  },
};

for (const minor of [1, 2, 3]) {
  describe(`OPA host, ABI 1.${minor}`, () => {
    it('decides every engine case, with the result sets the OPA SDK gets from the same module', async () => {
      for (const [name, c] of Object.entries(engineCases) as [EngineCaseName, (typeof engineCases)[EngineCaseName]][]) {
        const { policy, data, builtins } = casePolicies[name];
        const o: ModuleOptions = { abi: [1, minor], ...(builtins ? { builtins } : {}) };
        const ours = await instance(policy, o, data);
        const sdk = await loadPolicy(await buildModule(policy, o), { initial: 5, maximum: 256 }, sdkTime);
        if (data !== undefined) sdk.setData(data as object);
        for (const { input, deny } of c.inputs) {
          const resultSet = ours.evaluate(JSON.stringify(input), now);
          expect(resultSet, `${name}: the SDK agrees`).toEqual(sdk.evaluate(input, 'custody/deny'));
          expect(decide(resultSet).deny, `${name}: ${JSON.stringify(input).slice(0, 60)}`).toBe(deny);
        }
      }
    });

    it('calls host built-ins through opa_builtin0..4, with the request time as time.now_ns', async () => {
      const policy = await instance('builtins', { abi: [1, minor], builtins: { 'time.now_ns': 0, sprintf: 1 } }, 'decided at %d ns');
      expect(policy.builtins).toEqual(['time.now_ns', 'sprintf']);
      const resultSet = policy.evaluate(JSON.stringify(sampleInput()), now);
      expect(resultSet).toEqual([{ result: ['decided at 1796212800000000000 ns'] }]);
      // the SDK, given the same time.now_ns, formats the same (its sprintf is sprintf-js, ours is Go's verbs)
      const sdk = await loadPolicy(
        await buildModule('builtins', { abi: [1, minor], builtins: { 'time.now_ns': 0, sprintf: 1 } }),
        { initial: 5 },
        { 'time.now_ns': () => 1796212800000000000 },
      );
      sdk.setData('decided at %d ns' as unknown as object);
      expect(sdk.evaluate(sampleInput(), 'custody/deny')).toEqual(resultSet);
    });
  });
}

describe('OPA host, by ABI version', () => {
  it('evaluates ABI 1.2 and 1.3 modules through opa_eval alone, and 1.1 modules through the context', async () => {
    const contextExports = [
      'eval',
      'opa_eval_ctx_new',
      'opa_eval_ctx_set_input',
      'opa_eval_ctx_set_data',
      'opa_eval_ctx_set_entrypoint',
      'opa_eval_ctx_get_result',
    ];
    for (const minor of [2, 3]) {
      const oneCall = await instance('deny-all', { abi: [1, minor], omit: contextExports });
      expect(oneCall.evaluate(JSON.stringify(sampleInput()), now)).toEqual([{ result: true }]);
    }
    // the 1.1 test module exports no opa_eval (it came with 1.2)
    const context = await instance('deny-all', { abi: [1, 1] });
    expect(context.evaluate(JSON.stringify(sampleInput()), now)).toEqual([{ result: true }]);
  });
});

describe('OPA host when loading', () => {
  it('refuses a module that needs a built-in nobody provides, naming it and what there is', async () => {
    const message = await refusedLoad('allow-all', { builtins: { 'http.send': 0, sprintf: 1 } });
    expect(message).toMatch(/^the module needs the built-in http\.send, which Custody does not provide \(it provides .*sprintf.*time\.now_ns/);
  });

  it('refuses a module without the entrypoint, listing those it has', async () => {
    const { module, facts } = await compileModule(await buildModule('allow-all', { entrypoints: { 'custody/allow': 0, 'custody/audit': 1 } }), 256);
    expect(() =>
      OpaInstance.load({ module, abiMinor: facts.abi.minor, memoryMinPages: 2, memoryMaxPages: undefined, data: undefined, entrypoint: 'custody/deny' }),
    ).toThrow(/no entrypoint custody\/deny; it has custody\/allow, custody\/audit/);
  });

  it('refuses data.json that does not fit in the memory limit, saying so', async () => {
    const message = await refusedLoad('allow-all', {}, { big: 'x'.repeat(2 * 1024 * 1024) }, { memoryPages: 16, jsonBytes: 1024 * 1024 });
    expect(message).toMatch(/^loading the module and its data\.json \(2\.0 MiB\) needs more memory than the limit of 1 MiB/);
  });
});

describe('OPA host when evaluating', () => {
  const input = JSON.stringify(sampleInput());

  it('contains a trap', async () => {
    const policy = await instance('trap');
    const err = failure(() => policy.evaluate(input, now));
    expect(err.kind).toBe('trap');
    expect(err.message).toMatch(/^the policy trapped: unreachable/);
  });

  it('stops memory growth at the limit and names it', async () => {
    const policy = await instance('grow', {}, undefined, { memoryPages: 64, jsonBytes: 1024 * 1024 });
    const err = failure(() => policy.evaluate(input, now));
    expect(err.kind).toBe('memory');
    expect(err.message).toMatch(/^the policy ran out of memory: it may use 4 MiB, and had [0-9.]+ MiB \(opa_malloc: out of memory\)/);
  });

  it('contains unbounded recursion', async () => {
    const policy = await instance('recurse');
    const err = failure(() => policy.evaluate(input, now));
    expect(err.kind).toBe('stack');
    expect(err.message).toMatch(/recursed too deeply/);
  });

  it('refuses to parse a result past the JSON limit (4 MiB of {},{},…)', async () => {
    const policy = await instance('huge-result', {}, undefined, { memoryPages: 256, jsonBytes: 1024 * 1024 });
    const err = failure(() => policy.evaluate(input, now));
    expect(err.kind).toBe('result');
    expect(err.message).toMatch(/^the result is longer than 1048576 bytes of JSON/);
  });

  it('fails when a built-in refuses its arguments, with the built-in’s reason', async () => {
    const policy = await instance('builtins', { builtins: { 'time.now_ns': 0, sprintf: 1 } }, '%400000000d');
    const err = failure(() => policy.evaluate(input, now));
    expect(err.kind).toBe('builtin');
    expect(err.message).toBe('built-in sprintf: a width or precision over 1024');
  });
});
