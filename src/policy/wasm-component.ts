/**
 * What a WebAssembly binary imports and exports, by name, for the policy input
 * (`artifact.wasm`): a policy can then deny, say, a component that imports `wasi:sockets/…`.
 *
 * The binary is read section by section, never compiled or instantiated: it comes from whoever
 * pushed it, and all a policy needs are the names. Only the names are copied out; every other
 * section is stepped over by its declared size, so the work is one pass over the section
 * headers plus the import and export sections themselves.
 *
 * Formats (docs: the core spec's binary format, and the Component Model's design/mvp/Binary.md):
 * - a core module (`\0asm` 01 00 00 00): imports as `module/name`, exports by name;
 * - a component (`\0asm` 0d 00 01 00): the imports (section 10) and exports (section 11) at its
 *   top level. Nested core modules (1) and components (4) are skipped: what they import must be
 *   supplied by the outer component, which has to import it itself, so the top level is what a
 *   host is asked for.
 * Anything else is neither: `component: false`, empty lists, `complete: false`.
 *
 * Hostile input: every read is checked against the bytes really there (a claimed size or count
 * is never trusted for an allocation or a loop bound), LEB128s are limited to their type's width,
 * and names and lists are capped. A binary that cannot be decoded stops the reading where it
 * breaks; the function never throws. What was read before is returned, with `complete: false`,
 * so a policy that must not be fooled by a binary this reader gives up on can deny it.
 */

/** The most names kept per list (the CEL engine bounds `artifact.wasm.imports`/`exports` by the same number). */
export const MAX_WASM_NAMES = 4096;
/** The longest name kept, in UTF-8 bytes; real ones (`wasi:http/outgoing-handler@0.2.0`) are a few dozen. */
export const MAX_WASM_NAME_BYTES = 1024;

export interface WasmInterface {
  /** a component (Component Model), not a core module */
  component: boolean;
  imports: string[];
  exports: string[];
  /**
   * true when the binary was a module or component read to its end: the lists are everything
   * its top level declares. False when it is neither, or the reading stopped early (malformed,
   * truncated, an encoding this reader does not know, or a cap reached).
   */
  complete: boolean;
}

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const CORE_VERSION = [0x01, 0x00, 0x00, 0x00];
/** version 0x0d (pre-standard), layer 1 (a component) */
const COMPONENT_VERSION = [0x0d, 0x00, 0x01, 0x00];

const CORE_IMPORT_SECTION = 2;
const CORE_EXPORT_SECTION = 7;
const COMPONENT_IMPORT_SECTION = 10;
const COMPONENT_EXPORT_SECTION = 11;

/** Thrown inside this file only, to stop the reading; readWasmInterface catches every one. */
class Undecodable extends Error {}

