/**
 * readWasmInterface against real binaries and hostile ones. The components are built at test
 * time by wasm-tools (through @bytecodealliance/jco-transpile: jco's own `parse`, `componentEmbed`,
 * `componentNew` and `componentWit` live there; the full jco package adds only the JS toolchain),
 * and `componentWit`, wasm-tools' own decoder, is the oracle for the names. Core modules are
 * checked against V8's WebAssembly.Module.imports/exports (compiled, never instantiated). The
 * encodings no tool writes any more (the 0x01 name prefix), and the broken binaries, are made by
 * the small encoder below.
 */
import { componentEmbed, componentNew, componentWit, parse } from '@bytecodealliance/jco-transpile/wasm-tools';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_WASM_NAME_BYTES, MAX_WASM_NAMES, readWasmInterface, type WasmInterface } from '../../src/policy/wasm-component.ts';

// -- a small encoder for the binaries no tool writes ---------------------------------------------

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}
const utf8 = (s: string): number[] => [...new TextEncoder().encode(s)];
const str = (s: string): number[] => [...leb(utf8(s).length), ...utf8(s)];
const section = (id: number, content: number[]): number[] => [id, ...leb(content.length), ...content];
const COMPONENT = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
const CORE = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const component = (...sections: number[][]): Uint8Array => Uint8Array.from([...COMPONENT, ...sections.flat()]);
/** type 0: an instance type with no declarations, for imports to refer to */
const instanceType = section(7, [1, 0x42, 0]);
/** an import of an instance of type 0, its name written with the given prefix form */
const instanceImport = (name: string, form = 0x00): number[] => [form, ...str(name), 0x05, 0x00];
const imports = (...entries: number[][]): number[] => section(10, [...leb(entries.length), ...entries.flat()]);

/** The offsets at which a binary's top-level sections end (and the header's), read independently of the reader under test. */
function sectionEnds(bytes: Uint8Array): Set<number> {
  const ends = new Set([8]);
  let pos = 8;
  while (pos < bytes.length) {
    pos++; // id
    let size = 0;
    for (let shift = 0; ; shift += 7) {
      const b = bytes[pos++]!;
      size += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
    }
    pos += size;
    ends.add(pos);
  }
  return ends;
}

// -- the oracle: the names wasm-tools' WIT printer gives a component -----------------------------

/** `import wasi:cli/environment@0.2.0;` and `import log: func(…);` lines of the printed world, as names. */
async function witNames(bytes: Uint8Array): Promise<{ imports: string[]; exports: string[] }> {
  const wit = await componentWit(bytes);
  const names = { imports: [] as string[], exports: [] as string[] };
  for (const line of wit.split('\n')) {
    const m = /^ {2}(import|export) ([^:;\s]+(?::[^:;\s/]+\/[^;\s:]+)?)[;:]/.exec(line);
    if (m) names[m[1] === 'import' ? 'imports' : 'exports'].push(m[2]!);
  }
  return names;
}

/** A core module's names as V8 reads them: compiled (validated), never instantiated. */
function v8Names(bytes: Uint8Array): { imports: string[]; exports: string[] } {
  const module = new WebAssembly.Module(new Uint8Array(bytes)); // a copy: WebAssembly.Module takes no shared buffer
  return { imports: WebAssembly.Module.imports(module).map((i) => `${i.module}/${i.name}`), exports: WebAssembly.Module.exports(module).map((e) => e.name) };
}

async function fromWit(wit: string): Promise<Uint8Array> {
  return componentNew(await componentEmbed({ dummy: true, witSource: wit, world: 'app' }));
}

/** Minimal WASI packages, enough for worlds to name real interfaces. */
const wasiPackages = `
package wasi:sockets@0.2.0 {
  interface network { type error-code = u32; }
  interface tcp { use network.{error-code}; connect: func(port: u16) -> result<_, error-code>; }
  interface ip-name-lookup { resolve: func(name: string) -> list<u8>; }
}
package wasi:cli@0.2.0 {
  interface environment { get-environment: func() -> list<tuple<string, string>>; }
  interface stdout { write: func(bytes: list<u8>); }
  interface run { run: func() -> result; }
}
`;

const notWasm: WasmInterface = { component: false, imports: [], exports: [], complete: false };

