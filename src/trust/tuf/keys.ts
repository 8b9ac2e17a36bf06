/**
 * TUF keys: ed25519 from node:crypto. Public keys are written the way TUF writes them
 * (`keyval.public` in hex), key ids are the sha256 of the key's canonical JSON, and private keys
 * are kept as PKCS8 PEM in the shared store so every replica signs with the same keys.
 */
import { createHash, createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { Key, Signature } from '@tufjs/models';
import { BoundedMap } from '../../bounded-map.ts';

export interface KeyPair {
  keyId: string;
  /** raw ed25519 public key, hex */
  publicKey: string;
  privateKeyPem: string;
}

export function generateKey(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const x = publicKey.export({ format: 'jwk' }).x;
  if (!x) throw new Error('ed25519 key without a public part');
  const hex = Buffer.from(x, 'base64url').toString('hex');
  return { keyId: keyIdOf(hex), publicKey: hex, privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

/**
 * sha256 of `{"keytype":"ed25519","keyval":{"public":"<hex>"},"scheme":"ed25519"}`: the key's
 * canonical JSON (keys sorted, no spaces; a hex string needs no escaping).
 */
export function keyIdOf(publicHex: string): string {
  if (!/^[0-9a-f]{64}$/.test(publicHex)) throw new Error('an ed25519 public key is 32 bytes of hex');
  return createHash('sha256').update(`{"keytype":"ed25519","keyval":{"public":"${publicHex}"},"scheme":"ed25519"}`).digest('hex');
}

/** The key as root.json lists it. */
export function tufKey(publicHex: string): Key {
  return new Key({ keyID: keyIdOf(publicHex), keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: publicHex } });
}

const parsed = new BoundedMap<string, KeyObject>(1000);

/** A signer for Metadata.sign(): ed25519 over the canonical bytes it is given. */
export function signer(key: { keyId: string; privateKeyPem: string }): (data: Buffer) => Signature {
  let object = parsed.get(key.keyId);
  if (!object) {
    object = createPrivateKey(key.privateKeyPem);
    parsed.set(key.keyId, object);
  }
  const privateKey = object;
  return (data) => new Signature({ keyID: key.keyId, sig: sign(null, data, privateKey).toString('hex') });
}
