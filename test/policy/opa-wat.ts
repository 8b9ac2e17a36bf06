/**
 * Test modules for the OPA Wasm engine, built from WAT at test time with wabt (no .wasm is kept
 * in the repository), and bundles made of them as `opa build -t wasm` writes them.
 *
 * A module is test/policy/wat/runtime.wat (a tiny implementation of the ABI's exports) plus one
 * policy file from that folder (its $decide), wrapped here in the imports, the ABI version
 * globals, the builtins and entrypoints maps, and the exports of the ABI version asked for
 * (docs: https://www.openpolicyagent.org/docs/wasm).
 */
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import wabtInit from 'wabt';
import type { EngineCaseName } from '../suites/policy-engine.ts';

const wat = (name: string) => readFileSync(new URL(`./wat/${name}.wat`, import.meta.url), 'utf8');

/** each engine case's policy file in test/policy/wat/, the data document it reads, and the host built-ins it calls */
export const casePolicies: Record<EngineCaseName, { policy: string; data?: unknown; builtins?: Record<string, number> }> = {
  'allow-all': { policy: 'allow-all' },
  'deny-all': { policy: 'deny-all' },
  'require-cost-center': { policy: 'require-cost-center' },
  'signed-by-release': { policy: 'signed-by-release' },
  'over-quota': { policy: 'over-quota' },
  'forbidden-license': { policy: 'forbidden-license', data: { forbidden: 'AGPL-3.0-only' } },
  'no-wasi-sockets': { policy: 'no-wasi-sockets' },
  'release-tags-maintenance-window': { policy: 'release-tags-maintenance-window', builtins: { 'time.parse_rfc3339_ns': 0, 'time.clock': 1 } },
};

export interface ModuleOptions {
  /** the ABI version the module declares: [1, 1], [1, 2] (default) or [1, 3]; others to see them refused */
  abi?: [number, number];
  /** the builtins export: name → id */
  builtins?: Record<string, number>;
  /** the entrypoints export: name → id (default: custody/deny as 0) */
  entrypoints?: Record<string, number>;
  /** exports to leave out */
  omit?: string[];
  /** more imports, in WAT */
  imports?: string;
  /** more module fields, in WAT */
  fields?: string;
  /** env.memory's declared limits (default: 2 pages, no maximum) */
  memory?: string;
  /** leave env.memory's import out */
  noMemoryImport?: boolean;
  /** wabt features to enable (gc, threads, …); wabt's validation knows only its defaults, so V8 alone validates these */
  features?: Record<string, boolean>;
  /** false: write the module even if it does not validate (to see V8 refuse it) */
  validate?: boolean;
}