describe('readWasmInterface on components', () => {
  let sockets: Uint8Array;
  let withExports: Uint8Array;

  beforeAll(async () => {
    sockets = await fromWit(`package test:app;
world app {
  import wasi:sockets/tcp@0.2.0;
  import wasi:sockets/ip-name-lookup@0.2.0;
  import wasi:cli/environment@0.2.0;
  import wasi:cli/stdout@0.2.0;
}
${wasiPackages}`);
    withExports = await fromWit(`package test:app;
world app {
  import wasi:cli/environment@0.2.0;
  import log: func(message: string);
  export run: func();
  export wasi:cli/run@0.2.0;
  export greet: func(name: string) -> string;
}
${wasiPackages}`);
  });

  it('reads the wasi:sockets and wasi:cli imports of a component, exactly as wasm-tools does', async () => {
    const got = readWasmInterface(sockets);
    // componentNew also imports wasi:sockets/network, which tcp uses
    expect(got).toEqual({
      component: true,
      imports: [
        'wasi:sockets/network@0.2.0',
        'wasi:sockets/tcp@0.2.0',
        'wasi:sockets/ip-name-lookup@0.2.0',
        'wasi:cli/environment@0.2.0',
        'wasi:cli/stdout@0.2.0',
      ],
      exports: [],
      complete: true,
    });
    expect(await witNames(sockets)).toEqual({ imports: got.imports, exports: got.exports });
  });

  it('reads exports: plain names and interfaces', async () => {
    const got = readWasmInterface(withExports);
    expect(got).toEqual({
      component: true,
      imports: ['wasi:cli/environment@0.2.0', 'log'],
      // in the binary's order: wasm-tools writes the functions before the interfaces
      exports: ['run', 'greet', 'wasi:cli/run@0.2.0'],
      complete: true,
    });
    expect(await witNames(withExports)).toEqual({ imports: got.imports, exports: got.exports });
  });

  it('reads only the top level: the imports of nested core modules and components are not the host’s to supply', async () => {
    const bytes = await parse(`(component
      (import "wasi:cli/environment@0.2.0" (instance))
      (core module $m (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))))
      (component $inner
        (import "wasi:sockets/tcp@0.2.0" (instance))
        (core module (import "env" "connect" (func)))
        (export "hidden" (core module 0)))
      (export "module" (core module $m))
      (export "inner" (component $inner))
    )`);
    expect(readWasmInterface(bytes)).toEqual({ component: true, imports: ['wasi:cli/environment@0.2.0'], exports: ['module', 'inner'], complete: true });
  });

  it('reads the older 0x01 name prefix as wasm-tools does, beside the current 0x00', async () => {
    const bytes = component(instanceType, imports(instanceImport('wasi:sockets/tcp@0.2.0', 0x01), instanceImport('wasi:cli/environment@0.2.0', 0x00)));
    const got = readWasmInterface(bytes);
    expect(got).toEqual({ component: true, imports: ['wasi:sockets/tcp@0.2.0', 'wasi:cli/environment@0.2.0'], exports: [], complete: true });
    expect((await witNames(bytes)).imports).toEqual(got.imports);
  });

  it('gives the interface an `implements` import stands for, and the full version of a canonicalised one', async () => {
    const bytes = await parse(`(component
      (import "net" (implements "wasi:sockets/tcp@0.2.0") (instance))
      (import "wasi:http/types@0.2" (versionsuffix ".1") (instance))
    )`);
    // written in the 0x02 form: the name, then one attribute (0x00: implements)
    expect(Buffer.from(bytes).includes(Buffer.from([0x02, ...str('net'), 1, 0x00, ...str('wasi:sockets/tcp@0.2.0')]))).toBe(true);
    expect(readWasmInterface(bytes)).toEqual({ component: true, imports: ['wasi:sockets/tcp@0.2.0', 'wasi:http/types@0.2.1'], exports: [], complete: true });
    const wit = await componentWit(bytes);
    expect(wit).toContain('import net: wasi:sockets/tcp@0.2.0;');
    expect(wit).toContain('import wasi:http/types@0.2.1;');
  });

  it('steps over value, type and func imports, and ascribed export types', () => {
    const bytes = component(
      section(10, [
        ...[3],
        ...[0x00, ...str('v'), 0x02, 0x73], // value: string
        ...[0x00, ...str('r'), 0x03, 0x01], // type: (sub resource)
        ...[0x00, ...str('t'), 0x03, 0x00, 0x00], // type: (eq 0)
      ]),
      section(11, [1, 0x00, ...str('e'), 0x03, 0x00, 0x01, 0x03, 0x00, 0x00]), // type 0, ascribed (eq 0)
    );
    expect(readWasmInterface(bytes)).toEqual({ component: true, imports: ['v', 'r', 't'], exports: ['e'], complete: true });
  });

  it('survives a truncation at every byte: never throws, lists only grow, and are whole only at a section boundary', () => {
    for (const bytes of [sockets, withExports]) {
      const full = readWasmInterface(bytes);
      const ends = sectionEnds(bytes);
      expect(ends.has(bytes.length)).toBe(true);
      let previous = { imports: 0, exports: 0 };
      for (let n = 0; n <= bytes.length; n++) {
        const got = readWasmInterface(bytes.subarray(0, n));
        if (n < 8) {
          expect(got).toEqual(notWasm);
          continue;
        }
        expect(got.component).toBe(true);
        expect(got.imports).toEqual(full.imports.slice(0, got.imports.length));
        expect(got.exports).toEqual(full.exports.slice(0, got.exports.length));
        expect(got.imports.length).toBeGreaterThanOrEqual(previous.imports);
        expect(got.exports.length).toBeGreaterThanOrEqual(previous.exports);
        expect(got.complete, `cut at ${n} of ${bytes.length}`).toBe(ends.has(n));
        previous = { imports: got.imports.length, exports: got.exports.length };
      }
      expect(previous).toEqual({ imports: full.imports.length, exports: full.exports.length });
    }
  });
});

