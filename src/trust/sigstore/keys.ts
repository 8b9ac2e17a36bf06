/** The namespace's cosign public keys, and signature checks that work for every key type cosign makes. */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';

export interface NamedKey {
  name: string;
  key: KeyObject;
}

/** Parses the configured PEM keys; a key that cannot be read is skipped and named in `unreadable`. */
export function readKeys(keys: readonly { name: string; pem: string }[]): { keys: NamedKey[]; unreadable: string[] } {
  const out: NamedKey[] = [];
  const unreadable: string[] = [];
  for (const { name, pem } of keys) {
    try {
      const key = createPublicKey(pem);
      if (key.type !== 'public') throw new Error('not a public key');
      out.push({ name, key });
    } catch {
      unreadable.push(name);
    }
  }
  return { keys: out, unreadable };
}

/**
 * Whether `signature` over `data` verifies with `key`. Ed25519 signs the message itself; ECDSA and RSA
 * (PKCS #1 v1.5) are tried with SHA-256 first, which cosign uses for every key, then with the digest
 * that matches a larger key, since other signers pick it.
 */
export function verifyWithKey(key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  const type = key.asymmetricKeyType;
  if (type === 'ed25519' || type === 'ed448') return attempt(null, data, key, signature);
  if (type !== 'ec' && type !== 'rsa' && type !== 'rsa-pss') return false;
  return ['sha256', 'sha384', 'sha512'].some((hash) => attempt(hash, data, key, signature));
}

function attempt(hash: string | null, data: Uint8Array, key: KeyObject, signature: Uint8Array): boolean {
  try {
    return verify(hash, data, key, signature);
  } catch {
    return false;
  }
}
