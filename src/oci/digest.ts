/** Digests: `algorithm:hex`, with sha256 and sha512 supported (OCI image spec, descriptors). */
import { blobKeyOf } from '../storage/blobstore.ts';
import { streamed } from '../storage/streamed.ts';
import { createHash, type Hash } from 'node:crypto';
import { OciError } from './errors.ts';

export type Algorithm = 'sha256' | 'sha512';

export interface Digest {
  algorithm: Algorithm;
  hex: string;
  /** `algorithm:hex` */
  value: string;
}

const hexLength: Record<Algorithm, number> = { sha256: 64, sha512: 128 };
const grammar = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Parses a digest or throws DIGEST_INVALID saying why. */
export function parseDigest(value: string): Digest {
  if (!grammar.test(value)) throw new OciError('DIGEST_INVALID', `invalid digest ${JSON.stringify(value.slice(0, 200))}`);
  const [algorithm = '', hex = ''] = value.split(':');
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new OciError('DIGEST_INVALID', `unsupported digest algorithm ${JSON.stringify(algorithm)}: use sha256 or sha512`);
  }
  if (hex.length !== hexLength[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw new OciError('DIGEST_INVALID', `invalid ${algorithm} digest: expected ${hexLength[algorithm]} lowercase hex characters`);
  }
  return { algorithm, hex, value };
}

export function isDigest(value: string): boolean {
  return value.includes(':');
}

export function digestOf(bytes: Uint8Array, algorithm: Algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

/** Where a blob's bytes live in the BlobStore. */
export function blobKey(digest: Digest): string {
  return blobKeyOf(digest.algorithm, digest.hex);
}

/**
 * Passes bytes through while hashing them; `hash` holds the result once the stream is drained.
 * Each chunk, once passed on, is reported to the streamed-bytes listener (src/storage/streamed.ts).
 */
export function hashing(source: AsyncIterable<Uint8Array>, algorithm: Algorithm): { stream: AsyncIterable<Uint8Array>; hash: Hash } {
  const hash = createHash(algorithm);
  async function* pass(): AsyncIterable<Uint8Array> {
    for await (const chunk of source) {
      hash.update(chunk);
      yield chunk;
      streamed(chunk.byteLength);
    }
  }
  return { stream: pass(), hash };
}
