/**
 * What Custody checks in an OPA Wasm module before any of its code runs, when the policy is
 * saved: a walk over the module's sections (no instantiation), then V8's own validation
 * (WebAssembly.compile, off the event loop). A module is refused, with a PolicyRejected that says
 * why, when it
 *
 * - imports anything but what OPA's ABI gives a policy (env.memory, env.opa_abort,
 *   env.opa_println, env.opa_builtin0..4): WASI, say, or a host function it hopes for;
 * - lacks an export the host calls, or its ABI version (the opa_wasm_abi_version and
 *   opa_wasm_abi_minor_version globals) is not 1.1 to 1.3;
 * - could allocate outside the memory limit: its own memories (the limit is on the env.memory
 *   Custody gives it), Wasm GC types (structs and arrays live on the worker's JavaScript heap,
 *   and a worker that runs out of heap in one large allocation aborts the whole process, see
 *   docs/decisions.md), or tables without a small maximum (also on that heap).
 *
 * OPA's compiler writes modules that pass all of this (a real one: ~7 imports, a funcref table
 * with equal minimum and maximum, an exported ABI version as a constant global).
 */
import { PolicyRejected } from '../engine.ts';

/** the imports OPA's Wasm ABI defines; a module may import fewer */
export const abiImports: readonly string[] = [
  'env.memory',
  'env.opa_abort',
  'env.opa_println',
  'env.opa_builtin0',
  'env.opa_builtin1',
  'env.opa_builtin2',
  'env.opa_builtin3',
  'env.opa_builtin4',
];

/** the ABI minor versions (of major version 1) the host speaks */
export const abiMinors = { min: 1, max: 3 } as const;

/** exports the host calls whatever the ABI version */
const commonExports = ['opa_malloc', 'opa_json_parse', 'opa_json_dump', 'opa_heap_ptr_get', 'opa_heap_ptr_set', 'builtins', 'entrypoints'];
/** ABI 1.1: evaluation through a context */
const contextExports = [
  'opa_eval_ctx_new',
  'opa_eval_ctx_set_input',
  'opa_eval_ctx_set_data',
  'opa_eval_ctx_set_entrypoint',
  'opa_eval_ctx_get_result',
  'eval',
];

/** the largest table a module may declare: OPA's have a few hundred entries */
export const maxTableEntries = 65_536;

export interface ModuleFacts {
  abi: { major: number; minor: number };
  /** the pages env.memory must have at the start, as the module declares */
  memoryMinPages: number;
  /** the most pages the module declares env.memory may have, if it says */
  memoryMaxPages: number | undefined;
}

class Reader {
  pos = 0;
  readonly bytes: Uint8Array;
  readonly end: number;
  constructor(bytes: Uint8Array, end = bytes.length) {
    this.bytes = bytes;
    this.end = end;
  }
  byte(): number {
    if (this.pos >= this.end) throw malformed('a section ends early');
    return this.bytes[this.pos++] as number;
  }
  u32(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
    }
    throw malformed('a number is too long');
  }
  /** a signed LEB128 of up to 64 bits, as a Number (exact within 2^53; only i32 values are used) */
  s64(): number {
    let result = 0;
    let shift = 0;
    let b: number;
    do {
      if (shift > 63) throw malformed('a number is too long');
      b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    if (b & 0x40) result -= 2 ** shift;
    return result;
  }
  skip(n: number): void {
    if (this.pos + n > this.end) throw malformed('a section ends early');
    this.pos += n;
  }
  name(): string {
    const n = this.u32();
    const start = this.pos;
    this.skip(n);
    return new TextDecoder().decode(this.bytes.subarray(start, start + n));
  }
}

const malformed = (what: string) => new PolicyRejected(`policy.wasm is not a valid Wasm module: ${what}`);

/** i32, i64, f32, f64, v128, funcref, externref: the value types of Wasm 2.0, which allocate nothing on a heap */
const plainValueTypes = new Set([0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f]);

function valueType(r: Reader): void {
  const t = r.byte();
  if (!plainValueTypes.has(t)) throw gcRefused();
}

const gcRefused = () =>
  new PolicyRejected('policy.wasm uses Wasm GC or typed references, which OPA modules do not: their objects would live outside the memory limit Custody sets');

function limits(r: Reader, what: string): { min: number; max: number | undefined } {
  const flags = r.byte();
  if (flags > 1) {
    throw new PolicyRejected(`policy.wasm declares a shared or 64-bit ${what}, which OPA's Wasm ABI does not use`);
  }
  const min = r.u32();
  return { min, max: flags === 1 ? r.u32() : undefined };
}

/** Skips a constant expression, returning its value when it is a single i32.const. */
function constExpr(r: Reader): number | undefined {
  let value: number | undefined;
  let count = 0;
  for (;;) {
    const op = r.byte();
    count++;
    if (op === 0x0b) return count === 2 ? value : undefined;
    if (op === 0x41) value = r.s64();
    else if (op === 0x42) r.s64();
    else if (op === 0x43) r.skip(4);
    else if (op === 0x44) r.skip(8);
    else if (op === 0x23 || op === 0xd2)
      r.u32(); // global.get, ref.func
    else if (op === 0xd0)
      r.byte(); // ref.null <type>
    else if ((op >= 0x6a && op <= 0x6c) || (op >= 0x7c && op <= 0x7e))
      continue; // extended-const arithmetic
    else if (op === 0xfd) {
      if (r.u32() !== 12) throw malformed('an unexpected instruction in a constant expression');
      r.skip(16); // v128.const
    } else throw malformed(`an unexpected instruction (0x${op.toString(16)}) in a constant expression`);
  }
}