describe('readWasmInterface on core modules', () => {
  it('reads module/name imports and exports of every kind, as V8 does', async () => {
    const bytes = await parse(`(module
      (type $t (func (param i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
      (import "env" "memory" (memory 1 2 shared))
      (import "env" "big" (memory i64 1))
      (import "env" "table" (table 1 10 (ref null $t)))
      (import "env" "funcs" (table 2 funcref))
      (import "env" "counter" (global (mut i64)))
      (import "env" "ref" (global externref))
      (import "env" "oops" (tag (param i32)))
      (func (export "run"))
      (global (export "version") i32 (i32.const 1))
      (memory (export "heap") 1)
    )`);
    const got = readWasmInterface(bytes);
    expect(got).toEqual({
      component: false,
      imports: ['wasi_snapshot_preview1/fd_write', 'env/memory', 'env/big', 'env/table', 'env/funcs', 'env/counter', 'env/ref', 'env/oops'],
      exports: ['run', 'version', 'heap'],
      complete: true,
    });
    expect({ imports: got.imports, exports: got.exports }).toEqual(v8Names(bytes));
  });

  it('reads the core module inside a component, when given alone', async () => {
    const core = await componentEmbed({
      dummy: true,
      witSource: `package test:app; world app { import log: func(m: string); export run: func(); }`,
      world: 'app',
    });
    const got = readWasmInterface(core);
    expect(got.component).toBe(false);
    expect(got.complete).toBe(true);
    expect({ imports: got.imports, exports: got.exports }).toEqual(v8Names(core));
    expect(got.imports.some((name) => name.endsWith('/log'))).toBe(true);
  });

  it('survives a truncation at every byte', async () => {
    const bytes = await parse(`(module (import "env" "f" (func)) (import "env" "m" (memory 1)) (func (export "run")) (func (export "stop")))`);
    const full = readWasmInterface(bytes);
    const ends = sectionEnds(bytes);
    for (let n = 8; n <= bytes.length; n++) {
      const got = readWasmInterface(bytes.subarray(0, n));
      expect(got.imports).toEqual(full.imports.slice(0, got.imports.length));
      expect(got.exports).toEqual(full.exports.slice(0, got.exports.length));
      expect(got.complete).toBe(ends.has(n));
    }
  });
});

