/** Reads a Notary Project JWS envelope (flattened JSON serialization, `application/jose+json`). */
import type { KeyObject } from 'node:crypto';
import { errors, flattenedVerify } from 'jose';
import { z } from 'zod';
import { ALGORITHMS, checkAttributes, EnvelopeError, KNOWN_CRITICAL, type Envelope } from './envelope.ts';

const b64url = z.string().regex(/^[A-Za-z0-9_-]*$/, { error: 'must be base64url' });
const b64 = z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, { error: 'must be base64' });

const envelopeSchema = z.strictObject({
  payload: b64url,
  protected: b64url,
  header: z.looseObject({
    x5c: z.array(b64).min(1, { error: 'must hold the certificate chain' }),
    'io.cncf.notary.timestampSignature': z.string().optional(),
    'io.cncf.notary.signingAgent': z.string().optional(),
  }),
  signature: b64url,
});

const rfc3339 = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/, { error: 'must be an RFC 3339 date-time' })
  .transform((s) => new Date(s))
  .refine((d) => !Number.isNaN(d.getTime()), { error: 'must be a valid date-time' });

const protectedSchema = z.looseObject({
  alg: z.enum(ALGORITHMS, { error: `must be one of ${ALGORITHMS.join(', ')}` }),
  cty: z.unknown(),
  crit: z.array(z.string(), { error: 'must be an array of header names' }),
  'io.cncf.notary.signingScheme': z.unknown(),
  'io.cncf.notary.signingTime': rfc3339.optional(),
  'io.cncf.notary.authenticSigningTime': rfc3339.optional(),
  'io.cncf.notary.expiry': rfc3339.optional(),
});

function describe(error: z.ZodError, what: string): string {
  const issue = error.issues[0];
  return `malformed JWS envelope: ${what}${issue?.path.length ? `.${issue.path.join('.')}` : ''}: ${issue?.message ?? 'invalid'}`;
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new EnvelopeError(`malformed JWS envelope: ${what} is not JSON`);
  }
}

export function readJws(bytes: Uint8Array): Envelope {
  const outer = envelopeSchema.safeParse(parseJson(bytes, 'the envelope'));
  if (!outer.success) throw new EnvelopeError(describe(outer.error, 'envelope'));
  const jws = outer.data;
  const rawHeader = parseJson(Buffer.from(jws.protected, 'base64url'), 'the protected header');
  const header = protectedSchema.safeParse(rawHeader);
  if (!header.success) throw new EnvelopeError(describe(header.error, 'protected header'));
  const h = header.data;
  const present = (name: string) => Object.hasOwn(h, name);
  for (const name of Object.keys(jws.header)) {
    if (present(name)) throw new EnvelopeError(`malformed JWS envelope: header ${name} is both protected and unprotected`);
  }
  const { contentType, signingScheme } = checkAttributes({
    contentType: h.cty,
    signingScheme: h['io.cncf.notary.signingScheme'],
    signingTime: h['io.cncf.notary.signingTime'],
    authenticSigningTime: h['io.cncf.notary.authenticSigningTime'],
    critical: h.crit,
    present,
  });
  return {
    alg: h.alg,
    contentType,
    signingScheme,
    signingTime: h['io.cncf.notary.signingTime'],
    authenticSigningTime: h['io.cncf.notary.authenticSigningTime'],
    expiry: h['io.cncf.notary.expiry'],
    certificates: jws.header.x5c.map((c) => new Uint8Array(Buffer.from(c, 'base64'))),
    payload: new Uint8Array(Buffer.from(jws.payload, 'base64url')),
    hasTimestampSignature: jws.header['io.cncf.notary.timestampSignature'] !== undefined,
    async verify(key: KeyObject): Promise<boolean> {
      try {
        await flattenedVerify(jws, key, {
          algorithms: [h.alg],
          crit: Object.fromEntries(KNOWN_CRITICAL.map((name) => [name, true])),
        });
        return true;
      } catch (err) {
        if (err instanceof errors.JWSSignatureVerificationFailed) return false;
        throw new EnvelopeError(`malformed JWS envelope: ${(err as Error).message}`);
      }
    },
  };
}