/** Checks the module's sections; throws PolicyRejected. */
export function inspectModule(bytes: Uint8Array): ModuleFacts {
  if (bytes.length < 8 || bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) throw malformed('it does not start with \\0asm');
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new PolicyRejected('policy.wasm is not a core Wasm module (version 1): a WebAssembly component, perhaps; OPA builds core modules');
  }
  const r = new Reader(bytes);
  r.pos = 8;
  const offered = new Set(abiImports);
  let memory: { min: number; max: number | undefined } | undefined;
  const globals: (number | undefined)[] = [];
  const exports = new Map<string, { kind: number; index: number }>();
  let importedGlobals = 0;
  while (r.pos < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    const end = r.pos + size;
    if (end > bytes.length) throw malformed('a section runs past the end of the file');
    const s = new Reader(bytes, end);
    s.pos = r.pos;
    switch (id) {
      case 1: // types
        for (let n = s.u32(); n > 0; n--) {
          if (s.byte() !== 0x60) throw gcRefused();
          for (let p = s.u32(); p > 0; p--) valueType(s);
          for (let q = s.u32(); q > 0; q--) valueType(s);
        }
        break;
      case 2: // imports
        for (let n = s.u32(); n > 0; n--) {
          const name = `${s.name()}.${s.name()}`;
          const kind = s.byte();
          // checked here, before the sections after it: a WASI module says so before it says it has its own memory
          if (!offered.has(name) || (name === 'env.memory') !== (kind === 2) || (name !== 'env.memory' && kind !== 0)) {
            throw new PolicyRejected(
              `policy.wasm imports ${name}, which OPA's Wasm ABI does not provide: Custody gives a policy only ${abiImports.join(', ')}`,
            );
          }
          if (kind === 0) s.u32();
          else if (kind === 1) {
            valueType(s);
            limits(s, 'table');
          } else if (kind === 2) {
            const l = limits(s, 'memory');
            if (name === 'env.memory') memory = l;
          } else if (kind === 3) {
            valueType(s);
            s.byte();
            importedGlobals++;
          } else if (kind === 4) {
            s.byte();
            s.u32();
          } else throw malformed(`an import of unknown kind ${kind}`);
        }
        break;
      case 4: // tables
        for (let n = s.u32(); n > 0; n--) {
          valueType(s);
          const l = limits(s, 'table');
          if (l.max === undefined || l.max > maxTableEntries || l.min > maxTableEntries) {
            throw new PolicyRejected(
              `policy.wasm declares a table of up to ${l.max ?? 'any number of'} entries; Custody allows at most ${maxTableEntries} (tables live outside the memory limit)`,
            );
          }
        }
        break;
      case 5: // memories
        if (s.u32() > 0) throw new PolicyRejected('policy.wasm defines its own memory; an OPA module imports env.memory, which Custody gives it with a limit');
        break;
      case 6: // globals
        for (let n = s.u32(); n > 0; n--) {
          valueType(s);
          s.byte();
          globals.push(constExpr(s));
        }
        break;
      case 7: // exports
        for (let n = s.u32(); n > 0; n--) {
          const name = s.name();
          const kind = s.byte();
          exports.set(name, { kind, index: s.u32() });
        }
        break;
      default: // custom sections, functions, start, elements, code, data, tags: nothing to check here
        break;
    }
    r.pos = end;
  }

  if (!memory) throw new PolicyRejected('policy.wasm does not import env.memory: an OPA module does, and Custody gives it with a limit');

  const abiGlobal = (name: string): number => {
    const e = exports.get(name);
    if (!e || e.kind !== 3) throw new PolicyRejected(`policy.wasm does not export the global ${name}: build it with OPA 0.27 or later (opa build -t wasm)`);
    const value = e.index >= importedGlobals ? globals[e.index - importedGlobals] : undefined;
    if (value === undefined) throw new PolicyRejected(`policy.wasm's ${name} is not a constant i32`);
    return value;
  };
  const abi = { major: abiGlobal('opa_wasm_abi_version'), minor: abiGlobal('opa_wasm_abi_minor_version') };
  if (abi.major !== 1 || abi.minor < abiMinors.min || abi.minor > abiMinors.max) {
    throw new PolicyRejected(`policy.wasm speaks OPA's Wasm ABI ${abi.major}.${abi.minor}; Custody runs ABI 1.${abiMinors.min} to 1.${abiMinors.max}`);
  }
  const required = [...commonExports, ...(abi.minor >= 2 ? ['opa_eval'] : contextExports)];
  const missing = required.filter((name) => exports.get(name)?.kind !== 0);
  if (missing.length > 0) throw new PolicyRejected(`policy.wasm (ABI ${abi.major}.${abi.minor}) does not export ${missing.join(', ')}, which the host calls`);
  return { abi, memoryMinPages: memory.min, memoryMaxPages: memory.max };
}

/** Checks the module (inspectModule), then has V8 validate and compile it, off the event loop. */
export async function compileModule(bytes: Uint8Array, memoryPages: number): Promise<{ module: WebAssembly.Module; facts: ModuleFacts }> {
  const facts = inspectModule(bytes);
  if (facts.memoryMinPages > memoryPages) {
    throw new PolicyRejected(`policy.wasm needs ${facts.memoryMinPages} pages of memory to start, over the limit of ${memoryPages} (64 KiB each)`);
  }
  try {
    return { module: await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>), facts };
  } catch (err) {
    throw new PolicyRejected(`policy.wasm is not a valid Wasm module: ${(err as Error).message}`);
  }
}