/** WAT's string syntax for bytes. */
function watString(text: string): string {
  return [...new TextEncoder().encode(text)]
    .map((b) => (b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\${b.toString(16).padStart(2, '0')}`))
    .join('');
}

/** exports by ABI version: what OPA's modules of that version export (docs' version notes) */
function exportsFor(minor: number): [string, string][] {
  const fn = (name: string, func = name): [string, string] => [name, `(func $${func})`];
  const list: [string, string][] = [
    fn('opa_malloc'),
    fn('opa_free'),
    fn('opa_json_parse'),
    fn('opa_value_parse', 'opa_json_parse'),
    fn('opa_json_dump'),
    fn('opa_value_dump', 'opa_json_dump'),
    fn('opa_heap_ptr_get'),
    fn('opa_heap_ptr_set'),
    fn('opa_value_add_path'),
    fn('opa_value_remove_path'),
    fn('builtins'),
    fn('entrypoints'),
    fn('opa_eval_ctx_new'),
    fn('opa_eval_ctx_set_input'),
    fn('opa_eval_ctx_set_data'),
    fn('opa_eval_ctx_set_entrypoint'),
    fn('opa_eval_ctx_get_result'),
    fn('eval'),
  ];
  if (minor >= 1) list.push(['memory', '(memory 0)']);
  if (minor >= 2) list.push(fn('opa_eval'));
  if (minor >= 3) list.push(fn('opa_value_free'), fn('opa_heap_blocks_stash'), fn('opa_heap_blocks_restore'), fn('opa_heap_stash_clear'));
  return list;
}

let wabt: Awaited<ReturnType<typeof wabtInit>> | undefined;

/** The module's WAT text. */
export function moduleText(policy: string, o: ModuleOptions = {}): string {
  const [major, minor] = o.abi ?? [1, 2];
  const builtins = JSON.stringify(o.builtins ?? {});
  const entrypoints = JSON.stringify(o.entrypoints ?? { 'custody/deny': 0 });
  if (builtins.length > 440 || entrypoints.length > 440) throw new Error('the builtins and entrypoints maps get 440 bytes each');
  const omit = new Set(o.omit ?? []);
  const exports = exportsFor(minor)
    .filter(([name]) => !omit.has(name))
    .map(([name, what]) => `(export "${name}" ${what})`)
    .join('\n  ');
  return `(module
  ${o.noMemoryImport ? '' : `(import "env" "memory" (memory ${o.memory ?? '2'}))`}
  (import "env" "opa_abort" (func $opa_abort (param i32)))
  (import "env" "opa_println" (func $opa_println (param i32)))
  (import "env" "opa_builtin0" (func $opa_builtin0 (param i32 i32) (result i32)))
  (import "env" "opa_builtin1" (func $opa_builtin1 (param i32 i32 i32) (result i32)))
  (import "env" "opa_builtin2" (func $opa_builtin2 (param i32 i32 i32 i32) (result i32)))
  (import "env" "opa_builtin3" (func $opa_builtin3 (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "opa_builtin4" (func $opa_builtin4 (param i32 i32 i32 i32 i32 i32) (result i32)))
  ${o.imports ?? ''}
  ${omit.has('opa_wasm_abi_version') ? '' : `(global (export "opa_wasm_abi_version") i32 (i32.const ${major}))`}
  ${omit.has('opa_wasm_abi_minor_version') ? '' : `(global (export "opa_wasm_abi_minor_version") i32 (i32.const ${minor}))`}
  (data (i32.const 128) "${watString(builtins)}")
  (func $builtins (result i32) (call $value (i32.const 128) (i32.const ${new TextEncoder().encode(builtins).length})))
  (data (i32.const 576) "${watString(entrypoints)}")
  (func $entrypoints (result i32) (call $value (i32.const 576) (i32.const ${new TextEncoder().encode(entrypoints).length})))
  ${wat('runtime')}
  ${wat(policy)}
  ${o.fields ?? ''}
  ${exports}
)`;
}

/** A policy module's bytes: the runtime, a policy file from test/policy/wat/, and the ABI's exports. */
export async function buildModule(policy: string, o: ModuleOptions = {}): Promise<Uint8Array> {
  return assemble(moduleText(policy, o), o.features, o.validate ?? !o.features);
}

/** WAT text to Wasm bytes. */
export async function assemble(text: string, features: Record<string, boolean> = {}, validate = true): Promise<Uint8Array> {
  wabt ??= await wabtInit();
  const parsed = wabt.parseWat('policy.wat', text, { bulk_memory: true, ...features });
  try {
    parsed.resolveNames();
    if (validate) parsed.validate();
    return parsed.toBinary({}).buffer.slice();
  } finally {
    parsed.destroy();
  }
}

export interface TarFile {
  name: string;
  bytes?: Uint8Array | string;
  /** the ustar type flag: '0' a file (default), '5' a directory, '2' a symbolic link, 'x' a PAX header */
  type?: string;
  linkname?: string;
}

/** A ustar archive, as Go's archive/tar (and so opa build) writes one. */
export function tar(files: TarFile[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  const field = (header: Uint8Array, at: number, length: number, text: string) => header.set(new TextEncoder().encode(text).subarray(0, length), at);
  for (const f of files) {
    const bytes = typeof f.bytes === 'string' ? new TextEncoder().encode(f.bytes) : (f.bytes ?? new Uint8Array(0));
    const header = new Uint8Array(512);
    field(header, 0, 100, f.name);
    field(header, 100, 8, '0000600\0');
    field(header, 108, 8, '0000000\0');
    field(header, 116, 8, '0000000\0');
    field(header, 124, 12, `${bytes.length.toString(8).padStart(11, '0')}\0`);
    field(header, 136, 12, '00000000000\0');
    field(header, 156, 1, f.type ?? '0');
    field(header, 157, 100, f.linkname ?? '');
    field(header, 257, 6, 'ustar\0');
    field(header, 263, 2, '00');
    header.fill(0x20, 148, 156);
    const sum = header.reduce((a, b) => a + b, 0);
    field(header, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
    blocks.push(header, bytes, new Uint8Array((512 - (bytes.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  return Buffer.concat(blocks);
}

/** A PAX record, `<length> key=value\n`. */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = body.length + 1;
  while (`${length}${body}`.length !== length) length++;
  return `${length}${body}`;
}

/** bundle.tar.gz as opa build -t wasm writes it: /policy.wasm, /data.json if given, /.manifest, the Rego source. */
export function bundle(wasm: Uint8Array, data?: unknown, extra: TarFile[] = []): Uint8Array {
  const files: TarFile[] = [];
  if (data !== undefined) files.push({ name: '/data.json', bytes: JSON.stringify(data) });
  files.push({ name: '/policy.wasm', bytes: wasm });
  files.push({ name: '/policy.rego', bytes: 'package custody\n' });
  files.push({ name: '/.manifest', bytes: JSON.stringify({ revision: '', roots: [''], wasm: [{ entrypoint: 'custody/deny', module: '/policy.wasm' }] }) });
  return gzipSync(tar([...files, ...extra]));
}
