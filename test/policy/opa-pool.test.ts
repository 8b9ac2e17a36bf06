/**
 * The OPA worker pool under hostile policies: a module that loops is stopped at its time limit
 * while the other workers go on answering, and its worker is replaced by one that loads every
 * policy again; memory growth, traps, recursion and oversized results fail one evaluation and
 * nothing else. Each of these runs in this process: that it goes on to the next test is the
 * proof that the process survived. Evaluations asked for together go to a worker in one batch,
 * through shared memory: only the one that runs over fails, what a slow policy holds up goes to
 * an idle worker, and inputs and replies of any size within the limits get through.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { PolicyRejected } from '../../src/policy/engine.ts';
import { compileOpa, createOpaPool, type CompiledOpaPolicy, type OpaPool, type OpaPoolOptions } from '../../src/policy/opa/index.ts';
import { sampleInput } from '../suites/policy-engine.ts';
import { buildModule, bundle, type ModuleOptions } from './opa-wat.ts';

const pools: OpaPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

function pool(options: Partial<OpaPoolOptions>): OpaPool {
  const p = createOpaPool(options);
  pools.push(p);
  return p;
}

async function load(p: OpaPool, policy: string, o: ModuleOptions = {}): Promise<CompiledOpaPolicy> {
  return compileOpa({ entrypoint: 'custody/deny' }, await buildModule(policy, o), p);
}

/** settles into which way it went, so a test can look without awaiting */
function watch<T>(promise: Promise<T>): { settled: () => boolean; result: Promise<T> } {
  let done = false;
  const result = promise.finally(() => {
    done = true;
  });
  // a rejection is looked at by the test later; until then it is not unhandled
  result.catch(() => {});
  return { settled: () => done, result };
}

const input = sampleInput();

