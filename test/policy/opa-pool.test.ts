/**
 * The OPA worker pool under hostile policies: a module that loops is stopped at its time limit
 * while the other workers go on answering, and its worker is replaced by one that loads every
 * policy again; memory growth, traps, recursion and oversized results fail one evaluation and
 * nothing else. Each of these runs in this process: that it goes on to the next test is the
 * proof that the process survived.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PolicyRejected } from '../../src/policy/engine.ts';
import { compileOpa, createOpaPool, type CompiledOpaPolicy, type OpaPool, type OpaPoolOptions } from '../../src/policy/opa/index.ts';
import { sampleInput } from '../suites/policy-engine.ts';
import { buildModule, type ModuleOptions } from './opa-wat.ts';

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
    const p = pool({ size: 2, loadTimeoutMs: 500 });
    const err = await load(p, 'allow-all', { fields: '(func $spin (loop $l (br $l))) (start $spin)' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyRejected);
    expect((err as Error).message).toBe('the module could not be loaded: loading the module took longer than 500 ms: its worker was stopped');
    expect(await (await load(p, 'deny-all')).evaluate(input)).toEqual({ deny: true, messages: [] });
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
