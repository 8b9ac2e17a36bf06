/**
 * The host side of OPA's Wasm ABI (https://www.openpolicyagent.org/docs/wasm): instantiates a
 * policy module with the imports the ABI defines, loads its data document, and evaluates it,
 * through `opa_eval` (ABI 1.2 and later) or the evaluation context (1.1). It runs inside a pool
 * worker (worker.ts), which the pool terminates when an evaluation runs over its time; memory is
 * bounded here.
 *
 * Ours rather than @open-policy-agent/opa-wasm's loadPolicy (docs/decisions.md): the SDK parses
 * whatever JSON a module hands it (results, built-in arguments) with no bound, and its sprintf pads
 * to any width, so a module could make the worker allocate hundreds of MiB in one go, and a worker
 * that reaches its heap limit that way aborts the whole process. Here every JSON text read out of
 * the module is bounded in bytes and shape before it is parsed, the built-ins bound what they make,
 * and the module's memory has a maximum. The tests run the same modules through the SDK too, so
 * both read the ABI the same way.
 */
import { scanJson } from '../../json-limits.ts';
import { BuiltinError, builtinNames, builtins, type BuiltinContext } from './builtins.ts';

export interface HostLimits {
  /** the most 64 KiB pages env.memory may grow to */
  memoryPages: number;
  /** the most bytes of one JSON text read out of the module (a result, a built-in's argument) or written into it */
  jsonBytes: number;
}

export const defaultHostLimits: Readonly<HostLimits> = { memoryPages: 256, jsonBytes: 1024 * 1024 };

/** how deeply JSON read out of a module may nest (results are shallow; this bounds the walks over them) */
const jsonDepth = 64;

/** What the worker is given to load a policy (the module compiled once, by the pool). */
export interface LoadSpec {
  module: WebAssembly.Module;
  abiMinor: number;
  memoryMinPages: number;
  memoryMaxPages: number | undefined;
  /** /data.json's bytes, parsed by the module's own JSON parser */
  data: Uint8Array | undefined;
  entrypoint: string;
}

/** The module cannot serve as the policy: it is refused when the policy is saved. */
export class LoadRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoadRefused';
  }
}

export type FailureKind = 'trap' | 'memory' | 'abort' | 'stack' | 'result' | 'builtin';

/** An evaluation failed; the message says how (the service applies the policy's failure mode). */
export class EvaluationFailed extends Error {
  readonly kind: FailureKind;
  constructor(kind: FailureKind, message: string) {
    super(message);
    this.name = 'EvaluationFailed';
    this.kind = kind;
  }
}

/** opa_abort: the module gave up, with a message. */
class Abort extends Error {}

type Exports = Record<string, (...args: number[]) => number>;

// JSON.rawJSON is in V8 (Node 22+) but not yet in TypeScript's lib
const rawJSON = (JSON as unknown as { rawJSON: (this: void, text: string) => unknown }).rawJSON;
/** JSON, with bigints as exact numbers (time.now_ns and friends are nanoseconds: past 2^53) */
const toJson = (value: unknown): string | undefined => JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? rawJSON(v.toString()) : v));

const mib = (pages: number) => `${Math.round((pages * 640) / 1024) / 10} MiB`;

export class OpaInstance {
  readonly builtins: readonly string[];
  readonly entrypoints: readonly string[];
  private readonly memory: WebAssembly.Memory;
  private readonly maxPages: number;
  private readonly exports: Exports;
  private readonly builtinById = new Map<number, string>();
  private readonly entrypointId: number;
  private readonly dataAddr: number;
  private readonly dataHeapPtr: number;
  private readonly limits: HostLimits;
  private readonly abiMinor: number;
  private context: BuiltinContext = { nowNs: 0n };

  /** Instantiates and prepares a module; throws LoadRefused. */
  static load(spec: LoadSpec, limits: HostLimits = defaultHostLimits): OpaInstance {
    return new OpaInstance(spec, limits);
  }

