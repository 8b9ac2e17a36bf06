/**
 * What a signature covers, in the shape @sigstore/verify compares with Rekor entries and checks
 * with a key: the raw bytes of a message, or a DSSE envelope's pre-authentication encoding.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { dsse } from '@sigstore/core';
import type { SignedEntity } from '@sigstore/verify';
import { verifyWithKey } from './keys.ts';

export type SignatureContent = SignedEntity['signature'];

/** A signature over `message` itself (cosign simple signing, a bundle's message signature). */
export function messageContent(message: Uint8Array, signature: Buffer): SignatureContent {
  const digest = sha256(message);
  return {
    signature,
    compareSignature: (other) => same(other, signature),
    compareDigest: (other) => same(other, digest),
    compareSignedDigest: (other) => same(other, digest),
    verifySignature: (key) => verifyWithKey(key, message, signature),
  };
}

/** One signature of a DSSE envelope: it covers PAE(payloadType, payload). */
export function dsseContent(payloadType: string, payload: Buffer, signature: Buffer): SignatureContent {
  const pae = dsse.preAuthEncoding(payloadType, payload);
  const payloadDigest = sha256(payload);
  const paeDigest = sha256(pae);
  return {
    signature,
    compareSignature: (other) => same(other, signature),
    compareDigest: (other) => same(other, payloadDigest),
    compareSignedDigest: (other) => same(other, paeDigest),
    verifySignature: (key) => verifyWithKey(key, pae, signature),
  };
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

function same(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
