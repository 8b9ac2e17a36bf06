/**
 * Personal and robot token secrets. A token reads `cst_<id>_<secret>`: the id finds its record,
 * the secret (32 random bytes) is checked against the stored sha256 in constant time. The secret
 * is random enough that a fast hash is safe, which keeps every token login cheap.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const pattern = /^cst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export interface NewSecret {
  id: string;
  /** what the owner is shown once */
  token: string;
  /** what is stored */
  hash: string;
}

export function newTokenSecret(): NewSecret {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, token: `cst_${id}_${secret}`, hash: hashSecret(secret) };
}

/** The id and secret of something shaped like a token, or undefined. */
export function parseToken(value: string): { id: string; secret: string } | undefined {
  const m = pattern.exec(value);
  return m ? { id: m[1] as string, secret: m[2] as string } : undefined;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}