  private constructor(spec: LoadSpec, limits: HostLimits) {
    this.limits = limits;
    this.abiMinor = spec.abiMinor;
    this.maxPages = Math.min(limits.memoryPages, spec.memoryMaxPages ?? Number.POSITIVE_INFINITY);
    if (spec.memoryMinPages > this.maxPages)
      throw new LoadRefused(`the module needs ${spec.memoryMinPages} pages of memory to start, over the limit of ${this.maxPages}`);
    // at least 5 pages, as the SDK gives: OPA's compiler counts on them (a module declaring 3 has data segments past page 3)
    this.memory = new WebAssembly.Memory({ initial: Math.min(Math.max(spec.memoryMinPages, 5), this.maxPages), maximum: this.maxPages });
    const call =
      (n: number) =>
      (id: number, _ctx: number, ...args: number[]) =>
        this.callBuiltin(id, args.slice(0, n));
    const imports = {
      env: {
        memory: this.memory,
        opa_abort: (addr: number) => {
          throw new Abort(this.cString(addr, 1024));
        },
        // print() output has nowhere to go in a request; dropped (docs/policy.md)
        opa_println: () => {},
        opa_builtin0: call(0),
        opa_builtin1: call(1),
        opa_builtin2: call(2),
        opa_builtin3: call(3),
        opa_builtin4: call(4),
      },
    };
    try {
      const instance = new WebAssembly.Instance(spec.module, imports);
      this.exports = instance.exports as unknown as Exports;

      const declared = this.readJson(this.exports.opa_json_dump!(this.exports.builtins!()), 'the builtins map');
      if (!isIdMap(declared)) throw new LoadRefused("the module's builtins export is not a map of names to numbers");
      const missing = Object.keys(declared).filter((name) => !Object.hasOwn(builtins, name));
      if (missing.length > 0) {
        throw new LoadRefused(`the module needs the built-in ${missing.join(', ')}, which Custody does not provide (it provides ${builtinNames.join(', ')})`);
      }
      for (const [name, id] of Object.entries(declared)) this.builtinById.set(id, name);
      this.builtins = Object.keys(declared);

      const entrypoints = this.readJson(this.exports.opa_json_dump!(this.exports.entrypoints!()), 'the entrypoints map');
      if (!isIdMap(entrypoints)) throw new LoadRefused("the module's entrypoints export is not a map of names to numbers");
      this.entrypoints = Object.keys(entrypoints);
      const id = Object.hasOwn(entrypoints, spec.entrypoint) ? entrypoints[spec.entrypoint] : undefined;
      if (id === undefined) {
        throw new LoadRefused(`the module has no entrypoint ${spec.entrypoint}; it has ${this.entrypoints.join(', ') || 'none'} (the -e of opa build)`);
      }
      this.entrypointId = id;

      // the data document, parsed by the module's own parser into its memory (as the SDK does, {} when there is none)
      const data = spec.data ?? new TextEncoder().encode('{}');
      if (data.length >= this.maxPages * 65536) throw new LoadRefused(memoryRefusal(data.length, this.maxPages));
      const addr = this.write(data);
      this.dataAddr = this.exports.opa_json_parse!(addr, data.length);
      if (this.dataAddr === 0) throw new LoadRefused("data.json is not JSON: the module's parser refused it");
      this.dataHeapPtr = this.exports.opa_heap_ptr_get!();
    } catch (err) {
      if (err instanceof LoadRefused) throw err;
      const failed = this.classify(err);
      throw new LoadRefused(failed.kind === 'memory' ? memoryRefusal(spec.data?.length, this.maxPages) : `the module failed while loading: ${failed.message}`);
    }
  }

  /** Evaluates the entrypoint on an input (JSON text, or its UTF-8 bytes); returns the result set. Throws EvaluationFailed. */
  evaluate(input: string | Uint8Array, nowNs: bigint): unknown {
    this.context = { nowNs };
    const bytes = typeof input === 'string' ? new TextEncoder().encode(input) : input;
    try {
      if (this.abiMinor >= 2) {
        // ABI 1.2: the input's text goes where the heap starts after the data; opa_eval parses it,
        // evaluates, and returns the result set's JSON, with the heap reset to heapPtr first
        const inputAddr = this.dataHeapPtr;
        this.reserve(inputAddr + bytes.length);
        new Uint8Array(this.memory.buffer).set(bytes, inputAddr);
        const result = this.exports.opa_eval!(0, this.entrypointId, this.dataAddr, inputAddr, bytes.length, inputAddr + bytes.length, 0);
        return this.readJson(result, 'the result');
      }
      // ABI 1.1: reset the heap, parse the input, and evaluate through a context
      this.exports.opa_heap_ptr_set!(this.dataHeapPtr);
      const inputAddr = this.write(bytes);
      const value = this.exports.opa_json_parse!(inputAddr, bytes.length);
      if (value === 0) throw new EvaluationFailed('result', 'the module could not parse the input');
      const ctx = this.exports.opa_eval_ctx_new!();
      this.exports.opa_eval_ctx_set_input!(ctx, value);
      this.exports.opa_eval_ctx_set_data!(ctx, this.dataAddr);
      this.exports.opa_eval_ctx_set_entrypoint!(ctx, this.entrypointId);
      this.exports.eval!(ctx);
      return this.readJson(this.exports.opa_json_dump!(this.exports.opa_eval_ctx_get_result!(ctx)), 'the result');
    } catch (err) {
      throw this.classify(err);
    }
  }

