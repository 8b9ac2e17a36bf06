/** What the OPA engine checks in a Wasm module when a policy is saved, before any of its code runs. */
import { describe, expect, it } from 'vitest';
import { PolicyRejected } from '../../src/policy/engine.ts';
import { compileModule, inspectModule } from '../../src/policy/opa/module.ts';
import { buildModule, type ModuleOptions } from './opa-wat.ts';

async function refusal(options: ModuleOptions, policy = 'allow-all', pages = 256): Promise<string> {
  const bytes = await buildModule(policy, options);
  try {
    await compileModule(bytes, pages);
  } catch (err) {
    if (err instanceof PolicyRejected) return err.message;
    throw err;
  }
  throw new Error(`the module was accepted: ${JSON.stringify(options)}`);
}

describe('OPA Wasm modules when saved', () => {
  it('accepts ABI 1.1, 1.2 and 1.3 modules and reads their version from the exported globals', async () => {
    for (const minor of [1, 2, 3]) {
      const facts = inspectModule(await buildModule('allow-all', { abi: [1, minor] }));
      expect(facts.abi).toEqual({ major: 1, minor });
      expect(facts.memoryMinPages).toBe(2);
    }
  });

  it('refuses other ABI versions, naming them', async () => {
    expect(await refusal({ abi: [1, 0] })).toMatch(/ABI 1\.0; Custody runs ABI 1\.1 to 1\.3/);
    expect(await refusal({ abi: [1, 4] })).toMatch(/ABI 1\.4/);
    expect(await refusal({ abi: [2, 0] })).toMatch(/ABI 2\.0/);
    expect(await refusal({ omit: ['opa_wasm_abi_version'] })).toMatch(/does not export the global opa_wasm_abi_version/);
    expect(await refusal({ omit: ['opa_wasm_abi_minor_version'] })).toMatch(/opa_wasm_abi_minor_version/);
    expect(await refusal({ omit: ['opa_wasm_abi_version'], fields: '(global (export "opa_wasm_abi_version") (mut i32) (i32.const 0))' })).toMatch(/ABI 0\.2/);
    const computed = await refusal({
      omit: ['opa_wasm_abi_version'],
      fields: '(global (export "opa_wasm_abi_version") i32 (i32.add (i32.const 1) (i32.const 0)))',
      features: { extended_const: true },
    });
    expect(computed).toMatch(/opa_wasm_abi_version is not a constant i32/);
  });

  it('refuses a module without an export the host calls for its ABI version', async () => {
    expect(await refusal({ abi: [1, 2], omit: ['opa_eval'] })).toMatch(/ABI 1\.2\) does not export opa_eval/);
    expect(await refusal({ abi: [1, 1], omit: ['eval', 'opa_eval_ctx_new'] })).toMatch(/does not export opa_eval_ctx_new, eval/);
    expect(await refusal({ omit: ['opa_json_dump', 'entrypoints'] })).toMatch(/does not export opa_json_dump, entrypoints/);
    // ABI 1.2 evaluates through opa_eval alone: the context exports are not needed
    const oneCall = await buildModule('allow-all', { abi: [1, 2], omit: ['eval', 'opa_eval_ctx_new', 'opa_eval_ctx_set_input'] });
    expect(inspectModule(oneCall).abi.minor).toBe(2);
  });

  it('refuses imports the ABI does not provide, naming the import', async () => {
    const wasi = await refusal({ imports: '(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))' });
    expect(wasi).toMatch(/imports wasi_snapshot_preview1\.fd_write, which OPA's Wasm ABI does not provide/);
    expect(await refusal({ imports: '(import "env" "http_send" (func (param i32) (result i32)))' })).toMatch(/imports env\.http_send/);
    expect(await refusal({ imports: '(import "env" "opa_abort_global" (global i32))' })).toMatch(/imports env\.opa_abort_global/);
    // the right name with the wrong kind is not what the ABI provides either
    expect(await refusal({ imports: '(import "env" "opa_builtin0" (global i32))' })).toMatch(/imports env\.opa_builtin0/);
  });

  it('refuses modules that would allocate outside the memory limit', async () => {
    expect(await refusal({ noMemoryImport: true, fields: '(memory 1)' })).toMatch(/defines its own memory/);
    expect(await refusal({ noMemoryImport: true, imports: '(import "env" "mem" (memory 1))' })).toMatch(/imports env\.mem/);
    expect(await refusal({ fields: '(table 100000 100000 funcref)' })).toMatch(/table of up to 100000 entries/);
    expect(await refusal({ fields: '(table 10 funcref)' })).toMatch(/table of up to any number of entries/);
    expect(await refusal({ memory: '2 16 shared', features: { threads: true } })).toMatch(/shared or 64-bit memory/);
    expect(await refusal({ fields: '(type $cell (struct (field i32)))', features: { gc: true, function_references: true, reference_types: true } })).toMatch(
      /Wasm GC/,
    );
    expect(await refusal({ memory: '300' }, 'allow-all', 256)).toMatch(/needs 300 pages of memory to start, over the limit of 256/);
    // a table of OPA's kind (equal bounds, a few hundred entries) is fine
    expect(inspectModule(await buildModule('allow-all', { fields: '(table 477 477 funcref)' })).abi.minor).toBe(2);
  });

  it('refuses what is not a core Wasm module, or a damaged one, with PolicyRejected', async () => {
    const good = await buildModule('allow-all');
    const cases: [string, Uint8Array][] = [
      ['a component', new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00])],
      ['text', new TextEncoder().encode('(module)')],
      ['truncated', good.subarray(0, Math.floor(good.length / 2))],
      ['a section past the end', new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0xff, 0x01])],
      ['a bad code section', new Uint8Array([...good, 0x0a, 0x03, 0x01, 0x01, 0xff])],
    ];
    for (const [what, bytes] of cases) {
      await expect(compileModule(bytes, 256), what).rejects.toBeInstanceOf(PolicyRejected);
    }
    expect(() => inspectModule(cases[0]![1])).toThrow(/not a core Wasm module/);
  });

  it('refuses a module whose code does not validate, with V8’s reason', async () => {
    // a function that says it returns an i32 and returns an f32
    const bytes = await buildModule('allow-all', { fields: '(func $bad (result i32) (f32.const 1))', validate: false });
    const err = await compileModule(bytes, 256).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyRejected);
    expect((err as Error).message).toMatch(/^policy\.wasm is not a valid Wasm module: .*type/i);
  });
});
