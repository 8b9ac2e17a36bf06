/**
 * An OPA policy as Custody receives it: the bytes of a bundle (`bundle.tar.gz` as
 * `opa build -t wasm -e <entrypoint>` writes it: /policy.wasm, /data.json, /.manifest and the
 * Rego sources), or of a bare policy.wasm. Read from bytes the service fetched from the
 * registry's own storage, with limits on every size, since whoever can push to the bundle's
 * repository chooses them. Unzipping runs on libuv's thread pool (zlib's async API), not on
 * the event loop, and stops at the uncompressed limit instead of finding out afterwards.
 */
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { PolicyRejected } from '../engine.ts';
import { readTar, TarError } from './tar.ts';

export interface BundleLimits {
  /** bytes of the bundle as stored (gzip), or of a bare module */
  compressedBytes: number;
  /** bytes of the tar archive inside the gzip */
  uncompressedBytes: number;
  /** headers in the archive */
  entries: number;
  /** bytes of /policy.wasm */
  wasmBytes: number;
  /** bytes of /data.json (it is parsed into the module's memory, which has its own limit) */
  dataBytes: number;
}

export const defaultBundleLimits: Readonly<BundleLimits> = {
  compressedBytes: 16 * 1024 * 1024,
  uncompressedBytes: 64 * 1024 * 1024,
  entries: 4096,
  wasmBytes: 16 * 1024 * 1024,
  dataBytes: 8 * 1024 * 1024,
};

export interface PolicyBundle {
  /** the Wasm module's bytes */
  wasm: Uint8Array;
  /** /data.json's bytes, when the bundle has one (checked for size here, for JSON by the module) */
  data: Uint8Array | undefined;
}

const gunzipAsync = promisify(gunzip);
const wasmMagic = [0x00, 0x61, 0x73, 0x6d];
const mib = (n: number) => `${Math.round((n / (1024 * 1024)) * 10) / 10} MiB`;

/** Reads a bundle (gzip) or a bare Wasm module; throws PolicyRejected naming what is wrong. */
export async function readBundle(bytes: Uint8Array, limits: Partial<BundleLimits> = {}): Promise<PolicyBundle> {
  const l = { ...defaultBundleLimits, ...limits };
  if (bytes.byteLength > l.compressedBytes) throw new PolicyRejected(`the bundle is ${mib(bytes.byteLength)}, over the limit of ${mib(l.compressedBytes)}`);
  if (wasmMagic.every((b, i) => bytes[i] === b)) {
    if (bytes.byteLength > l.wasmBytes) throw new PolicyRejected(`policy.wasm is ${mib(bytes.byteLength)}, over the limit of ${mib(l.wasmBytes)}`);
    return { wasm: bytes, data: undefined };
  }
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) {
    throw new PolicyRejected('the bundle is neither an OPA bundle (bundle.tar.gz, as opa build writes it) nor a Wasm module (policy.wasm)');
  }
  let archive: Buffer;
  try {
    archive = await gunzipAsync(bytes, { maxOutputLength: l.uncompressedBytes });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_BUFFER_TOO_LARGE') throw new PolicyRejected(`the bundle unpacks to more than ${mib(l.uncompressedBytes)}, the limit`);
    throw new PolicyRejected(`the bundle is not a valid gzip stream: ${e.message}`);
  }
  let entries;
  try {
    entries = readTar(archive, { entries: l.entries });
  } catch (err) {
    if (err instanceof TarError) throw new PolicyRejected(`the bundle is not a valid tar archive: ${err.message}`);
    throw err;
  }
  let wasm: Uint8Array | undefined;
  let data: Uint8Array | undefined;
  for (const entry of entries) {
    if (entry.kind !== 'file') continue;
    const base = entry.name.split('/').at(-1) ?? '';
    if (entry.name === 'policy.wasm') {
      if (wasm) throw new PolicyRejected('the bundle holds /policy.wasm twice: which one was meant is not clear');
      wasm = entry.bytes;
    } else if (entry.name === 'data.json') {
      if (data) throw new PolicyRejected('the bundle holds /data.json twice: which one was meant is not clear');
      data = entry.bytes;
    } else if (base === 'data.json' || base === 'data.yaml' || base === 'data.yml') {
      // OPA mounts such a file at its directory's path in `data`; Custody reads only /data.json,
      // and silently leaving this one out would change what the policy decides
      throw new PolicyRejected(`the bundle holds /${entry.name}: Custody reads data only from /data.json (opa build writes all of a bundle's data there)`);
    }
  }
  if (!wasm) throw new PolicyRejected('the bundle has no /policy.wasm: build it with opa build -t wasm -e <entrypoint>');
  if (wasm.byteLength > l.wasmBytes) throw new PolicyRejected(`/policy.wasm is ${mib(wasm.byteLength)}, over the limit of ${mib(l.wasmBytes)}`);
  if (data && data.byteLength > l.dataBytes) throw new PolicyRejected(`/data.json is ${mib(data.byteLength)}, over the limit of ${mib(l.dataBytes)}`);
  // copies (Buffer's slice would be a view), so that what is kept does not hold the whole unpacked archive in memory
  return { wasm: new Uint8Array(wasm), data: data ? new Uint8Array(data) : undefined };
}