  /**
   * Names a failure. A module out of memory does not say so: memory.grow returns -1 and OPA's
   * malloc goes on, so it traps on an access out of bounds (other allocators abort, naming
   * malloc). A trap or an abort with the memory grown to three quarters of its limit or more is
   * taken for that, and so is an abort about malloc; the message gives the figures either way.
   */
  private classify(err: unknown): EvaluationFailed {
    if (err instanceof EvaluationFailed) return err;
    const used = this.memory.buffer.byteLength;
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof RangeError && /call stack/i.test(message)) return new EvaluationFailed('stack', 'the policy recursed too deeply (the stack ran out)');
    const nearLimit = used >= this.maxPages * 65536 * 0.75;
    const outOfMemory =
      (nearLimit && (err instanceof Abort || err instanceof WebAssembly.RuntimeError)) ||
      (err instanceof Abort && /malloc|out of memory/i.test(message)) ||
      (err instanceof RangeError && /memory/i.test(message));
    if (outOfMemory) {
      return new EvaluationFailed('memory', `the policy ran out of memory: it may use ${mib(this.maxPages)}, and had ${mib(used / 65536)} (${message})`);
    }
    if (err instanceof Abort) return new EvaluationFailed('abort', `the policy aborted: ${message}`);
    if (err instanceof WebAssembly.RuntimeError) return new EvaluationFailed('trap', `the policy trapped: ${message}`);
    return new EvaluationFailed('trap', `the policy failed: ${message}`);
  }

  private callBuiltin(id: number, addrs: number[]): number {
    const name = this.builtinById.get(id);
    if (name === undefined) throw new EvaluationFailed('builtin', `the module called built-in #${id}, which its builtins map does not name`);
    const args = addrs.map((a) => this.readJson(this.exports.opa_json_dump!(a), `an argument of ${name}`));
    let result: unknown;
    try {
      result = builtins[name]!(this.context, ...args);
    } catch (err) {
      if (err instanceof BuiltinError) throw new EvaluationFailed('builtin', `built-in ${err.message}`);
      throw err;
    }
    const text = toJson(result);
    if (text === undefined) throw new EvaluationFailed('builtin', `built-in ${name} gave no value`);
    const bytes = new TextEncoder().encode(text);
    if (bytes.length > this.limits.jsonBytes)
      throw new EvaluationFailed('builtin', `built-in ${name} made ${bytes.length} bytes, over the limit of ${this.limits.jsonBytes}`);
    const value = this.exports.opa_json_parse!(this.write(bytes), bytes.length);
    if (value === 0) throw new EvaluationFailed('builtin', `the module could not parse what built-in ${name} returned`);
    return value;
  }

  /** Copies bytes into memory the module allocates; returns their address. */
  private write(bytes: Uint8Array): number {
    const addr = this.exports.opa_malloc!(bytes.length);
    this.check(addr, bytes.length);
    // after opa_malloc: the memory may have grown, which replaces its buffer
    new Uint8Array(this.memory.buffer).set(bytes, addr);
    return addr;
  }

  /** Grows the memory to hold `end` bytes, within its maximum. */
  private reserve(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / 65536);
    if (have / 65536 + pages > this.maxPages)
      throw new EvaluationFailed('memory', `the input does not fit in the policy's memory limit of ${mib(this.maxPages)}`);
    this.memory.grow(pages);
  }

  private check(addr: number, length: number): void {
    if (!Number.isInteger(addr) || addr < 0 || addr + length > this.memory.buffer.byteLength) {
      throw new EvaluationFailed('result', `the module gave the address ${addr}, outside its memory`);
    }
  }

  /** A NUL-terminated string at addr, at most `max` bytes. */
  private cString(addr: number, max: number): string {
    const memory = new Uint8Array(this.memory.buffer);
    if (addr < 0 || addr >= memory.length) return `(a message at ${addr}, outside the memory)`;
    const end = memory.subarray(addr, Math.min(memory.length, addr + max)).indexOf(0);
    return new TextDecoder().decode(memory.subarray(addr, end < 0 ? Math.min(memory.length, addr + max) : addr + end));
  }

  /** The NUL-terminated JSON text at addr, bounded in bytes and shape before it is parsed. */
  private readJson(addr: number, what: string): unknown {
    const memory = new Uint8Array(this.memory.buffer);
    this.check(addr, 0);
    const window = memory.subarray(addr, Math.min(memory.length, addr + this.limits.jsonBytes + 1));
    const length = window.indexOf(0);
    if (length < 0) {
      throw new EvaluationFailed('result', `${what} is longer than ${this.limits.jsonBytes} bytes of JSON (or not NUL-terminated), over the limit`);
    }
    const text = window.subarray(0, length);
    const shape = scanJson(text, { depth: jsonDepth, values: this.limits.jsonBytes / 8 });
    if (shape.exceeded) throw new EvaluationFailed('result', `${what} holds more ${shape.exceeded === 'depth' ? 'nesting' : 'values'} than Custody reads`);
    try {
      return JSON.parse(new TextDecoder().decode(text)) as unknown;
    } catch {
      throw new EvaluationFailed('result', `${what} is not JSON`);
    }
  }
}

function memoryRefusal(dataBytes: number | undefined, maxPages: number): string {
  const data = dataBytes === undefined ? '' : ` and its data.json (${(dataBytes / 1048576).toFixed(1)} MiB)`;
  return `loading the module${data} needs more memory than the limit of ${mib(maxPages)}`;
}

function isIdMap(v: unknown): v is Record<string, number> {
  return !!v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((id) => Number.isInteger(id));
}
