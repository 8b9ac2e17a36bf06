/**
 * The JWT signing keys (ES256), kept in the shared metadata store so every replica signs and
 * verifies with the same ones. The newest active key signs; older keys keep verifying the tokens
 * they signed until an operator retires them. A replica reloads the keys when it meets a key id it
 * does not know (another replica rotated) and every minute.
 */
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import type { Tokens } from '../meta/accounts.ts';

const reloadEveryMs = 60_000;

interface LoadedKey {
  kid: string;
  active: boolean;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

export class KeyRing {
  private readonly store: Tokens;
  private keys: LoadedKey[] = [];
  private loadedAt = 0;
  private loading: Promise<void> | undefined;

  constructor(store: Tokens) {
    this.store = store;
  }

  /** Makes a first key when there is none; call once at start. */
  async init(): Promise<void> {
    await this.load();
    if (this.keys.length === 0) await this.rotate();
  }

  /** A new active key; the old ones still verify. Returns the new key id. */
  async rotate(): Promise<string> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const kid = randomUUID();
    await this.store.addSigningKey({ kid, privateJwk: JSON.stringify(await exportJWK(privateKey)), publicJwk: JSON.stringify(await exportJWK(publicKey)), active: true });
    await this.load();
    return kid;
  }

  async sign(claims: JWTPayload, ttlSeconds: number, audience: string): Promise<string> {
    if (Date.now() - this.loadedAt > reloadEveryMs) await this.load();
    const key = this.keys.find((k) => k.active);
    if (!key) throw new Error('no active signing key');
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
      .setIssuer('custody')
      .setAudience(audience)
      .setIssuedAt()
      .setNotBefore('-10s')
      .setExpirationTime(`${ttlSeconds}s`)
      .setJti(randomUUID())
      .sign(key.privateKey);
  }

  /** The verified claims; throws when the signature, issuer, audience or time is wrong. */
  async verify(token: string, audience: string): Promise<JWTPayload> {
    const { payload } = await jwtVerify(token, async (header) => (await this.publicKey(header.kid)) ?? Promise.reject(new Error('unknown signing key')), {
      issuer: 'custody',
      audience,
      algorithms: ['ES256'],
    });
    return payload;
  }

  private async publicKey(kid: string | undefined): Promise<CryptoKey | undefined> {
    if (!kid) return undefined;
    let key = this.keys.find((k) => k.kid === kid);
    if (!key && Date.now() - this.loadedAt > 1000) {
      await this.load();
      key = this.keys.find((k) => k.kid === kid);
    }
    return key?.publicKey;
  }

  private async load(): Promise<void> {
    this.loading ??= (async () => {
      const rows = await this.store.signingKeys();
      this.keys = await Promise.all(
        rows.map(async (r) => ({
          kid: r.kid,
          active: r.active,
          privateKey: (await importJWK(JSON.parse(r.privateJwk) as object, 'ES256')) as CryptoKey,
          publicKey: (await importJWK(JSON.parse(r.publicJwk) as object, 'ES256')) as CryptoKey,
        })),
      );
      this.loadedAt = Date.now();
    })().finally(() => (this.loading = undefined));
    return this.loading;
  }
}