// fatal: names must be valid UTF-8 (both specs say so), and a name with replacement characters
// would not be the name the runtime sees. ignoreBOM keeps a leading U+FEFF as part of the name.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Reader {
  pos: number;
  readonly end: number;
  private readonly bytes: Uint8Array;
  constructor(bytes: Uint8Array, start: number, end: number) {
    this.bytes = bytes;
    this.pos = start;
    this.end = end;
  }

  get atEnd(): boolean {
    return this.pos >= this.end;
  }

  byte(): number {
    if (this.pos >= this.end) throw new Undecodable('unexpected end');
    return this.bytes[this.pos++]!;
  }

  peek(): number {
    if (this.pos >= this.end) throw new Undecodable('unexpected end');
    return this.bytes[this.pos]!;
  }

  /** unsigned LEB128 of at most 32 bits: at most 5 bytes, the last with no bits past bit 31 */
  u32(): number {
    let value = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.byte();
      if (i === 4 && b > 0x0f) throw new Undecodable('u32 out of range');
      // multiplication, not <<, so bit 31 does not turn the number negative
      value += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return value;
    }
    throw new Undecodable('u32 too long');
  }

  /** steps over an unsigned LEB128 of at most 64 bits (a memory64 limit) */
  skipU64(): void {
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      if (i === 9 && b > 0x01) throw new Undecodable('u64 out of range');
      if ((b & 0x80) === 0) return;
    }
    throw new Undecodable('u64 too long');
  }

  /** a signed LEB128 of at most 33 bits (a type index or heap type), as a number */
  s33(): number {
    let value = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.byte();
      value += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) {
        const bits = 7 * (i + 1);
        if (i === 4) {
          // bits 33 to 34 of the last byte must repeat the sign bit (bit 32)
          const top = b & 0x70;
          if (top !== 0 && top !== 0x70) throw new Undecodable('s33 out of range');
          return b & 0x10 ? value - 2 ** 35 : value;
        }
        return b & 0x40 ? value - 2 ** bits : value;
      }
    }
    throw new Undecodable('s33 too long');
  }

  /** a length-prefixed UTF-8 name, copied out */
  name(): string {
    const length = this.u32();
    if (length > this.end - this.pos) throw new Undecodable('name past the end');
    if (length > MAX_WASM_NAME_BYTES) throw new Undecodable('name too long');
    const start = this.pos;
    this.pos += length;
    try {
      return utf8.decode(this.bytes.subarray(start, this.pos));
    } catch {
      throw new Undecodable('name is not UTF-8');
    }
  }

  /** steps over a length-prefixed name without decoding it */
  skipName(): void {
    const length = this.u32();
    if (length > this.end - this.pos) throw new Undecodable('name past the end');
    this.pos += length;
  }
}

/** The names a binary imports and exports. Never throws; see WasmInterface.complete. */
export function readWasmInterface(bytes: Uint8Array): WasmInterface {
  const result: WasmInterface = { component: false, imports: [], exports: [], complete: false };
  // typed callers cannot pass anything else, but this also guards callers from plain JavaScript
  if (!(bytes instanceof Uint8Array) || bytes.length < 8 || !startsWith(bytes, 0, MAGIC)) return result;
  let readEntries: (r: Reader, id: number, out: WasmInterface) => void;
  if (startsWith(bytes, 4, COMPONENT_VERSION)) {
    result.component = true;
    readEntries = readComponentSection;
  } else if (startsWith(bytes, 4, CORE_VERSION)) {
    readEntries = readCoreSection;
  } else {
    return result;
  }
  try {
    readSections(bytes, readEntries, result);
    result.complete = true;
  } catch (err) {
    // Undecodable is how every malformed input ends; anything else would be a bug here, and
    // hiding it behind `complete: false` would make it look like the binary's fault
    if (!(err instanceof Undecodable)) throw err;
  }
  return result;
}

function startsWith(bytes: Uint8Array, at: number, expected: readonly number[]): boolean {
  return expected.every((b, i) => bytes[at + i] === b);
}

/** Walks the top-level sections, handing each to readEntries, which steps over the ones it does not read. */
function readSections(bytes: Uint8Array, readEntries: (r: Reader, id: number, out: WasmInterface) => void, out: WasmInterface): void {
  const header = new Reader(bytes, 8, bytes.length);
  while (!header.atEnd) {
    const id = header.byte();
    const size = header.u32();
    const start = header.pos;
    const available = bytes.length - start;
    // A section claiming more bytes than there are is read only as far as its bytes go: the
    // entries that are really there are reported, then the reading stops (complete: false).
    const end = start + Math.min(size, available);
    const section = new Reader(bytes, start, end);
    readEntries(section, id, out);
    if (size > available) throw new Undecodable('section past the end');
    header.pos = end;
  }
}