describe('readWasmInterface on hostile input', () => {
  it('takes anything that is not a module or component for neither', () => {
    let seed = 42;
    const random = Uint8Array.from({ length: 4096 }, () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) & 0xff);
    for (const bytes of [
      new Uint8Array(0),
      Uint8Array.from(utf8('{"schemaVersion": 2}')),
      Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), // ELF
      random,
      Uint8Array.from([0x00, 0x61, 0x73, 0x6d]), // the magic alone
      Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x0c, 0x00, 0x01, 0x00]), // an older component version
      Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x02, 0x00, 0x00, 0x00]), // an unknown core version
      Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x02, 0x00]), // an unknown layer
    ]) {
      expect(readWasmInterface(bytes)).toEqual(notWasm);
    }
    // from plain JavaScript, no type keeps other values out
    for (const value of [undefined, null, 'wasm', 42, new ArrayBuffer(16), [0, 0x61, 0x73, 0x6d]]) {
      expect(readWasmInterface(value as unknown as Uint8Array)).toEqual(notWasm);
    }
  });

  it('reads the entries really there when an import section claims 4 GiB', () => {
    const entries = [2, ...instanceImport('wasi:sockets/tcp@0.2.0'), ...instanceImport('wasi:cli/environment@0.2.0')];
    const bytes = component(instanceType, [10, 0xff, 0xff, 0xff, 0xff, 0x0f, ...entries]);
    expect(readWasmInterface(bytes)).toEqual({
      component: true,
      imports: ['wasi:sockets/tcp@0.2.0', 'wasi:cli/environment@0.2.0'],
      exports: [],
      complete: false,
    });
  });

  it('stops at a skipped section that claims more bytes than there are', () => {
    const exports = section(11, [1, 0x00, ...str('run'), 0x01, 0x00, 0x00]);
    const bytes = component(imports(instanceImport('wasi:cli/environment@0.2.0')), [0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, ...exports]);
    expect(readWasmInterface(bytes)).toEqual({ component: true, imports: ['wasi:cli/environment@0.2.0'], exports: [], complete: false });
    const core = Uint8Array.from([...CORE, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x60, 0x00, 0x00]);
    expect(readWasmInterface(core)).toEqual({ component: false, imports: [], exports: [], complete: false });
  });

  it('ends a claimed count of 2^32 - 1 entries when the bytes end', () => {
    const content = [0xff, 0xff, 0xff, 0xff, 0x0f, ...instanceImport('wasi:cli/stdout@0.2.0')];
    const bytes = component(section(10, content));
    expect(readWasmInterface(bytes)).toEqual({ component: true, imports: ['wasi:cli/stdout@0.2.0'], exports: [], complete: false });
  });

  it('refuses LEB128s longer or larger than 32 bits, and ends on a megabyte of continuation bytes', () => {
    const overlong = component([10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]); // six bytes for a u32
    const tooLarge = component([10, 0xff, 0xff, 0xff, 0xff, 0x1f]); // bit 32 set
    const endless = new Uint8Array(8 + 1 + (1 << 20)).fill(0x80);
    endless.set([...COMPONENT, 10]);
    const nameLength = component(section(10, [1, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f, ...utf8('x')]));
    for (const bytes of [overlong, tooLarge, endless, nameLength]) {
      expect(readWasmInterface(bytes)).toEqual({ component: true, imports: [], exports: [], complete: false });
    }
    // a valid five-byte size is read as such: 6 written in five bytes
    const padded = component(instanceType, [10, 0x86, 0x80, 0x80, 0x80, 0x00, 1, ...[0x00, 1, 0x61, 0x05, 0x00]]);
    expect(readWasmInterface(padded)).toEqual({ component: true, imports: ['a'], exports: [], complete: true });
  });

  it('keeps the entries before one it cannot decode, and stops there', () => {
    const good = instanceImport('wasi:cli/environment@0.2.0');
    const after = instanceImport('wasi:sockets/tcp@0.2.0');
    const cases: Record<string, number[]> = {
      'unknown name form': [0x03, ...str('x'), 0x05, 0x00],
      'unknown externtype': [0x00, ...str('x'), 0x06, 0x00],
      'bad core sort in externtype': [0x00, ...str('x'), 0x00, 0x10, 0x00],
      'bad type bound': [0x00, ...str('x'), 0x03, 0x02],
      'type index over 32 bits': [0x00, ...str('x'), 0x05, 0xff, 0xff, 0xff, 0xff, 0x7f],
      'type index in six bytes': [0x00, ...str('x'), 0x05, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
      'repeated attribute': [0x02, ...str('x@1'), 2, 0x01, ...str('.0'), 0x01, ...str('.1'), 0x05, 0x00],
      'unknown attribute': [0x02, ...str('x'), 1, 0x07, ...str('y'), 0x05, 0x00],
      'invalid UTF-8': [0x00, 2, 0xc3, 0x28, 0x05, 0x00],
      'name over the cap': [0x00, ...str('a'.repeat(MAX_WASM_NAME_BYTES + 1)), 0x05, 0x00],
    };
    for (const [what, entry] of Object.entries(cases)) {
      const bytes = component(instanceType, imports(good, entry, after));
      expect(readWasmInterface(bytes), what).toEqual({ component: true, imports: ['wasi:cli/environment@0.2.0'], exports: [], complete: false });
    }
    const longest = 'a'.repeat(MAX_WASM_NAME_BYTES);
    expect(readWasmInterface(component(instanceType, imports(instanceImport(longest)))).imports).toEqual([longest]);
  });

  it('stops at bytes left over after the last entry of a section', () => {
    const content = [1, ...instanceImport('wasi:cli/stdout@0.2.0'), 0x00];
    expect(readWasmInterface(component(instanceType, section(10, content)))).toEqual({
      component: true,
      imports: ['wasi:cli/stdout@0.2.0'],
      exports: [],
      complete: false,
    });
  });

  it('caps a list at MAX_WASM_NAMES names', () => {
    const many = Array.from({ length: MAX_WASM_NAMES + 10 }, (_, i) => instanceImport(`i${i}`));
    const got = readWasmInterface(component(instanceType, imports(...many)));
    expect(got.imports).toHaveLength(MAX_WASM_NAMES);
    expect(got.imports.at(-1)).toBe(`i${MAX_WASM_NAMES - 1}`);
    expect(got.complete).toBe(false);
  });
});
