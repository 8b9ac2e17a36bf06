/**
 * The OPA Wasm engine: a policy document of engine `opa-wasm` names a bundle (repository and
 * digest) and an entrypoint; the service fetches the bundle's bytes from the registry's own
 * storage and hands them here. Compiling reads the bundle, checks the module (module.ts) and
 * loads it into the worker pool (pool.ts), where it is evaluated per request. docs/policy.md
 * says what a decision's result means, the limits, and how to build and push a bundle.
 */
import type { OpaPolicyDocument } from '../document.ts';
import type { CompiledPolicy, Outcome } from '../engine.ts';
import { sections, type PolicyInput } from '../input-schema.ts';
import { parseRfc3339Ns } from './builtins.ts';
import { readBundle, type BundleLimits } from './bundle.ts';
import { inputText } from './input-text.ts';
import { compileModule } from './module.ts';
import type { OpaPool } from './pool.ts';

export { createOpaPool, defaultPoolOptions, type OpaPool, type OpaPoolOptions, type OpaPoolStats } from './pool.ts';
export { defaultBundleLimits, type BundleLimits } from './bundle.ts';
export { builtinNames } from './builtins.ts';

export interface CompiledOpaPolicy extends CompiledPolicy {
  /** what the module is: its ABI version, the built-ins it calls, the entrypoints it has */
  readonly module: { abi: string; builtins: string[]; entrypoints: string[]; data: boolean };
  evaluate(input: PolicyInput): Promise<Outcome>;
  close(): Promise<void>;
}

/** the last request time read, and what it read as: the requests of one millisecond share the string */
let lastTime = '';
let lastNs: bigint | undefined;

/** time.now_ns() is the request's time (builtins.ts); an input without a readable one gets the clock's. */
function nowNs(input: PolicyInput): bigint {
  const time = input.request?.time;
  if (typeof time !== 'string') return BigInt(Date.now()) * 1_000_000n;
  if (time !== lastTime) {
    lastTime = time;
    lastNs = parseRfc3339Ns(time);
  }
  return lastNs ?? BigInt(Date.now()) * 1_000_000n;
}

/**
 * Reads the bundle (or bare policy.wasm), checks its module and loads it into the pool. Throws
 * PolicyRejected, with what is wrong, for a bundle or module that cannot serve as the policy.
 */
export async function compileOpa(
  doc: Pick<OpaPolicyDocument, 'entrypoint'>,
  bundleBytes: Uint8Array,
  pool: OpaPool,
  limits: Partial<BundleLimits> = {},
): Promise<CompiledOpaPolicy> {
  const bundle = await readBundle(bundleBytes, limits);
  const { module, facts } = await compileModule(bundle.wasm, pool.options.memoryPages);
  const loaded = await pool.load({
    module,
    abiMinor: facts.abi.minor,
    memoryMinPages: facts.memoryMinPages,
    memoryMaxPages: facts.memoryMaxPages,
    data: bundle.data,
    entrypoint: doc.entrypoint,
  });
  let closed = false;
  return {
    // a Wasm module's reads cannot be told from outside: it is given every section
    reads: new Set(sections),
    module: { abi: `${facts.abi.major}.${facts.abi.minor}`, builtins: loaded.builtins, entrypoints: loaded.entrypoints, data: bundle.data !== undefined },
    evaluate(input: PolicyInput): Promise<Outcome> {
      if (closed) return Promise.reject(new Error('the policy was closed'));
      return pool.evaluate(loaded.id, inputText(input), nowNs(input));
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await pool.unload(loaded.id);
    },
  };
}
