/**
 * Reads a Notary Project COSE_Sign1 envelope (`application/cose`).
 *
 * cbor-x comes in through its `cbor-x/decode` entry, which under Node resolves to the library's
 * pure-JavaScript index: only the package root (`node-index.js`) tries to load the optional native
 * `cbor-extract` add-on, and Custody uses no native add-ons.
 */
import { verify as cryptoVerify, constants, type KeyObject } from 'node:crypto';
import { Decoder, Tag } from 'cbor-x/decode';
import { checkAttributes, EnvelopeError, type Algorithm, type Envelope } from './envelope.ts';

const COSE_ALGORITHMS = new Map<number, Algorithm>([
  [-37, 'PS256'],
  [-38, 'PS384'],
  [-39, 'PS512'],
  [-7, 'ES256'],
  [-35, 'ES384'],
  [-36, 'ES512'],
]);
const HASH: Record<Algorithm, string> = {
  PS256: 'sha256',
  PS384: 'sha384',
  PS512: 'sha512',
  ES256: 'sha256',
  ES384: 'sha384',
  ES512: 'sha512',
};
const HASH_BYTES: Record<string, number> = { sha256: 32, sha384: 48, sha512: 64 };
const X5CHAIN = 33;

const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });

function decode(bytes: Uint8Array, what: string): unknown {
  try {
    return decoder.decode(bytes) as unknown;
  } catch (err) {
    throw new EnvelopeError(`malformed COSE envelope: ${what} is not CBOR (${(err as Error).message})`);
  }
}

/** Encodes a CBOR head (major type and length), shortest form. */
function head(major: number, length: number): Uint8Array {
  const m = major << 5;
  if (length < 24) return Uint8Array.of(m | length);
  if (length < 0x100) return Uint8Array.of(m | 24, length);
  if (length < 0x10000) return Uint8Array.of(m | 25, length >> 8, length & 0xff);
  return Uint8Array.of(m | 26, (length >>> 24) & 0xff, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff);
}

/** Sig_structure = ["Signature1", protected, external_aad (empty), payload], CBOR-encoded (RFC 9052 §4.4). */
export function sigStructure(protectedBytes: Uint8Array, payload: Uint8Array): Uint8Array {
  const context = new TextEncoder().encode('Signature1');
  return Buffer.concat([
    head(4, 4),
    head(3, context.length),
    context,
    head(2, protectedBytes.length),
    protectedBytes,
    head(2, 0),
    head(2, payload.length),
    payload,
  ]);
}

const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;
const isDate = (v: unknown): v is Date => v instanceof Date && !Number.isNaN(v.getTime());

function dateAttribute(headers: Map<unknown, unknown>, name: string): Date | undefined {
  if (!headers.has(name)) return undefined;
  const value = headers.get(name);
  if (!isDate(value)) throw new EnvelopeError(`malformed COSE envelope: ${name} must be a date/time (CBOR tag 1)`);
  return value;
}

function chainOf(value: unknown): Uint8Array[] | undefined {
  if (value === undefined) return undefined;
  if (isBytes(value)) return [value];
  if (Array.isArray(value) && value.length > 0 && value.every(isBytes)) return value;
  throw new EnvelopeError('malformed COSE envelope: x5chain (label 33) must be a certificate or an array of certificates');
}

export function readCose(bytes: Uint8Array): Envelope {
  const outer = decode(bytes, 'the envelope');
  if (!(outer instanceof Tag) || outer.tag !== 18) throw new EnvelopeError('malformed COSE envelope: not a COSE_Sign1_Tagged message (CBOR tag 18)');
  const parts: unknown = outer.value;
  if (!Array.isArray(parts) || parts.length !== 4) throw new EnvelopeError('malformed COSE envelope: COSE_Sign1 must be an array of four items');
  const [protectedBytes, unprotected, payload, signature] = parts as unknown[];
  if (!isBytes(protectedBytes)) throw new EnvelopeError('malformed COSE envelope: the protected header must be a byte string');
  if (!(unprotected instanceof Map)) throw new EnvelopeError('malformed COSE envelope: the unprotected header must be a map');
  if (!isBytes(payload)) throw new EnvelopeError('malformed COSE envelope: the payload must be attached as a byte string');
  if (!isBytes(signature)) throw new EnvelopeError('malformed COSE envelope: the signature must be a byte string');
  const headers = decode(protectedBytes, 'the protected header');
  if (!(headers instanceof Map)) throw new EnvelopeError('malformed COSE envelope: the protected header must be a map');

  const algLabel: unknown = headers.get(1);
  const alg = typeof algLabel === 'number' ? COSE_ALGORITHMS.get(algLabel) : undefined;
  if (!alg) throw new EnvelopeError(`unsupported COSE algorithm ${String(algLabel)} (expected PS256/384/512 or ES256/384/512)`, 'unsupported');
  const crit: unknown = headers.get(2);
  if (!Array.isArray(crit)) throw new EnvelopeError('malformed COSE envelope: crit (label 2) must be an array');
  for (const label of crit) {
    if (typeof label === 'number' && label >= 0 && label <= 8) {
      throw new EnvelopeError(`malformed COSE envelope: crit must not list the common header label ${label}`);
    }
  }
  const signingTime = dateAttribute(headers, 'io.cncf.notary.signingTime');
  const authenticSigningTime = dateAttribute(headers, 'io.cncf.notary.authenticSigningTime');
  const expiry = dateAttribute(headers, 'io.cncf.notary.expiry');
  const { contentType, signingScheme } = checkAttributes({
    contentType: headers.get(3),
    signingScheme: headers.get('io.cncf.notary.signingScheme'),
    signingTime,
    authenticSigningTime,
    critical: crit as unknown[],
    present: (name) => headers.has(name),
  });
  const certificates = chainOf(unprotected.get(X5CHAIN)) ?? chainOf(headers.get(X5CHAIN));
  if (!certificates) throw new EnvelopeError('malformed COSE envelope: x5chain (label 33) is missing');

  return {
    alg,
    contentType,
    signingScheme,
    signingTime,
    authenticSigningTime,
    expiry,
    certificates,
    payload,
    hasTimestampSignature: unprotected.has('io.cncf.notary.timestampSignature'),
    async verify(key: KeyObject): Promise<boolean> {
      const hash = HASH[alg];
      const data = sigStructure(protectedBytes, payload);
      if (alg.startsWith('PS')) {
        return cryptoVerify(hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_BYTES[hash] }, signature);
      }
      return cryptoVerify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    },
  };
}