function readComponentSection(r: Reader, id: number, out: WasmInterface): void {
  if (id === COMPONENT_IMPORT_SECTION) {
    readVec(r, () => {
      const name = externName(r);
      skipExternType(r);
      keep(out.imports, name);
    });
  } else if (id === COMPONENT_EXPORT_SECTION) {
    readVec(r, () => {
      const name = externName(r);
      skipSortIdx(r);
      const ascribed = r.byte();
      if (ascribed === 0x01) skipExternType(r);
      else if (ascribed !== 0x00) throw new Undecodable('bad optional export type');
      keep(out.exports, name);
    });
  }
}

function readCoreSection(r: Reader, id: number, out: WasmInterface): void {
  if (id === CORE_IMPORT_SECTION) {
    readVec(r, () => {
      const module = r.name();
      const field = r.name();
      skipCoreImportDesc(r);
      keep(out.imports, `${module}/${field}`);
    });
  } else if (id === CORE_EXPORT_SECTION) {
    readVec(r, () => {
      const name = r.name();
      const kind = r.byte();
      if (kind > 0x04) throw new Undecodable('bad export kind');
      r.u32();
      keep(out.exports, name);
    });
  }
}

/**
 * A vector of entries that must fill its section exactly. The count is only an upper bound on
 * the loop: each entry reads at least one byte or throws, so a claimed count of 2^32 - 1 over a
 * few bytes ends when the bytes do.
 */
function readVec(r: Reader, entry: () => void): void {
  const count = r.u32();
  for (let i = 0; i < count; i++) entry();
  if (!r.atEnd) throw new Undecodable('bytes left after the last entry');
}

function keep(list: string[], name: string): void {
  if (list.length >= MAX_WASM_NAMES) throw new Undecodable('too many names');
  list.push(name);
}

/**
 * An import or export name (`nameattributes` in Binary.md).
 * - 0x00 and 0x01, each followed by the name: 0x00 is what encoders write today; 0x01 is what
 *   they wrote for interface names (`a:b/c`) before component-model#263 (2023), and what
 *   wasm-tools' encoder kept writing until 2024-09. Both mean the same now.
 * - 0x02: the name, then attributes (implements, versionsuffix, external-id), as written by
 *   wasm-tools for `(implements "…")` and `(versionsuffix "…")`.
 * The name returned is the one a policy should match on:
 * - with `implements`, the interface implemented (`(import "primary" (implements
 *   "wasi:keyvalue/store") …)` gives `wasi:keyvalue/store`), since that is what the host must
 *   supply; the plain name is only the component's own label for it, and matching on it would
 *   let any import hide its interface behind a label;
 * - with a `versionsuffix`, the full version (`wasi:http/types@0.2` + `.1` gives
 *   `wasi:http/types@0.2.1`), as WIT shows it, so a policy sees the same name whether or not
 *   the toolchain canonicalised the version.
 */
function externName(r: Reader): string {
  const form = r.byte();
  if (form === 0x00 || form === 0x01) return r.name();
  if (form !== 0x02) throw new Undecodable('unknown name encoding');
  const name = r.name();
  let implemented: string | undefined;
  let suffix: string | undefined;
  let externalId = false;
  const count = r.u32();
  for (let i = 0; i < count; i++) {
    const kind = r.byte();
    // each at most once, as wasm-tools' validator requires
    if (kind === 0x00 && implemented === undefined) implemented = r.name();
    else if (kind === 0x01 && suffix === undefined) suffix = r.name();
    else if (kind === 0x02 && !externalId) {
      externalId = true;
      r.skipName();
    } else throw new Undecodable('unknown or repeated name attribute');
  }
  const named = implemented ?? name;
  // the suffix completes an interface version; a name without one has nothing to complete
  return suffix !== undefined && named.includes('@') ? named + suffix : named;
}

