/** Reading OPA bundles (bundle.tar.gz) and bare policy.wasm from bytes, within limits. */
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { PolicyRejected } from '../../src/policy/engine.ts';
import { readBundle } from '../../src/policy/opa/bundle.ts';
import { readTar } from '../../src/policy/opa/tar.ts';
import { bundle, paxRecord, tar, type TarFile } from './opa-wat.ts';

const wasm = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x2a]);
const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined);

async function refusal(bytes: Uint8Array, limits = {}): Promise<string> {
  try {
    await readBundle(bytes, limits);
  } catch (err) {
    if (err instanceof PolicyRejected) return err.message;
    throw err;
  }
  throw new Error('the bundle was accepted');
}

describe('OPA bundles', () => {
  it('reads /policy.wasm and /data.json from a bundle as opa build writes it, and skips the rest', async () => {
    const read = await readBundle(
      bundle(wasm, { forbidden: 'AGPL-3.0-only' }, [
        { name: '/lib/helpers.rego', bytes: 'package lib' },
        { name: '/lib', type: '5' },
      ]),
    );
    expect(read.wasm).toEqual(wasm);
    expect(JSON.parse(text(read.data)!)).toEqual({ forbidden: 'AGPL-3.0-only' });
    expect((await readBundle(bundle(wasm))).data).toBeUndefined();
  });

  it('takes a bare policy.wasm as a module without data', async () => {
    expect(await readBundle(wasm)).toEqual({ wasm, data: undefined });
  });

  it('reads the names other tar writers use: ./ prefixes, PAX paths, GNU long names, ustar prefixes', async () => {
    const long = `${'deep/'.repeat(30)}rules.rego`;
    const files: TarFile[] = [
      { name: './data.json', bytes: '{"a":1}' },
      { name: 'PaxHeader', type: 'x', bytes: paxRecord('path', long) + paxRecord('mtime', '1.5') },
      { name: 'truncated-name', bytes: 'package deep' },
      { name: '././@LongLink', type: 'L', bytes: `${long}.bak\0` },
      { name: 'short', bytes: 'package deep' },
      { name: 'pax_global_header', type: 'g', bytes: paxRecord('comment', 'made by git archive') },
      { name: 'policy.wasm', bytes: wasm },
    ];
    const entries = readTar(tar(files), { entries: 100 });
    expect(entries.map((e) => e.name)).toEqual(['data.json', long, `${long}.bak`, 'policy.wasm']);
    const read = await readBundle(gzipSync(tar(files)));
    expect(read.wasm).toEqual(wasm);
    expect(text(read.data)).toBe('{"a":1}');
  });

  it('refuses names that could pass for another entry, links, devices, and duplicates', async () => {
    const gz = (files: TarFile[]) => gzipSync(tar(files));
    expect(await refusal(gz([{ name: 'x/../policy.wasm', bytes: wasm }]))).toMatch(/has a \.\. in its path/);
    expect(await refusal(gz([{ name: '../../etc/data.json', bytes: '{}' }]))).toMatch(/has a \.\. in its path/);
    expect(await refusal(gz([{ name: 'policy.wasm', type: '2', linkname: '/etc/passwd' }]))).toMatch(/symbolic link "policy.wasm" has no place in a bundle/);
    expect(await refusal(gz([{ name: 'data.json', type: '1', linkname: 'policy.wasm' }]))).toMatch(/hard link/);
    expect(await refusal(gz([{ name: 'dev', type: '3' }]))).toMatch(/device/);
    expect(
      await refusal(
        gz([
          { name: '/policy.wasm', bytes: wasm },
          { name: './policy.wasm', bytes: wasm },
        ]),
      ),
    ).toMatch(/\/policy\.wasm twice/);
    expect(
      await refusal(
        gz([
          { name: 'policy.wasm', bytes: wasm },
          { name: 'data.json', bytes: '{}' },
          { name: '/data.json', bytes: '{}' },
        ]),
      ),
    ).toMatch(/\/data\.json twice/);
    // OPA would mount these at data.teams; Custody reads only /data.json, and says so
    expect(
      await refusal(
        gz([
          { name: 'policy.wasm', bytes: wasm },
          { name: 'teams/data.json', bytes: '{}' },
        ]),
      ),
    ).toMatch(/holds \/teams\/data\.json/);
    expect(
      await refusal(
        gz([
          { name: 'policy.wasm', bytes: wasm },
          { name: 'teams/data.yaml', bytes: 'a: 1' },
        ]),
      ),
    ).toMatch(/holds \/teams\/data\.yaml/);
  });

  it('refuses what is not a bundle, a damaged one, and one without policy.wasm', async () => {
    expect(await refusal(new TextEncoder().encode('package custody'))).toMatch(/neither an OPA bundle .* nor a Wasm module/);
    expect(await refusal(new Uint8Array([0x1f, 0x8b, 1, 2, 3]))).toMatch(/not a valid gzip stream/);
    expect(await refusal(gzipSync(new TextEncoder().encode('x'.repeat(2000))))).toMatch(/wrong checksum|not an octal/);
    const archive = tar([{ name: 'policy.wasm', bytes: new Uint8Array(5000) }]);
    expect(await refusal(gzipSync(archive.subarray(0, 1024)))).toMatch(/past the end of the archive/);
    const damaged = archive.slice();
    damaged[10] = 0x41;
    expect(await refusal(gzipSync(damaged))).toMatch(/wrong checksum/);
    expect(await refusal(gzipSync(tar([{ name: 'data.json', bytes: '{}' }])))).toMatch(/has no \/policy\.wasm/);
  });

  it('holds every size to its limit, and stops unzipping at the limit (a gzip bomb)', async () => {
    const big = bundle(new Uint8Array(3 * 1024 * 1024), { list: 'x'.repeat(2 * 1024 * 1024) });
    expect(await refusal(big, { compressedBytes: 1024 })).toMatch(/^the bundle is .* MiB, over the limit of 0 MiB$/);
    expect(await refusal(big, { wasmBytes: 1024 * 1024 })).toMatch(/\/policy\.wasm is 3 MiB, over the limit of 1 MiB/);
    expect(await refusal(big, { dataBytes: 1024 * 1024 })).toMatch(/\/data\.json is 2 MiB, over the limit of 1 MiB/);
    expect(await refusal(new Uint8Array([...wasm, ...new Uint8Array(2 * 1024 * 1024)]), { wasmBytes: 1024 * 1024 })).toMatch(/policy\.wasm is 2 MiB/);
    // 64 MiB of zeros gzip to 64 KiB; reading stops at the limit instead of making them
    const bomb = gzipSync(new Uint8Array(64 * 1024 * 1024), { level: 9 });
    expect(bomb.length).toBeLessThan(128 * 1024);
    expect(await refusal(bomb, { uncompressedBytes: 8 * 1024 * 1024 })).toMatch(/unpacks to more than 8 MiB/);
    const many = gzipSync(tar(Array.from({ length: 50 }, (_, i) => ({ name: `rules/${i}.rego`, bytes: 'package x' }))));
    expect(await refusal(many, { entries: 10 })).toMatch(/more than 10 entries/);
  });
});
