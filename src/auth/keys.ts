/**
 * The JWT signing keys (ES256), kept in the shared metadata store so every replica signs and
 * verifies with the same ones. The newest key signs. A rotation makes a new one; the replaced key
 * keeps verifying for one token lifetime (plus the minute a replica may take to notice the
 * rotation), so the tokens it signed run out, and is then refused and deleted. A replica reloads
 * the keys when it meets a key id it does not know (another replica rotated) and every minute.
 */
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import type { Tokens } from '../meta/accounts.ts';

const reloadEveryMs = 60_000;
/** how far apart replicas' clocks may be */
const clockToleranceSeconds = 10;

interface LoadedKey {
  kid: string;
  active: boolean;
  /** after this time the key verifies nothing */
  retiresAt: number;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

export interface KeyRingSettings {
  /** the longest lifetime of a JWT this ring signs (auth.tokenTtlSeconds) */
  tokenTtlSeconds: number;
  /** the clock (tests move it); default Date.now */
  now?: () => number;
}

export class KeyRing {
  private readonly store: Tokens;
  private readonly ttlSeconds: number;
  private readonly now: () => number;
  private keys: LoadedKey[] = [];
  private loadedAt = 0;
  private loading: Promise<void> | undefined;

  constructor(store: Tokens, settings: KeyRingSettings) {
    this.store = store;
    this.ttlSeconds = settings.tokenTtlSeconds;
    this.now = settings.now ?? Date.now;
  }

  /** Makes a first key when there is none; call once at start. */
  async init(): Promise<void> {
    await this.load();
    if (this.keys.length === 0) await this.rotate();
  }

  /** A new active key; the replaced one verifies for one more token lifetime. Returns the new key id. */
  async rotate(): Promise<string> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = randomUUID();
    await this.store.addSigningKey({
      kid,
      privateJwk: JSON.stringify(await exportJWK(privateKey)),
      publicJwk: JSON.stringify(await exportJWK(publicKey)),
      active: true,
      createdAt: this.now(),
    });
    await this.load();
    return kid;
  }

  /** A JWT that expires in `ttlSeconds`, never later than the ring's token lifetime. */
  async sign(claims: JWTPayload, ttlSeconds: number, audience: string): Promise<string> {
    if (this.now() - this.loadedAt > reloadEveryMs) await this.load();
    const key = this.keys.find((k) => k.active);
    if (!key) throw new Error('no active signing key');
    const now = Math.floor(this.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
      .setIssuer('custody')
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now - clockToleranceSeconds)
      .setExpirationTime(now + Math.min(ttlSeconds, this.ttlSeconds))
      .setJti(randomUUID())
      .sign(key.privateKey);
  }

  /**
   * The verified claims; throws when the signature, issuer, audience or time is wrong, when the
   * key is retired, or when the token has no `exp` or one further out than a token may live.
   */
  async verify(token: string, audience: string): Promise<JWTPayload> {
    const { payload } = await jwtVerify(
      token,
      async (header) => (await this.publicKey(header.kid)) ?? Promise.reject(new Error('unknown or retired signing key')),
      {
        issuer: 'custody',
        audience,
        algorithms: ['ES256'],
        requiredClaims: ['exp'],
        currentDate: new Date(this.now()),
      },
    );
    if ((payload.exp as number) > this.now() / 1000 + this.ttlSeconds + clockToleranceSeconds)
      throw new Error(`"exp" is further out than a token may live (${this.ttlSeconds} s)`);
    return payload;
  }

  private async publicKey(kid: string | undefined): Promise<CryptoKey | undefined> {
    if (!kid) return undefined;
    let key = this.keys.find((k) => k.kid === kid);
    if (!key && this.now() - this.loadedAt > 1000) {
      await this.load();
      key = this.keys.find((k) => k.kid === kid);
    }
    return key && key.retiresAt > this.now() ? key.publicKey : undefined;
  }

  /** Loads the keys, and deletes those retired (any replica may; the delete is idempotent). */
  private async load(): Promise<void> {
    this.loading ??= (async () => {
      const graceMs = (this.ttlSeconds + clockToleranceSeconds) * 1000 + reloadEveryMs;
      await this.store.retireSigningKeys(this.now() - graceMs);
      const rows = await this.store.signingKeys();
      this.keys = await Promise.all(
        rows.map(async (r) => ({
          kid: r.kid,
          active: r.active,
          retiresAt: r.replacedAt === null ? Infinity : r.replacedAt + graceMs,
          privateKey: (await importJWK(JSON.parse(r.privateJwk) as object, 'ES256')) as CryptoKey,
          publicKey: (await importJWK(JSON.parse(r.publicJwk) as object, 'ES256')) as CryptoKey,
        })),
      );
      this.loadedAt = this.now();
    })().finally(() => (this.loading = undefined));
    return this.loading;
  }
}