/** `externtype` (called `externdesc` in older versions of Binary.md): a kind and what it refers to. */
function skipExternType(r: Reader): void {
  const kind = r.byte();
  switch (kind) {
    case 0x00: // core module (type i)
      if (r.byte() !== 0x11) throw new Undecodable('bad core sort in externtype');
      r.u32();
      return;
    case 0x01: // func (type i)
    case 0x04: // component (type i)
    case 0x05: // instance (type i)
      r.u32();
      return;
    case 0x02: // value
      skipComponentValType(r);
      return;
    case 0x03: // type bound: (eq i) or (sub resource)
      switch (r.byte()) {
        case 0x00:
          r.u32();
          return;
        case 0x01:
          return;
        default:
          throw new Undecodable('bad type bound');
      }
    default:
      throw new Undecodable('unknown externtype');
  }
}

/**
 * A value import's type. Binary.md writes `0x02 valuebound` (0x00 valueidx | 0x01 valtype), but
 * wasm-tools, which writes and reads the binaries that exist, encodes a bare valtype there: a
 * primitive's one byte, or a type index as s33. We follow wasm-tools. Value imports are behind
 * the 🪙 feature flag, off by default in runtimes.
 */
function skipComponentValType(r: Reader): void {
  const b = r.peek();
  // bool … string (0x7f … 0x73) and error-context (0x64)
  if ((b >= 0x73 && b <= 0x7f) || b === 0x64) {
    r.byte();
    return;
  }
  if (r.s33() < 0) throw new Undecodable('bad value type');
}

/** `sortidx`: a sort (0x00 then a core sort, or one byte) and an index. */
function skipSortIdx(r: Reader): void {
  const sort = r.byte();
  if (sort === 0x00) {
    const core = r.byte();
    if (core > 0x04 && (core < 0x10 || core > 0x12)) throw new Undecodable('bad core sort');
  } else if (sort > 0x05) {
    throw new Undecodable('bad sort');
  }
  r.u32();
}

/** A core import's description: func, table, memory, global or tag. */
function skipCoreImportDesc(r: Reader): void {
  switch (r.byte()) {
    case 0x00: // func (type i)
      r.u32();
      return;
    case 0x01: // table: reftype, limits
      skipCoreValType(r);
      skipLimits(r);
      return;
    case 0x02: // memory: limits
      skipLimits(r);
      return;
    case 0x03: // global: valtype, mutability (0x02/0x03: shared, from shared-everything-threads)
      skipCoreValType(r);
      if (r.byte() > 0x03) throw new Undecodable('bad global mutability');
      return;
    case 0x04: // tag: attribute 0 (exception), type index
      if (r.byte() !== 0x00) throw new Undecodable('bad tag attribute');
      r.u32();
      return;
    default:
      throw new Undecodable('unknown import kind');
  }
}

/**
 * Limits of a table or memory. The flag byte: bit 0 a maximum follows, bit 1 shared (threads),
 * bit 2 64-bit (memory64, table64), bit 3 a page size follows (custom-page-sizes).
 */
function skipLimits(r: Reader): void {
  const flags = r.byte();
  if (flags > 0x0f) throw new Undecodable('bad limits');
  const bound = flags & 0x04 ? () => r.skipU64() : () => void r.u32();
  bound();
  if (flags & 0x01) bound();
  if (flags & 0x08) r.u32();
}

/**
 * A core value type, including reference types: a one-byte type, `0x63`/`0x64` (ref null / ref)
 * with a heap type (s33: an abbreviation or a type index), or `0x65` (shared) before a heap type.
 */
function skipCoreValType(r: Reader): void {
  const b = r.byte();
  // i32 … v128 (0x7f … 0x7b) and the abbreviated reference types (nocont 0x75 … cont 0x68)
  if ((b >= 0x7b && b <= 0x7f) || (b >= 0x68 && b <= 0x75)) return;
  if (b === 0x63 || b === 0x64) {
    skipHeapType(r);
    return;
  }
  if (b === 0x65) {
    r.byte(); // an abstract heap type
    return;
  }
  throw new Undecodable('unknown value type');
}

function skipHeapType(r: Reader): void {
  if (r.peek() === 0x65) {
    r.byte();
    r.byte();
    return;
  }
  r.s33();
}