describe('the OPA worker pool', () => {
  it('stops a looping policy at its time limit while another worker goes on answering', async () => {
    const p = pool({ size: 2, timeoutMs: 2000 });
    const looping = await load(p, 'loop');
    const allowing = await load(p, 'allow-all');
    const loop = watch(looping.evaluate(input));
    // the looping module holds one worker; the other answers meanwhile, and the event loop runs
    for (let i = 0; i < 5; i++) {
      expect(await allowing.evaluate(input)).toEqual({ deny: false });
      expect(loop.settled()).toBe(false);
    }
    await expect(loop.result).rejects.toThrow('the policy did not decide within 2000 ms: its worker was stopped');
    expect(p.stats().restarts).toBe(1);
    expect(await allowing.evaluate(input)).toEqual({ deny: false });
  });

  it('replaces a stopped worker with one that loads every policy again before it takes work', async () => {
    // one worker: the allowing policy's evaluation waits behind the loop, then runs in the new worker,
    // which has it only because it was loaded again
    const p = pool({ size: 1, timeoutMs: 500 });
    const looping = await load(p, 'loop');
    const denying = await load(p, 'deny-all');
    const loop = watch(looping.evaluate(input));
    const waiting = watch(denying.evaluate(input));
    await expect(loop.result).rejects.toThrow(/did not decide within 500 ms/);
    expect(await waiting.result).toEqual({ deny: true, messages: [] });
    expect(p.stats()).toEqual({ workers: 1, restarts: 1, policies: 2, queued: 0 });
    // the looping policy was loaded again too: it is stopped again, not "not loaded"
    await expect(looping.evaluate(input)).rejects.toThrow(/did not decide within 500 ms/);
  });

  it('contains memory growth, traps, recursion and oversized results, and answers afterwards', async () => {
    const p = pool({ size: 2, memoryPages: 256, jsonBytes: 256 * 1024 });
    const [grow, trap, recurse, huge, allow] = await Promise.all(['grow', 'trap', 'recurse', 'huge-result', 'allow-all'].map((name) => load(p, name)));
    for (let round = 0; round < 2; round++) {
      await expect(grow!.evaluate(input)).rejects.toThrow(/^the policy ran out of memory: it may use 16 MiB, and had 1[0-9.]+ MiB/);
      await expect(trap!.evaluate(input)).rejects.toThrow(/^the policy trapped: unreachable/);
      await expect(recurse!.evaluate(input)).rejects.toThrow(/recursed too deeply/);
      await expect(huge!.evaluate(input)).rejects.toThrow(/^the result is longer than 262144 bytes of JSON/);
      expect(await allow!.evaluate(input)).toEqual({ deny: false });
    }
    // none of it cost a worker
    expect(p.stats().restarts).toBe(0);
  });

  it('answers many evaluations at once, each with its own input', async () => {
    const p = pool({ size: 2 });
    const signed = await load(p, 'signed-by-release');
    const quota = await load(p, 'over-quota');
    const release = { format: 'cosign', signer: 'release@example.com', issuer: '', verified: true, code: 'verified' };
    const jobs = Array.from({ length: 60 }, (_, i) =>
      i % 2 === 0
        ? signed.evaluate(sampleInput({ trust: i % 4 === 0 ? { signatures: [release] } : {} })).then((o) => [o.deny, i % 4 !== 0])
        : quota.evaluate(sampleInput({ ns: { quotaBytes: 100, storedBytes: i % 3 === 0 ? 200 : 50 } })).then((o) => [o.deny, i % 3 === 0]),
    );
    for (const [got, want] of await Promise.all(jobs)) expect(got).toBe(want);
  });

  it('fails only the evaluation that ran over, and answers the others sent in the same batch', async () => {
    // one worker: the three are asked for together, so they go to it in one batch
    const p = pool({ size: 1, timeoutMs: 500 });
    const [allow, looping, deny] = await Promise.all(['allow-all', 'loop', 'deny-all'].map((name) => load(p, name)));
    const answers = [watch(allow!.evaluate(input)), watch(looping!.evaluate(input)), watch(deny!.evaluate(input))];
    expect(await answers[0]!.result).toEqual({ deny: false });
    await expect(answers[1]!.result).rejects.toThrow('the policy did not decide within 500 ms: its worker was stopped');
    expect(await answers[2]!.result).toEqual({ deny: true, messages: [] });
    expect(p.stats().restarts).toBe(1);
  });

  it('gives what a looping policy holds up in its batch to an idle worker, without waiting for the time limit', async () => {
    const p = pool({ size: 2, timeoutMs: 3000 });
    const looping = await load(p, 'loop');
    const allow = await load(p, 'allow-all');
    // asked for together, so they go to one worker in one batch, the allows behind the loop
    const loop = watch(looping.evaluate(input));
    const allows = [allow.evaluate(input), allow.evaluate(input), allow.evaluate(input)];
    expect(await Promise.all(allows)).toEqual([{ deny: false }, { deny: false }, { deny: false }]);
    expect(loop.settled()).toBe(false);
    await expect(loop.result).rejects.toThrow(/did not decide within 3000 ms/);
  });

  it('answers decisions whose messages fill the reply memory, a batch at a time', async () => {
    // 120 messages of 1100 control characters: JSON writes each as \u0001, the most bytes a
    // character can take, so one reply is most of the memory replies share
    const messages = Array.from({ length: 120 }, (_, i) => `${i}`.padEnd(1100, '\u0001'));
    const p = pool({ size: 2 });
    const loud = await compileOpa({ entrypoint: 'custody/deny' }, bundle(await buildModule('echo-data'), { deny: true, messages }), p);
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => loud.evaluate(input)));
    for (const outcome of outcomes) {
      expect(outcome.deny).toBe(true);
      const got = outcome.deny ? outcome.messages : [];
      expect(got).toHaveLength(101);
      expect(got[0]).toBe(`${'0'.padEnd(1023, '\u0001')}…`);
      expect(got[99]).toBe(`${'99'.padEnd(1023, '\u0001')}…`);
      expect(got[100]).toBe('… and 20 more');
    }
  });

  it('gives a policy inputs larger than the memory they are written to, and refuses one over its memory limit', async () => {
    const p = pool({ size: 2, memoryPages: 64 });
    const forbidden = await compileOpa({ entrypoint: 'custody/deny' }, bundle(await buildModule('forbidden-license'), { forbidden: 'AGPL-3.0-only' }), p);
    const sbom = (count: number, last: string) => {
      const components = Array.from({ length: count }, (_, i) => ({ name: `lib-${i}`, version: '1.0.0', purl: `pkg:npm/lib-${i}@1.0.0`, licenses: ['MIT'] }));
      components[count - 1]!.licenses = [last];
      return { present: true, format: 'cyclonedx', componentCount: count, licenses: ['MIT', last], components };
    };
    // 0.8 MB and 1.8 MB of JSON (the memory inputs are written to starts at 256 KiB), asked
    // for together with small ones, the forbidden license only in the last component
    const big = sampleInput({ trust: { sbom: sbom(9000, 'AGPL-3.0-only') } });
    const bigger = sampleInput({ trust: { sbom: sbom(20_000, 'Apache-2.0') } });
    const small = sampleInput({ trust: { sbom: sbom(1, 'AGPL-3.0-only') } });
    const outcomes = await Promise.all([big, small, bigger, small, big].map((i) => forbidden.evaluate(i)));
    expect(outcomes.map((o) => o.deny)).toEqual([true, true, false, true, true]);
    // 64 pages are 4 MiB: an input over that (5.4 MB) cannot be given to the policy at all
    const huge = sampleInput({ trust: { sbom: sbom(60_000, 'MIT') } });
    await expect(forbidden.evaluate(huge)).rejects.toThrow("the input does not fit in the policy's memory limit of 4 MiB");
    expect((await forbidden.evaluate(small)).deny).toBe(true);
    expect(p.stats().restarts).toBe(0);
  });

  it('refuses work past its queue limit at once, instead of piling it up', async () => {
    const p = pool({ size: 1, timeoutMs: 500, queueLimit: 2 });
    const looping = await load(p, 'loop');
    const allow = await load(p, 'allow-all');
    const running = watch(looping.evaluate(input));
    const queued = [watch(allow.evaluate(input)), watch(allow.evaluate(input))];
    await expect(allow.evaluate(input)).rejects.toThrow('the OPA worker pool is overloaded: 2 evaluations are waiting for a worker');
    await expect(running.result).rejects.toThrow(/did not decide/);
    for (const q of queued) expect(await q.result).toEqual({ deny: false });
  });

  it('refuses, when saved, a module whose loading does not end (a start function that loops)', async () => {
    // long enough for a sound module to load on a busy machine (500 ms was not, once, in CI)
    const p = pool({ size: 2, loadTimeoutMs: 3000 });
    const err = await load(p, 'allow-all', { fields: '(func $spin (loop $l (br $l))) (start $spin)' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyRejected);
    expect((err as Error).message).toBe('the module could not be loaded: loading the module took longer than 3000 ms: its worker was stopped');
    expect(await (await load(p, 'deny-all')).evaluate(input)).toEqual({ deny: true, messages: [] });
  });

  it('does not keep a process alive once idle, though never closed', async () => {
    // its workers wait in Atomics.wait, and their ports would hold the event loop if left referenced
    const script = [
      `import { compileOpa, createOpaPool } from ${JSON.stringify(new URL('../../src/policy/opa/index.ts', import.meta.url).href)};`,
      `import { buildModule } from ${JSON.stringify(new URL('./opa-wat.ts', import.meta.url).href)};`,
      `import { sampleInput } from ${JSON.stringify(new URL('../suites/policy-engine.ts', import.meta.url).href)};`,
      'const policy = await compileOpa({ entrypoint: "custody/deny" }, await buildModule("deny-all"), createOpaPool({ size: 2 }));',
      'console.log(JSON.stringify(await policy.evaluate(sampleInput())));',
    ].join('\n');
    // the bound only stops the test: a process that stays alive is the failure
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 });
    expect(JSON.parse(stdout)).toEqual({ deny: true, messages: [] });
  });

  it('fails what is waiting or running when it is closed, and everything after', async () => {
    const p = createOpaPool({ size: 1, timeoutMs: 5000 });
    const looping = await load(p, 'loop');
    const allow = await load(p, 'allow-all');
    const running = watch(looping.evaluate(input));
    const waiting = watch(allow.evaluate(input));
    await p.close();
    await expect(running.result).rejects.toThrow('the OPA worker pool was closed');
    await expect(waiting.result).rejects.toThrow('the OPA worker pool was closed');
    await expect(allow.evaluate(input)).rejects.toThrow('the OPA worker pool is closed');
    await expect(load(p, 'allow-all')).rejects.toThrow(/closed/);
  });
});
